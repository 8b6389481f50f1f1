"""nginx in front of Vector (proxy mode): the ACME challenge server, the site, or only a snippet.

Two planners, in this order in ``plan.PLANNERS``:

- ``plan_nginx_challenge`` (before certbot): in proxy mode, stops with instructions when another web
  server holds 80/443; installs nginx when none runs (proxy mode asked for explicitly must not end
  with Vector on 127.0.0.1 and nothing in front of it); writes a port-80 server for the domain that
  serves ``<webroot>/.well-known/acme-challenge/`` and redirects the rest to https, so that certbot's
  webroot validation is really answered (the reference only hoped the default site would);
- ``plan_nginx_site`` (after certbot and mTLS): the dedicated 443 server for the domain with the
  ``/actvt`` and ``/actvt/health`` locations and, with mTLS, client verification against the CA and
  its CRL (``ssl_crl``: this is how a revoked client is refused in proxy mode) and the first
  client's certificate presented to Vector. When ``nginx -T`` shows that another file of the host
  already has ``server_name <domain>``, only ``/etc/nginx/snippets/actvt-vector-location.conf`` is
  written and the user is told to include it (``notes``); files of an earlier dedicated setup are
  then removed.

Layout: ``sites-available`` + a link in ``sites-enabled`` where ``/etc/nginx/sites-enabled`` exists
(or nginx is yet to be installed by apt, whose package makes it), else ``/etc/nginx/conf.d``. Files of
the other layout left by an earlier run are removed, so that the domain is never served twice.

Every change is followed by ``nginx -t`` and then ``systemctl reload nginx``, as Commands that run
only when one of the files they depend on changed in this run. When ``nginx -t`` fails the engine
puts back the files this run wrote, before anything reloads: nginx keeps serving what it served.

User values: the domain is an RFC 1123 host name (validated by config); paths are quoted and may not
hold characters nginx would read as something else (``$``, quotes, backslashes, control characters).
"""

import os
import re
from typing import Iterable, List, Optional, Tuple

from installer import __version__
from installer.concerns import mtls
from installer.core import paths
from installer.core.actions import Absent, Command, File, Packages, Service, Step, Symlink
from installer.core.errors import ActvtError

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
SITES_AVAILABLE = "/etc/nginx/sites-available"
SITES_ENABLED = "/etc/nginx/sites-enabled"
CHALLENGE_SITE = f"{SITES_AVAILABLE}/actvt-vector-acme"
CHALLENGE_LINK = f"{SITES_ENABLED}/actvt-vector-acme"
CHALLENGE_CONFD = "/etc/nginx/conf.d/actvt-vector-acme.conf"
CHALLENGE_FILES = (CHALLENGE_SITE, CHALLENGE_LINK, CHALLENGE_CONFD)
SITE_FILES = (paths.NGINX_SITE, paths.NGINX_SITE_LINK, paths.NGINX_CONFD_SITE)
MODULES_ENABLED = "/etc/nginx/modules-enabled"  # Debian's nginx.conf includes it at main level
SHUTDOWN_FILE = f"{MODULES_ENABLED}/99-actvt-worker-shutdown-timeout.conf"
SHUTDOWN_SECONDS = 10
OUR_FILES = SITE_FILES + CHALLENGE_FILES + (paths.NGINX_SNIPPET, SHUTDOWN_FILE)
IPV6_PROC = "/proc/net/if_inet6"  # present when the kernel can open IPv6 sockets
NGINX_PACKAGES = ("nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras", "nginx-common")

PROBES = {"nginx_T": ("nginx", "-T")}
WATCH = (SITES_ENABLED, IPV6_PROC) + OUR_FILES


class NginxError(ActvtError):
    """nginx cannot be set up as configured; nothing was changed."""


# --- values in nginx syntax -------------------------------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\$]')


