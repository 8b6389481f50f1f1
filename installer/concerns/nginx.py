"""nginx, the proxy front (``FRONT``): the ACME challenge server, the site, or only a snippet.

Two planners (``CONCERN``):

- ``plan_nginx_challenge`` (``Phase.CHALLENGE``, before certbot): installs nginx when none runs (proxy
  mode asked for explicitly must not end with Vector on 127.0.0.1 and nothing in front of it); writes
  a port-80 server for the domain that serves ``<webroot>/.well-known/acme-challenge/`` and redirects
  the rest to https, so that certbot's webroot validation is really answered (the bash installer only
  hoped the default site would). Another web server on 80/443 is refused by the mode decision;
- ``plan_nginx_site`` (``Phase.FRONT``, after certbot and mTLS): the dedicated 443 server for the domain with the
  ``/actvt`` and ``/actvt/health`` locations and, with mTLS, client verification against the CA and
  its CRL (``ssl_crl``: this is how a revoked client is refused in proxy mode) and the first
  client's certificate presented to Vector. When ``nginx -T`` shows that another file of the host
  already has ``server_name <domain>``, only ``/etc/nginx/snippets/actvt-vector-location.conf`` is
  written and the user is told to include it (``notes``); files of an earlier dedicated setup are
  then removed.

What ``nginx -T`` shows is one probe with its parser (``NGINX_DUMP`` -> ``NginxDump``): the file that
already serves the domain, the folder it serves the challenge from, whether a main-level
``worker_shutdown_timeout`` can be added.

Layout: ``sites-available`` + a link in ``sites-enabled`` where ``/etc/nginx/sites-enabled`` exists
(or nginx is yet to be installed by apt, whose package makes it), else ``/etc/nginx/conf.d``. Files of
the other layout left by an earlier run are removed, so that the domain is never served twice.

Every change is followed by ``nginx -t`` and then ``systemctl reload nginx``, as Commands that run
only when one of the files they depend on changed in this run. When ``nginx -t`` fails the engine
puts back the files this run wrote, before anything reloads: nginx keeps serving what it served.

User values: the domain is an RFC 1123 host name (validated by config); paths are quoted and may not
hold characters nginx would read as something else (``$``, quotes, backslashes, control characters).
"""

import dataclasses
import re
from typing import Iterable, List, Optional, Tuple

from installer import __version__
from installer.core import paths
from installer.core.actions import Absent, Command, File, Packages, Service, Step, Symlink
from installer.core.concern import FAIL, PASS, SKIP, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.errors import ActvtError
from installer.core.facts import Probe, ProbeResult
from installer.core.front import SYSTEM_CA_BUNDLES, Front, upstream_ca_file
from installer.core.render import render_file

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

READS = (SITES_ENABLED, IPV6_PROC) + OUR_FILES


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


def _block(lines: Iterable[str], indent: str) -> str:
    """Lines for a ``@MARKER@`` that sits on its own line (empty: the line disappears)."""
    return "\n".join(indent + line if line else "" for line in lines)


# --- rendering ----------------------------------------------------------------------------------------


DEFAULT_UPSTREAM_CA = SYSTEM_CA_BUNDLES["apt"]


def render_locations(config, indent: str = "", upstream_ca: str = DEFAULT_UPSTREAM_CA) -> str:
    """The ``/actvt/health`` and ``/actvt`` locations (the snippet, and the inside of the site);
    ``upstream_ca``: what verifies Vector's certificate (``core.front.upstream_ca_file``)."""
    guard, upstream = [], []
    if config.enable_mtls:
        guard = ["# mTLS: only clients whose certificate the CA signed and the CRL does not list",
                 "if ($ssl_client_verify != SUCCESS) {",
                 "    return 496;  # SSL Certificate Required",
                 "}",
                 ""]
        upstream = ["",
                    "# mTLS to Vector: nginx presents its own identity (never a user's, never handed out)",
                    f"proxy_ssl_certificate {quote(paths.PROXY_CERT, 'the proxy identity')};",
                    f"proxy_ssl_certificate_key {quote(paths.PROXY_KEY, 'the proxy identity')};"]
    text = render_file("nginx-location.conf", {
        "PORT": str(int(config.vector_port)),
        "DOMAIN": _check_domain(config.domain),
        "MTLS_GUARD": _block(guard, "    "),
        "MTLS_UPSTREAM": _block(upstream, "    "),
        "UPSTREAM_CA": quote(upstream_ca, "the system's CA bundle"),
    })
    if not indent:
        return text
    return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def mtls_server_lines(config) -> List[str]:
    """Server-level client verification (``optional``, so that /actvt/health stays open)."""
    if not config.enable_mtls:
        return []
    # a CA kept elsewhere without a CRL file: no ssl_crl (nginx would refuse every client of a CA
    # whose CRL it lacks)
    crl = [f"ssl_crl {quote(paths.MTLS_CRL, 'CRL')};"] if not config.mtls_ca_file or config.mtls_crl_file else []
    return ["",
            "# mTLS: clients are asked for a certificate signed by the Actvt CA; revoked ones (CRL) fail.",
            f"ssl_client_certificate {quote(paths.CA_CERT, 'CA certificate')};",
            "ssl_verify_client optional;",
            "ssl_verify_depth 2;"] + crl


def render_site(config, ipv6: bool, upstream_ca: str = DEFAULT_UPSTREAM_CA) -> bytes:
    domain = _check_domain(config.domain)
    return render_file("nginx-site.conf", {
        "VERSION": __version__,
        "DOMAIN": domain,
        "PORT": str(int(config.vector_port)),
        "LISTEN_V6": "    listen [::]:443 ssl http2;" if ipv6 else "",
        "FULLCHAIN": quote(paths.fullchain(domain), "certificate"),
        "PRIVKEY": quote(paths.privkey(domain), "private key"),
        "MTLS_SERVER": _block(mtls_server_lines(config), "    "),
        "LOCATIONS": "\n" + render_locations(config, "    ", upstream_ca).rstrip("\n"),
    }).encode()


def render_snippet(config, upstream_ca: str = DEFAULT_UPSTREAM_CA) -> bytes:
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
    return ("\n".join(head + [""] + server) + "\n" + render_locations(config, upstream_ca=upstream_ca)).encode()


def render_challenge(config, webroot: str, ipv6: bool) -> bytes:
    return render_file("nginx-challenge.conf", {
        "VERSION": __version__,
        "DOMAIN": _check_domain(config.domain),
        "WEBROOT": quote(webroot, "ACTVT_NGINX_WEBROOT"),
        "LISTEN_V6": "    listen [::]:80;" if ipv6 else "",
    }).encode()


# --- facts: what `nginx -T` shows ---------------------------------------------------------------------


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


def _blocks(code: str, keyword: str) -> List[Tuple[str, str]]:
    """(arguments, body) of the ``keyword [args] { ... }`` blocks of ``code`` (comments already stripped)."""
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


@dataclasses.dataclass(frozen=True)
class NginxDump:
    """The parsed fact of ``nginx -T``: the configuration files nginx reads, other than ours."""

    returncode: int
    files: Tuple[Tuple[str, str], ...]  # (file, content without comments)
    tail: str  # its last lines (the error, when it failed)

    @classmethod
    def parse(cls, result: ProbeResult) -> "NginxDump":
        sections = tuple((name, _strip_comments(content)) for name, content in split_dump(result.output))
        return cls(result.returncode, sections, " | ".join(result.output.strip().splitlines()[-2:]))

    @property
    def error_file(self) -> Optional[str]:
        """The file a failed test names (``nginx: [emerg] ... in /etc/nginx/conf.d/x.conf:3``)."""
        found = re.findall(r" in (/[^\s:]+):\d+", self.tail) if self.returncode != 0 else []
        return found[0] if found else None

    def _others(self):
        return [(name, code) for name, code in self.files if name not in OUR_FILES]

    def serving_file(self, domain: str) -> Optional[str]:
        """The first configuration file (other than ours) with ``server_name`` naming ``domain``."""
        for name, code in self._others():
            for match in re.finditer(r"(?:^|[;{}\s])server_name\s+([^;{}]*);", code):
                if any(_name_matches(token, domain) for token in match.group(1).split()):
                    return name
        return None

    def served_webroot(self, domain: str) -> Optional[str]:
        """The folder the existing port-80 server of ``domain`` serves ``/.well-known/acme-challenge/``
        from: the ``root`` of a location for that path, else the server's ``root``. None when it cannot
        be told (no root, variables, a server that only listens on 443)."""
        for _, code in self._others():
            for _, body in _blocks(code, "server"):
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

    def shutdown_timeout_addable(self) -> bool:
        """nginx.conf includes modules-enabled and no other file sets ``worker_shutdown_timeout``
        (a second one would fail ``nginx -t``)."""
        includes = False
        for name, code in self.files:
            if name == SHUTDOWN_FILE:
                continue
            if re.search(r"(?:^|[;{}\s])worker_shutdown_timeout\s", code):
                return False
            if re.search(r"(?:^|[;}\s])include\s+\"?" + re.escape(MODULES_ENABLED) + r"/\*", code):
                includes = True
        return includes