def quote(value: str, what: str) -> str:
    """``value`` as a double-quoted nginx string; refuses what nginx would not read literally
    (``$`` starts a variable in many directives and cannot be escaped)."""
    if not value.startswith("/") or _UNSAFE.search(value):
        raise NginxError(f"{what}: {value!r} cannot be written into the nginx configuration (it must be an "
                         "absolute path without '$', quotes, backslashes or control characters); nothing was changed")
    return f'"{value}"'


def _check_domain(domain: str) -> str:
    if not re.fullmatch(r"[a-z0-9.-]+", domain or ""):
        raise NginxError(f"ACTVT_DOMAIN: {domain!r} cannot be used as an nginx server_name; nothing was changed")
    return domain


def _template(name: str) -> str:
    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as handle:
        return handle.read()


def _fill(text: str, values: dict) -> str:
    for marker, value in values.items():
        text = text.replace(f"@{marker}@", value)
    leftover = re.search(r"@[A-Z0-9_]+@", text)
    if leftover:
        raise ValueError(f"template marker {leftover.group(0)} not filled")
    return text


def _block(lines: Iterable[str], indent: str) -> str:
    """Lines for a ``@MARKER@`` that sits on its own line (empty: the line disappears)."""
    return "\n".join(indent + line if line else "" for line in lines)


def _render(name: str, values: dict) -> str:
    """Fill ``name``; markers alone on their line whose value is empty are dropped with their line."""
    lines = []
    for line in _template(name).splitlines():
        stripped = line.strip()
        if re.fullmatch(r"@[A-Z0-9_]+@", stripped) and stripped[1:-1] in values:
            value = values[stripped[1:-1]]
            if value:
                lines.append(value)
            continue
        lines.append(line)
    return _fill("\n".join(lines) + "\n", values)


# --- rendering ----------------------------------------------------------------------------------------


def render_locations(config, indent: str = "") -> str:
    """The ``/actvt/health`` and ``/actvt`` locations (the snippet, and the inside of the site)."""
    guard, upstream = [], []
    if config.enable_mtls:
        guard = ["# mTLS: only clients whose certificate the CA signed and the CRL does not list",
                 "if ($ssl_client_verify != SUCCESS) {",
                 "    return 496;  # SSL Certificate Required",
                 "}",
                 ""]
        upstream = ["",
                    "# mTLS to Vector: nginx presents the first client's certificate",
                    f"proxy_ssl_certificate {quote(mtls.cert_path(config.mtls_client_cn), 'ACTVT_MTLS_CLIENT_CN')};",
                    f"proxy_ssl_certificate_key {quote(mtls.key_path(config.mtls_client_cn), 'ACTVT_MTLS_CLIENT_CN')};"]
    text = _render("nginx-location.conf", {
        "PORT": str(int(config.vector_port)),
        "DOMAIN": _check_domain(config.domain),
        "MTLS_GUARD": _block(guard, "    "),
        "MTLS_UPSTREAM": _block(upstream, "    "),
    })
    if not indent:
        return text
    return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def mtls_server_lines(config) -> List[str]:
    """Server-level client verification (``optional``, so that /actvt/health stays open)."""
    if not config.enable_mtls:
        return []
    return ["",
            "# mTLS: clients are asked for a certificate signed by the Actvt CA; revoked ones (CRL) fail.",
            f"ssl_client_certificate {quote(paths.CA_CERT, 'CA certificate')};",
            "ssl_verify_client optional;",
            "ssl_verify_depth 2;",
            f"ssl_crl {quote(mtls.CRL, 'CRL')};"]


def render_site(config, ipv6: bool) -> bytes:
    domain = _check_domain(config.domain)
    from installer.concerns.certbot import fullchain, privkey

    return _render("nginx-site.conf", {
        "VERSION": __version__,
        "DOMAIN": domain,
        "PORT": str(int(config.vector_port)),
        "LISTEN_V6": "    listen [::]:443 ssl http2;" if ipv6 else "",
        "FULLCHAIN": quote(fullchain(domain), "certificate"),
        "PRIVKEY": quote(privkey(domain), "private key"),
        "MTLS_SERVER": _block(mtls_server_lines(config), "    "),
        "LOCATIONS": "\n" + render_locations(config, "    ").rstrip("\n"),
    }).encode()