NGINX_DUMP = Probe("nginx_T", ("nginx", "-T"), NginxDump.parse)


def _dump(facts) -> Optional[NginxDump]:
    """nginx -T as parsed, when it ran and printed something."""
    dump = facts.fact(NGINX_DUMP)
    return dump if dump is not None and dump.files else None


def challenge_webroot(config, facts) -> str:
    """certbot's ``-w``: ACTVT_NGINX_WEBROOT when given; when another site already serves the domain
    on port 80, the folder that site serves the challenge from (else our challenge server would
    not be used, and the webroot would never be asked); else the default."""
    dump = _dump(facts)
    if not config.is_set("ACTVT_NGINX_WEBROOT") and dump is not None and dump.serving_file(config.domain):
        found = dump.served_webroot(config.domain)
        if found:
            return found
    return config.nginx_webroot


def already_served(config, facts) -> Optional[str]:
    dump = _dump(facts)
    return dump.serving_file(config.domain) if dump is not None else None


def shutdown_timeout_possible(facts) -> bool:
    """Whether a main-level ``worker_shutdown_timeout`` can be added: nginx.conf includes
    modules-enabled (Debian's does; predicted when apt is about to install nginx), and no other file
    sets it already."""
    dump = _dump(facts)
    if dump is None:
        return not nginx_installed(facts) and (facts.package_manager or "apt") == "apt"
    return dump.shutdown_timeout_addable()


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


# --- actions ---------------------------------------------------------------------------------------------