def render_snippet(config) -> bytes:
    """Locations to include in the server block that already serves the domain; with mTLS the
    server-level directives come first (the snippet is included at server level)."""
    head = [
        f"# Actvt: include this file inside the `server {{ listen 443 ssl; server_name {config.domain}; }}` block",
        f"# (server level, not inside a location):  include {paths.NGINX_SNIPPET};",
        f"# Managed by actvt-installer {__version__}; re-running the installer rewrites this file.",
    ]
    server = mtls_server_lines(config)
    if server:
        server = server[1:] + ["# (remove these four lines if the server block already verifies clients)", ""]
    return ("\n".join(head + [""] + server) + "\n" + render_locations(config)).encode()


def render_challenge(config, ipv6: bool) -> bytes:
    return _render("nginx-challenge.conf", {
        "VERSION": __version__,
        "DOMAIN": _check_domain(config.domain),
        "WEBROOT": quote(config.nginx_webroot, "ACTVT_NGINX_WEBROOT"),
        "LISTEN_V6": "    listen [::]:80;" if ipv6 else "",
    }).encode()


# --- facts --------------------------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        quoted, kept = None, []
        for char in line:
            if quoted:
                quoted = None if char == quoted else quoted
            elif char in "\"'":
                quoted = char
            elif char == "#":
                break
            kept.append(char)
        out.append("".join(kept))
    return "\n".join(out)


def _name_matches(name: str, domain: str) -> bool:
    name = name.strip("\"'").lower().rstrip(".")
    if not name or name.startswith("~"):
        return False  # regular expressions are not evaluated
    if name == domain:
        return True
    if name.startswith("*."):
        return domain.endswith(name[1:])
    if name.startswith("."):
        return domain == name[1:] or domain.endswith(name)
    return False


def split_dump(output: str) -> List[Tuple[str, str]]:
    """``nginx -T`` output as (file, content) pairs."""
    sections: List[Tuple[str, List[str]]] = []
    for line in output.splitlines():
        stripped = line.rstrip()
        if stripped.startswith("# configuration file ") and stripped.endswith(":"):
            sections.append((stripped[len("# configuration file "):-1], []))
        elif sections:
            sections[-1][1].append(line)
    return [(name, "\n".join(lines)) for name, lines in sections]


def serving_file(output: str, domain: str, ignore: Iterable[str] = OUR_FILES) -> Optional[str]:
    """The first configuration file (other than ours) with ``server_name`` naming ``domain``."""
    ignored = set(ignore)
    for name, content in split_dump(output):
        if name in ignored:
            continue
        for match in re.finditer(r"(?:^|[;{}\s])server_name\s+([^;{}]*);", _strip_comments(content)):
            if any(_name_matches(token, domain) for token in match.group(1).split()):
                return name
    return None


def _blocks(code: str, keyword: str) -> List[str]:
    """Bodies of the ``keyword [args] { ... }`` blocks of ``code`` (comments already stripped)."""
    bodies = []
    for match in re.finditer(r"(?:^|[;{}\s])" + keyword + r"(\s[^;{}]*)?\{", code):
        depth, start = 1, match.end()
        for index in range(start, len(code)):
            depth += {"{": 1, "}": -1}.get(code[index], 0)
            if depth == 0:
                bodies.append((match.group(1) or "", code[start:index]))
                break
    return bodies


def _top_level(body: str) -> str:
    """``body`` without its nested blocks: the block's own directives."""
    out, depth = [], 0
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def served_webroot(output: str, domain: str) -> Optional[str]:
    """The folder the existing port-80 server of ``domain`` serves ``/.well-known/acme-challenge/``
    from (``nginx -T`` output): the ``root`` of a location for that path, else the server's ``root``.
    None when it cannot be told (no root, variables, a server that only listens on 443)."""
    for name, content in split_dump(output):
        if name in OUR_FILES:
            continue
        for _, body in _blocks(_strip_comments(content), "server"):
            own = _top_level(body)
            names = " ".join(re.findall(r"(?:^|[;\s])server_name\s+([^;]*);", own))
            if not any(_name_matches(token, domain) for token in names.split()):
                continue
            listens = re.findall(r"(?:^|[;\s])listen\s+([^;]*);", own)
            if listens and not any(re.match(r"(?:\S*:)?80(?:\s|$)", item.strip()) for item in listens):
                continue
            roots = [re.findall(r"(?:^|[;\s])root\s+([^;]*);", _top_level(inner))
                     for args, inner in _blocks(body, "location") if "/.well-known/acme-challenge" in args]
            roots = [found for found in roots if found] + [re.findall(r"(?:^|[;\s])root\s+([^;]*);", own)]
            for found in roots:
                if found:
                    root = found[-1].strip().strip("\"'")
                    return root if root.startswith("/") and "$" not in root else None
            return None
    return None


def challenge_webroot(config, facts) -> str:
    """certbot's ``-w``: ACTVT_NGINX_WEBROOT when given; when another site already serves the domain
    on port 80, the folder that site serves the challenge from (else our challenge server would
    not be used, and the webroot would never be asked); else the default."""
    if not config.is_set("ACTVT_NGINX_WEBROOT") and already_served(config, facts):
        found = served_webroot(facts.probes["nginx_T"].output, config.domain)
        if found:
            return found
    return config.nginx_webroot


def already_served(config, facts) -> Optional[str]:
    probe = facts.probes.get("nginx_T")
    if probe is None or not probe.output:
        return None
    return serving_file(probe.output, config.domain)


def shutdown_timeout_possible(facts) -> bool:
    """Whether a main-level ``worker_shutdown_timeout`` can be added: nginx.conf includes
    modules-enabled (Debian's does; predicted when apt is about to install nginx), and no other file
    sets it already (a second one would fail ``nginx -t``)."""
    probe = facts.probes.get("nginx_T")
    if probe is None or not probe.output:
        return not nginx_installed(facts) and (facts.package_manager or "apt") == "apt"
    includes = False
    for name, content in split_dump(probe.output):
        code = _strip_comments(content)
        if name == SHUTDOWN_FILE:
            continue
        if re.search(r"(?:^|[;{}\s])worker_shutdown_timeout\s", code):
            return False
        if re.search(r"(?:^|[;}\s])include\s+\"?" + re.escape(MODULES_ENABLED) + r"/\*", code):
            includes = True
    return includes


def render_shutdown() -> bytes:
    return (f"# Actvt (mTLS): after a reload (a revoked client, a renewed certificate), old nginx workers\n"
            f"# close their open connections - WebSockets included - within {SHUTDOWN_SECONDS} s instead of\n"
            f"# keeping them, and the old configuration, forever.\n"
            f"# Managed by actvt-installer {__version__}; re-running the installer rewrites this file.\n"
            f"worker_shutdown_timeout {SHUTDOWN_SECONDS}s;\n").encode()


def nginx_installed(facts) -> bool:
    return any(facts.has_package(name) for name in NGINX_PACKAGES)


def uses_sites(facts) -> bool:
    """sites-available/sites-enabled, or conf.d."""
    if SITES_ENABLED in facts.dirs:
        return True
    return not nginx_installed(facts) and (facts.package_manager or "apt") == "apt"


def ipv6(facts) -> bool:
    return IPV6_PROC in facts.files