def test_and_reload(when_changed: Tuple[str, ...], what: str) -> Tuple[Command, Command]:
    """``nginx -t`` then a reload, each only when one of ``when_changed`` changed in this run. When
    ``nginx -t`` fails, the run stops and the engine puts back the files it wrote: nginx, not yet
    reloaded, keeps serving what it served. The front's ``check_and_reload`` (``actvt client`` after a
    CRL or CA change, uninstall)."""
    return (
        Command(("nginx", "-t"), reason=f"checks nginx's configuration before the reload ({what})",
                when_changed=when_changed, timeout=60),
        # if a later step fails, the files are put back and nginx reloaded again, so it does not go on
        # serving what this run wrote (e.g. the challenge server after a failed certbot). try-: a
        # stopped nginx (a mode switch, uninstall) stays stopped and the run does not fail on it; it
        # reads the files when it starts.
        Command(("systemctl", "try-reload-or-restart", "nginx"), reason=f"nginx serves {what}",
                when_changed=when_changed, timeout=120, on_rollback=(("systemctl", "try-reload-or-restart", "nginx"),)),
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
    """What the user must do or know (for the summary)."""
    if decisions.mode != "proxy" or decisions.front is not FRONT:
        return []
    found = []
    served = already_served(config, facts)
    if served:
        found.append(f"nginx already serves {config.domain} ({served}): add `include {paths.NGINX_SNIPPET};` to "
                     f"its `listen 443 ssl` server block, then run `nginx -t && systemctl reload nginx`; "
                     f"Let's Encrypt's http-01 check must find {decisions.webroot}/.well-known/acme-challenge/ "
                     "served on port 80 by that site")
    if config.enable_mtls and not shutdown_timeout_possible(facts):
        found.append("nginx's worker_shutdown_timeout is set elsewhere or cannot be added: after a revocation, "
                     "a revoked client's open WebSocket lasts until old workers end (set worker_shutdown_timeout)")
    dump = facts.fact(NGINX_DUMP)
    if dump is not None and dump.returncode != 0:
        found.append(f"nginx's current configuration does not pass `nginx -T` ({dump.tail}); "
                     "`nginx -t` runs again after the installer's changes")
    return found


def plan_nginx_challenge(config, facts, decisions, ctx) -> List[Step]:
    """Before certbot: nginx installed and running, and the domain's port 80 answering the challenge."""
    if decisions.mode != "proxy" or decisions.front is not FRONT:
        return []
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
        placed, watched = _placed(CHALLENGE_SITE, CHALLENGE_LINK, CHALLENGE_CONFD, render_challenge(config, decisions.webroot, ipv6(facts)),
                                  uses_sites(facts), facts,
                                  f"port 80 for {config.domain}: ACME http-01 challenges from the webroot, "
                                  "else a redirect to https")
        actions += placed
    check, reload = test_and_reload(watched, f"port 80 for {config.domain}")
    actions += [check,
                Service("nginx", reason="proxy mode: nginx serves wss://{}/actvt".format(config.domain),
                        diagnose=(("nginx", "-t"),)),
                reload]
    return [Step("nginx: port 80 for the certificate challenge", tuple(actions))]


def plan_nginx_site(config, facts, decisions, ctx) -> List[Step]:
    """After certbot and mTLS: the 443 server (or the snippet); in standalone mode, removal of what
    an earlier proxy-mode run left."""
    if decisions.mode != "proxy" or decisions.front is not FRONT:
        leftovers = _remove(OUR_FILES, facts, "standalone mode: Vector serves clients itself")
        if not leftovers:
            return []
        return [Step("nginx: removing the proxy setup of an earlier run",
                     tuple(leftovers) + test_and_reload(OUR_FILES, "the configuration without Actvt"))]
    inputs: Tuple[str, ...] = (paths.fullchain(config.domain), paths.privkey(config.domain))
    if config.enable_mtls:
        inputs += (paths.CA_CERT, paths.MTLS_CRL, paths.PROXY_CERT, paths.PROXY_KEY)
    served = already_served(config, facts)
    if served:
        actions = [File(paths.NGINX_SNIPPET, render_snippet(config, upstream_ca_file(facts)), 0o644,
                        reason=f"{config.domain} is already served by {served}: include this file there")]
        actions += _remove(SITE_FILES, facts, f"{config.domain} is served by {served}")
        title = f"nginx: snippet for the site that serves {config.domain}"
        watched = (paths.NGINX_SNIPPET,) + SITE_FILES
    else:
        actions, watched = _placed(paths.NGINX_SITE, paths.NGINX_SITE_LINK, paths.NGINX_CONFD_SITE,
                                   render_site(config, ipv6(facts), upstream_ca_file(facts)), uses_sites(facts), facts,
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
    return [Step(title, tuple(actions))]


def uninstall_reload(entries, facts, options) -> List[Step]:
    """After uninstall removed or put back files of nginx's, ``nginx -t`` and a reload."""
    nginx_paths = tuple(path for path in entries if path.startswith("/etc/nginx/"))
    if not nginx_paths or not nginx_installed(facts):
        return []
    return [Step("Reloading nginx", test_and_reload(nginx_paths, "the configuration without the Actvt site"))]


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    """Proxy mode: nginx's configuration passes its test (``nginx -T`` tests it as ``nginx -t`` does)."""
    if decisions.mode != "proxy" or decisions.front not in (None, FRONT):
        return []
    dump = facts.fact(NGINX_DUMP)
    if dump is None:
        return [Finding("nginx.config", SKIP, "nginx -t: not run (nginx not found, or --root)")]
    if dump.returncode == 0:
        return [Finding("nginx.config", PASS, "nginx -t: the configuration is valid")]
    where = dump.error_file
    fix = ("sudo actvt install  (rewrites it)" if where in OUR_FILES else
           f"correct {where or 'the file it names'}, then: sudo nginx -t && sudo systemctl reload nginx")
    return [Finding("nginx.config", FAIL, f"nginx -t fails: {dump.tail} (nginx serves what it loaded last; a "
                                          "reload or a restart would fail)", fix)]


#: nginx's `return 496` (the location's guard) reaches the client as a 400 with this page
#: (ngx_http_special_response.c): 495-497 are nginx's own codes, never sent as they are.
NO_CERTIFICATE = (400, b"No required SSL certificate was sent")

FRONT = Front(name="nginx", packages=NGINX_PACKAGES, challenge_files=CHALLENGE_FILES, no_certificate=NO_CERTIFICATE,
              check_and_reload=test_and_reload, challenge_webroot=challenge_webroot)

CONCERN = Concern(
    name="nginx",
    reads=lambda config: READS,
    probes=(NGINX_DUMP,),
    planners=(Planner(Phase.CHALLENGE, plan_nginx_challenge), Planner(Phase.FRONT, plan_nginx_site)),
    notes=notes,
    uninstall=(Uninstaller(Undo.RELOAD, uninstall_reload),),
    checks=Checks(doctor_checks),
)