def check_proxy_possible(config, decisions) -> None:
    if decisions.mode != "proxy" or decisions.webserver in ("nginx", "none"):
        return
    from installer.concerns.certbot import _instructions_other_web_server

    raise NginxError(_instructions_other_web_server(config, decisions))


# --- actions ---------------------------------------------------------------------------------------------


def test_and_reload(when_changed: Tuple[str, ...], what: str) -> Tuple[Command, Command]:
    """``nginx -t`` then a reload, each only when one of ``when_changed`` changed in this run. When
    ``nginx -t`` fails, the run stops and the engine puts back the files it wrote: nginx, not yet
    reloaded, keeps serving what it served. Also for ``actvt client revoke`` (CRL changes)."""
    return (
        Command(("nginx", "-t"), reason=f"checks nginx's configuration before the reload ({what})",
                when_changed=when_changed, timeout=60),
        # if a later step fails, the files are put back and nginx reloaded again, so it does not go on
        # serving what this run wrote (e.g. the challenge server after a failed certbot)
        Command(("systemctl", "reload", "nginx"), reason=f"nginx serves {what}", when_changed=when_changed,
                timeout=120, on_rollback=(("systemctl", "reload", "nginx"),)),
    )


def _placed(path_sites: str, link: str, path_confd: str, content: bytes, sites: bool, facts,
            reason: str) -> Tuple[list, Tuple[str, ...]]:
    """The file in the chosen layout (and removal of the other layout's copy). Returns the actions
    and every path whose change needs a reload."""
    actions: list = []
    if sites:
        actions += [File(path_sites, content, 0o644, reason=reason),
                    Symlink(link, path_sites, reason="enables it")]
        if path_confd in facts.files:
            actions.append(Absent(path_confd, reason="replaced by " + path_sites))
    else:
        actions.append(File(path_confd, content, 0o644, reason=reason))
        if link in facts.files or path_sites in facts.files:
            actions += [Absent(link, reason="replaced by " + path_confd), Absent(path_sites, reason="replaced by " + path_confd)]
    return actions, (path_sites, link, path_confd)


def _remove(files: Iterable[str], facts, reason: str) -> list:
    return [Absent(path, reason=reason) for path in files if path in facts.files]


def notes(config, facts, decisions, ctx=None) -> List[str]:
    """What the user must do or know (for the summary; also in the step titles)."""
    if decisions.mode != "proxy":
        return []
    found = []
    served = already_served(config, facts)
    if served:
        found.append(f"nginx already serves {config.domain} ({served}): add `include {paths.NGINX_SNIPPET};` to "
                     f"its `listen 443 ssl` server block, then run `nginx -t && systemctl reload nginx`; "
                     f"Let's Encrypt's http-01 check must find {challenge_webroot(config, facts)}/.well-known/acme-challenge/ "
                     "served on port 80 by that site")
    if config.enable_mtls and not shutdown_timeout_possible(facts):
        found.append("nginx's worker_shutdown_timeout is set elsewhere or cannot be added: after a revocation, "
                     "a revoked client's open WebSocket lasts until old workers end (set worker_shutdown_timeout)")
    probe = facts.probes.get("nginx_T")
    if probe is not None and probe.returncode != 0:
        tail = " | ".join(probe.output.strip().splitlines()[-2:])
        found.append(f"nginx's current configuration does not pass `nginx -T` ({tail}); "
                     "`nginx -t` runs again after the installer's changes")
    return found


def _title(title: str, found: List[str]) -> str:
    return title + (" - note: " + "; ".join(found) if found else "")


def plan_nginx_challenge(config, facts, decisions, ctx) -> List[Step]:
    """Before certbot: nginx installed and running, and the domain's port 80 answering the challenge."""
    if decisions.mode != "proxy":
        return []
    check_proxy_possible(config, decisions)
    actions: list = []
    installing = decisions.webserver == "none" and not nginx_installed(facts)
    if installing:
        actions.append(Packages(facts.package_manager or "apt", ("nginx",),
                                reason="proxy mode: nginx serves wss://{}/actvt (none runs here)".format(config.domain)))
    served = already_served(config, facts)
    watched: Tuple[str, ...] = ()
    if served:
        actions += _remove(CHALLENGE_FILES, facts, f"{config.domain} is served by {served}")
        watched = CHALLENGE_FILES
    else:
        placed, watched = _placed(CHALLENGE_SITE, CHALLENGE_LINK, CHALLENGE_CONFD, render_challenge(config, ipv6(facts)),
                                  uses_sites(facts), facts,
                                  f"port 80 for {config.domain}: ACME http-01 challenges from the webroot, "
                                  "else a redirect to https")
        actions += placed
    check, reload = test_and_reload(watched, f"port 80 for {config.domain}")
    actions += [check,
                Service("nginx", reason="proxy mode: nginx serves wss://{}/actvt".format(config.domain),
                        diagnose=(("nginx", "-t"),)),
                reload]
    return [Step(_title("nginx: port 80 for the certificate challenge", notes(config, facts, decisions)),
                 tuple(actions))]


def plan_nginx_site(config, facts, decisions, ctx) -> List[Step]:
    """After certbot and mTLS: the 443 server (or the snippet); in standalone mode, removal of what
    an earlier proxy-mode run left."""
    from installer.concerns.certbot import fullchain, privkey

    if decisions.mode != "proxy":
        leftovers = _remove(OUR_FILES, facts, "standalone mode: Vector serves clients itself")
        if not leftovers:
            return []
        return [Step("nginx: removing the proxy setup of an earlier run",
                     tuple(leftovers) + test_and_reload(OUR_FILES, "the configuration without Actvt"))]
    check_proxy_possible(config, decisions)
    inputs: Tuple[str, ...] = (fullchain(config.domain), privkey(config.domain))
    if config.enable_mtls:
        inputs += (paths.CA_CERT, mtls.CRL, mtls.cert_path(config.mtls_client_cn),
                   mtls.key_path(config.mtls_client_cn))
    served = already_served(config, facts)
    if served:
        actions = [File(paths.NGINX_SNIPPET, render_snippet(config), 0o644,
                        reason=f"{config.domain} is already served by {served}: include this file there")]
        actions += _remove(SITE_FILES, facts, f"{config.domain} is served by {served}")
        title = f"nginx: snippet for the site that serves {config.domain}"
        watched = (paths.NGINX_SNIPPET,) + SITE_FILES
    else:
        actions, watched = _placed(paths.NGINX_SITE, paths.NGINX_SITE_LINK, paths.NGINX_CONFD_SITE,
                                   render_site(config, ipv6(facts)), uses_sites(facts), facts,
                                   f"wss://{config.domain}/actvt -> Vector on 127.0.0.1:{config.vector_port}")
        actions += _remove((paths.NGINX_SNIPPET,), facts, "the dedicated server block replaces the snippet")
        title = f"nginx: wss://{config.domain}/actvt"
    # With mTLS, revocation must also end a revoked client's open WebSocket: bound how long old
    # workers keep connections after a reload. Without mTLS nothing global is changed.
    if config.enable_mtls and shutdown_timeout_possible(facts):
        actions.append(File(SHUTDOWN_FILE, render_shutdown(), 0o644,
                            reason=f"after a reload, open connections of old workers close within {SHUTDOWN_SECONDS} s "
                                   "(a revoked client is disconnected)"))
    else:
        actions += _remove((SHUTDOWN_FILE,), facts, "not needed" if not config.enable_mtls else "set elsewhere")
    watched += (SHUTDOWN_FILE,)
    actions += list(test_and_reload(watched + inputs, f"wss://{config.domain}/actvt"))
    return [Step(_title(title, notes(config, facts, decisions) if served or config.enable_mtls else []),
                 tuple(actions))]
