"""Apache (Debian's ``apache2``), the second proxy front (``FRONT``): the ACME challenge, the site, or only a snippet.

Chosen by the mode decision (``plans.registry.decide``) when apache2 serves 80/443, or by
ACTVT_INSTALL_MODE=proxy when it is installed but stopped. Two planners (``CONCERN``), as nginx's:

- ``plan_apache_challenge`` (``Phase.CHALLENGE``, before certbot): refuses a configuration that
  already fails ``apache2ctl -S`` (before anything is written: every reload would fail); enables the
  modules the front needs, and those they depend on, with ``a2enmod`` (only those not loaded, recorded
  in ``MODULES_RECORD`` so that uninstall disables exactly those, ``a2dismod -p``); makes
  ``/.well-known/acme-challenge/`` of the domain on port 80 answer from ``WEBROOT``, a folder of the
  installer's own (never the site's document root): a port-80 virtual host of the domain, or, when
  another one already names it, a main-server Alias;
- ``plan_apache_site`` (``Phase.FRONT``, after certbot and mTLS): a 443 virtual host of the domain with
  ``/actvt`` proxied to Vector and ``/actvt/health`` answered by Apache (``HEALTH_FILE``), or, when
  ``apache2ctl -S`` shows a 443 virtual host of the domain in another file, only ``SNIPPET`` to include
  in it (the user is told, ``notes``).

The proxy: ``ProxyPass … upgrade=websocket`` (mod_proxy_http tunnels the upgrade since 2.4.47;
before, mod_proxy_wstunnel and a ``wss://`` upstream). TLS upstream, set in a ``<Proxy>`` section of
Vector's URL alone (the site's other proxies keep their own settings): Vector's certificate verified
against ``core.front.upstream_ca_file`` and checked for the domain (``ProxyPreserveHost``: mod_proxy
checks the peer name against the request's host, not 127.0.0.1); with mTLS the proxy's own identity
(``SSLProxyMachineCertificateFile``: certificate and key in one file, which ``concerns.mtls`` writes
at ``Front.proxy_identity_pem``).

mTLS: Apple's TLS stack offers no TLS 1.3 post-handshake authentication, which a per-directory
``SSLVerifyClient`` needs (Apache renegotiates there: on TLS 1.3 that is post-handshake auth, and the
app's request fails). So the client is asked for its certificate at the virtual host, in the
handshake (``SSLVerifyClient optional``: the site's other pages stay open), and ``/actvt`` is refused
unless ``SSL_CLIENT_VERIFY`` is ``SUCCESS``. A certificate of another CA, or one the CRL lists
(``SSLCARevocationFile``, ``SSLCARevocationCheck chain``), fails the handshake itself.

Revocation and open WebSockets: a graceful reload (``systemctl reload apache2``) lets old children
keep the tunnels they hold, with the old CRL, for as long as they last; ``GracefulShutdownTimeout``
bounds only a graceful *stop*, and mod_proxy has no lifetime for a tunnel that is not idle (Vector
writes every few seconds). A restart of Apache would cut the site's other requests; a restart of
Vector ends only the tunnels to Vector (the app reconnects, and the new connection meets the new
CRL). So after the CRL changes the front's ``check_and_reload`` restarts Vector after the reload.

Every change is followed by ``apache2ctl configtest`` and then ``systemctl reload apache2``, as
Commands that run only when one of the files they depend on changed in this run; a failed test
stops the run and the engine puts back the files it wrote before anything reloads.
"""

import dataclasses
import fnmatch
import re
from typing import List, Optional, Tuple

from installer import __version__
from installer.core import paths
from installer.core.actions import Absent, Command, Directory, File, Service, Step, Symlink
from installer.core.concern import FAIL, PASS, SKIP, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.errors import ActvtError
from installer.core.facts import Probe, ProbeResult
from installer.core.front import Front, upstream_ca_file
from installer.core.render import render_file

ETC = "/etc/apache2"
SITE = f"{ETC}/sites-available/actvt-vector.conf"
SITE_LINK = f"{ETC}/sites-enabled/actvt-vector.conf"
SNIPPET = f"{ETC}/actvt-vector-location.conf"
MODS_AVAILABLE = f"{ETC}/mods-available"  # read for the `# Depends:` lines a2enmod follows
CHALLENGE_SITE = f"{ETC}/sites-available/actvt-vector-acme.conf"
CHALLENGE_SITE_LINK = f"{ETC}/sites-enabled/actvt-vector-acme.conf"
CHALLENGE_ALIAS = f"{ETC}/conf-available/actvt-vector-acme.conf"
CHALLENGE_ALIAS_LINK = f"{ETC}/conf-enabled/actvt-vector-acme.conf"
CHALLENGE_FILES = (CHALLENGE_SITE, CHALLENGE_SITE_LINK, CHALLENGE_ALIAS, CHALLENGE_ALIAS_LINK)
SITE_FILES = (SITE, SITE_LINK)
WEBROOT = "/var/lib/actvt-acme"  # certbot's -w: the installer's own, never a site's document root
HEALTH_DIR = "/var/lib/actvt-health"  # what Apache answers /actvt/health from (a folder of the installer's own)
HEALTH_FILE = f"{HEALTH_DIR}/health"
HEALTH_BODY = b"OK\n"  # as nginx's `return 200 "OK\n"` (templates/nginx-location.conf)
OUR_FILES = SITE_FILES + CHALLENGE_FILES + (SNIPPET, HEALTH_FILE)
MODULES_RECORD = f"{paths.STATE_DIR}/apache-modules"  # the modules this installer enabled (uninstall disables them)
# a2enmod's record of what the admin enabled or disabled (an empty file per module)
ENABLED_MARKERS = "/var/lib/apache2/module/enabled_by_admin"
DISABLED_MARKERS = "/var/lib/apache2/module/disabled_by_admin"
MACHINE_PEM = f"{paths.PROXY_DIR}/apache.pem"  # the proxy identity, certificate then key (root only)
PACKAGES = ("apache2",)
UPGRADE_SINCE = (2, 4, 47)  # mod_proxy_http tunnels `upgrade=websocket` itself from this version
READS = OUR_FILES + (MODULES_RECORD, MODS_AVAILABLE, ENABLED_MARKERS, DISABLED_MARKERS)


class ApacheError(ActvtError):
    """Apache cannot be set up as configured; nothing was changed."""


# --- facts: what `apache2ctl -S` and `apache2ctl -M` show ------------------------------------------


@dataclasses.dataclass(frozen=True)
class VirtualHost:
    port: int
    names: Tuple[str, ...]  # ServerName, then its ServerAlias names
    file: str


_HOST = re.compile(r"^\s*(?:port (\d+) namevhost|\S*:(\d+))\s+(\S+)\s+\((/[^:()]+):\d+\)\s*$")
_ALIAS = re.compile(r"^\s+(?:wild )?alias\s+(\S+)\s*$")


@dataclasses.dataclass(frozen=True)
class ApacheHosts:
    """The parsed fact of ``apache2ctl -S``: the virtual hosts Apache would serve, and whether its
    configuration parses (the command reads and checks it as ``configtest`` does)."""

    returncode: int
    hosts: Tuple[VirtualHost, ...]
    tail: str  # its last lines (the error, when it failed)

    @classmethod
    def parse(cls, result: ProbeResult) -> "ApacheHosts":
        hosts: List[VirtualHost] = []
        for line in result.output.splitlines():
            found = _HOST.match(line)
            if found:
                hosts.append(VirtualHost(int(found.group(1) or found.group(2)), (found.group(3).lower(),),
                                         found.group(4)))
                continue
            alias = _ALIAS.match(line)
            if alias and hosts:
                last = hosts[-1]
                hosts[-1] = dataclasses.replace(last, names=last.names + (alias.group(1).lower(),))
        # the error without apachectl's boilerplate (`Action '-S' failed.`, the pointer to the error log)
        lines = [line.strip() for line in result.output.strip().splitlines() if line.strip()
                 and "AH00558" not in line and not line.startswith("Action '") and "error log may have" not in line]
        return cls(result.returncode, tuple(dict.fromkeys(hosts)), " | ".join(lines[-2:]))

    def serving_file(self, domain: str, port: int) -> Optional[str]:
        """The first file (other than ours) with a virtual host on ``port`` named ``domain``."""
        for host in self.hosts:
            if host.port == port and host.file not in OUR_FILES and any(_matches(name, domain) for name in host.names):
                return host.file
        return None


def _matches(name: str, domain: str) -> bool:
    """ServerName/ServerAlias against the domain (an alias may hold ``*`` and ``?``, as Apache matches it)."""
    return fnmatch.fnmatchcase(domain, name.rstrip("."))


def parse_modules(result: ProbeResult) -> Optional[Tuple[str, ...]]:
    """``apache2ctl -M``: the loaded modules' short names (``ssl`` for ``ssl_module (shared)``)."""
    if result.returncode != 0:
        return None
    return tuple(found.group(1) for found in re.finditer(r"^\s*(\w+)_module\s+\((?:shared|static)\)", result.output, re.M))


APACHE_HOSTS = Probe("apache2ctl_S", ("apache2ctl", "-S"), ApacheHosts.parse)
APACHE_MODULES = Probe("apache2ctl_M", ("apache2ctl", "-M"), parse_modules)


def _hosts(facts) -> Optional[ApacheHosts]:
    return facts.fact(APACHE_HOSTS)


def installed(facts) -> bool:
    return any(facts.has_package(name) for name in PACKAGES)


def version(facts) -> Tuple[int, ...]:
    """apache2's upstream version from the package (``2.4.57-2`` -> (2, 4, 57)); unknown: the oldest."""
    found = re.match(r"(?:\d+:)?(\d+)\.(\d+)\.(\d+)", facts.packages.get("apache2", ""))
    return tuple(int(part) for part in found.groups()) if found else (2, 4, 0)


def needed_modules(facts) -> Tuple[str, ...]:
    return ("alias", "ssl", "proxy", "proxy_http") + (() if version(facts) >= UPGRADE_SINCE else ("proxy_wstunnel",))


_DEPENDS = re.compile(r"^# Depends:\s+(.*?)\s*$")


def module_dependencies(facts, name: str) -> Tuple[str, ...]:
    """The modules a2enmod enables with ``name``: the ``# Depends:`` line of its ``.load`` file, read
    as a2enmod reads it (among the comment lines before the first directive)."""
    text = facts.files.get(f"{MODS_AVAILABLE}/{name}.load", b"").decode(errors="replace")
    for line in text.splitlines():
        found = _DEPENDS.match(line)
        if found:
            return tuple(item for item in re.split(r"[\s,]+", found.group(1)) if re.fullmatch(r"\w+", item))
        if re.match(r"\s*[^#\s]", line):
            break
    return ()


def modules_to_enable(facts, loaded: Tuple[str, ...]) -> Tuple[str, ...]:
    """The modules the front needs and those they depend on, that are not loaded, dependencies first:
    a2enmod is given every module it will enable, so that all of them are recorded (and uninstall
    disables exactly those, not leaving socache_shmcb behind ssl)."""
    order: List[str] = []

    def visit(name: str, path: Tuple[str, ...]) -> None:
        if name in order or name in path:
            return
        for dependency in module_dependencies(facts, name):
            visit(dependency, path + (name,))
        order.append(name)

    for name in needed_modules(facts):
        visit(name, ())
    return tuple(name for name in order if name not in loaded)


def recorded_modules(facts) -> Tuple[str, ...]:
    text = facts.files.get(MODULES_RECORD, b"").decode(errors="replace")
    return tuple(name for name in text.split() if re.fullmatch(r"\w+", name))


def served(config, facts, port: int) -> Optional[str]:
    hosts = _hosts(facts)
    return hosts.serving_file(config.domain, port) if hosts is not None else None


def is_front(decisions) -> bool:
    return decisions.mode == "proxy" and decisions.front is FRONT


# --- rendering ----------------------------------------------------------------------------------------


def _lines(items: List[str], indent: str) -> str:
    return "\n".join(indent + line if line else "" for line in items)


def mtls_server_lines(config) -> List[str]:
    """Client verification at the virtual host, in the handshake (see the module's docstring: a
    per-directory SSLVerifyClient would need TLS 1.3 post-handshake auth, which Apple's stack lacks)."""
    if not config.enable_mtls:
        return []
    # a CA kept elsewhere without a CRL file: no revocation check (Apache would refuse every client
    # of a CA whose CRL it lacks, as nginx would)
    crl = ([f'SSLCARevocationFile "{paths.MTLS_CRL}"', "SSLCARevocationCheck chain"]
           if not config.mtls_ca_file or config.mtls_crl_file else [])
    return ["# mTLS: clients are asked for a certificate of the Actvt CA in the handshake; revoked ones (CRL) fail.",
            f'SSLCACertificateFile "{paths.CA_CERT}"', "SSLVerifyClient optional", "SSLVerifyDepth 2"] + crl


def render_locations(config, facts) -> str:
    guard, upstream = [], []
    if config.enable_mtls:
        guard = ["# mTLS: only clients whose certificate the CA signed and the CRL does not list",
                 "<RequireAll>",
                 "    Require expr \"%{SSL_CLIENT_VERIFY} == 'SUCCESS'\"",
                 "</RequireAll>",
                 f'ErrorDocument 403 "{NO_CERTIFICATE[1].decode()}"']
        upstream = ["# mTLS to Vector: Apache presents its own identity (never a user's, never handed out)",
                    f'SSLProxyMachineCertificateFile "{MACHINE_PEM}"']
    port = int(config.vector_port)
    modern = version(facts) >= UPGRADE_SINCE
    return render_file("apache-location.conf", {
        "PORT": str(port),
        "DOMAIN": config.domain,
        "MTLS_SERVER": _lines(mtls_server_lines(config), ""),
        "MTLS_UPSTREAM": _lines(upstream, "    "),
        "MTLS_GUARD": _lines(guard, "    "),
        "UPSTREAM": f"{'https' if modern else 'wss'}://127.0.0.1:{port}/actvt",
        "UPGRADE": "upgrade=websocket " if modern else "",
        "UPSTREAM_CA": upstream_ca_file(facts),
        "HEALTH_FILE": HEALTH_FILE,
    })


def render_site(config, facts) -> bytes:
    body = render_locations(config, facts)
    return render_file("apache-site.conf", {
        "VERSION": __version__, "DOMAIN": config.domain, "PORT": str(int(config.vector_port)),
        "FULLCHAIN": paths.fullchain(config.domain), "PRIVKEY": paths.privkey(config.domain),
        "BODY": "".join("    " + line if line.strip() else line for line in body.splitlines(keepends=True)).rstrip("\n"),
    }).encode()


def render_snippet(config, facts) -> bytes:
    head = [f"# Actvt: include this file inside the <VirtualHost *:443> of {config.domain} (not in a <Location>):",
            f'#   Include "{SNIPPET}"',
            f"# Managed by actvt-installer {__version__}; re-running the installer rewrites this file.", ""]
    return ("\n".join(head) + render_locations(config, facts)).encode()


def render_challenge(config, facts) -> bytes:
    elsewhere = served(config, facts, 80)
    if elsewhere:
        return render_file("apache-challenge-alias.conf", {
            "VERSION": __version__, "DOMAIN": config.domain, "WEBROOT": WEBROOT, "SERVED": elsewhere}).encode()
    return render_file("apache-challenge.conf", {"VERSION": __version__, "DOMAIN": config.domain,
                                                 "WEBROOT": WEBROOT}).encode()


# --- actions ---------------------------------------------------------------------------------------------


def test_and_reload(when_changed: Tuple[str, ...], what: str) -> Tuple[Command, Command]:
    """``apache2ctl configtest`` then a graceful reload, each only when one of ``when_changed``
    changed in this run. A failed test stops the run; the engine puts back the files it wrote."""
    return (
        Command(("apache2ctl", "configtest"), reason=f"checks Apache's configuration before the reload ({what})",
                when_changed=when_changed, timeout=60),
        # try-: a stopped Apache (a mode switch, uninstall) stays stopped and the run does not fail on it
        Command(("systemctl", "try-reload-or-restart", "apache2"), reason=f"Apache serves {what}",
                when_changed=when_changed, timeout=120, on_rollback=(("systemctl", "try-reload-or-restart", "apache2"),)),
    )


def check_and_reload(when_changed: Tuple[str, ...], what: str) -> tuple:
    """The front's check and reload; when the CRL changed, Vector restarts after it, which ends the
    WebSockets old Apache children keep tunnelling (a revoked client's too; see the module's docstring)."""
    actions: tuple = test_and_reload(when_changed, what)
    if paths.MTLS_CRL in when_changed:
        actions += (Service("vector", restart_when_changed=(paths.MTLS_CRL,), wait_seconds=30,
                            reason="ends the open WebSockets that old Apache children hold with the old CRL"),)
    return actions


def _remove(files, facts, reason: str) -> list:
    return [Absent(path, reason=reason) for path in files if path in facts.files]


def refusal(facts) -> Optional[str]:
    """Why Apache's configuration as it is cannot take the front: it already fails its test."""
    hosts = _hosts(facts)
    if hosts is not None and hosts.returncode != 0:
        return (f"Apache's configuration already fails its test (apache2ctl -S: {hosts.tail}); every reload would "
                "fail, so the installer changes nothing. Correct it (see `sudo apache2ctl configtest`), then re-run. "
                "Nothing was changed.")
    return None


def plan_apache_challenge(config, facts, decisions, ctx) -> List[Step]:
    """Before certbot: the modules, Apache running, and the domain's port 80 answering the challenge."""
    if not is_front(decisions):
        return []
    problem = refusal(facts)
    if problem:
        raise ApacheError(problem)
    actions: list = []
    loaded = facts.fact(APACHE_MODULES) or ()
    missing = modules_to_enable(facts, loaded)
    if missing:
        actions.append(Command(("a2enmod", "-q") + missing, reason="modules the proxy needs (disabled again by uninstall)",
                               on_rollback=(("a2dismod", "-q", "-f", "-p") + missing,), timeout=60))
    record = tuple(sorted(set(recorded_modules(facts)) | set(missing)))
    if record:
        actions.append(File(MODULES_RECORD, ("\n".join(record) + "\n").encode(), 0o600,
                            reason="the Apache modules this installer enabled"))
    actions.append(Directory(WEBROOT, 0o755, reason="certbot's webroot for the http-01 challenge (the installer's own)"))
    actions.append(Directory(WEBROOT + "/.well-known", 0o755, reason="the challenge folder"))
    actions.append(Directory(WEBROOT + "/.well-known/acme-challenge", 0o755, reason="the challenge folder"))
    elsewhere = served(config, facts, 80)
    if elsewhere:
        path, link, others = CHALLENGE_ALIAS, CHALLENGE_ALIAS_LINK, (CHALLENGE_SITE, CHALLENGE_SITE_LINK)
        reason = f"{config.domain} on port 80 is served by {elsewhere}: an Alias answers the challenge there"
    else:
        path, link, others = CHALLENGE_SITE, CHALLENGE_SITE_LINK, (CHALLENGE_ALIAS, CHALLENGE_ALIAS_LINK)
        reason = f"port 80 for {config.domain}: ACME http-01 challenges from {WEBROOT}, else a redirect to https"
    actions += [File(path, render_challenge(config, facts), 0o644, reason=reason),
                Symlink(link, path, reason="enables it")]
    actions += _remove(others, facts, "replaced by " + path)
    watched = CHALLENGE_FILES + ((MODULES_RECORD,) if missing else ())
    check, reload = test_and_reload(watched, f"port 80 for {config.domain}")
    actions += [check, Service("apache2", reason=f"proxy mode: Apache serves wss://{config.domain}/actvt",
                               diagnose=(("apache2ctl", "configtest"),)), reload]
    return [Step("Apache: modules and port 80 for the certificate challenge", tuple(actions))]


def plan_apache_site(config, facts, decisions, ctx) -> List[Step]:
    """After certbot and mTLS: the 443 virtual host (or the snippet); when Apache is not the front,
    removal of what an earlier run left."""
    if not is_front(decisions):
        leftovers = _remove(OUR_FILES, facts, "Apache is not the proxy front of this install")
        if not leftovers:
            return []
        return [Step("Apache: removing the proxy setup of an earlier run",
                     tuple(leftovers) + (test_and_reload(OUR_FILES, "the configuration without Actvt")
                                         if installed(facts) else ()))]
    inputs: Tuple[str, ...] = (paths.fullchain(config.domain), paths.privkey(config.domain))
    if config.enable_mtls:
        inputs += (paths.CA_CERT, paths.MTLS_CRL, MACHINE_PEM)
    elsewhere = served(config, facts, 443)
    if elsewhere:
        actions = [File(SNIPPET, render_snippet(config, facts), 0o644,
                        reason=f"{config.domain} is already served by {elsewhere}: include this file there")]
        actions += _remove(SITE_FILES, facts, f"{config.domain} is served by {elsewhere}")
        title = f"Apache: snippet for the site that serves {config.domain}"
    else:
        actions = [File(SITE, render_site(config, facts), 0o644,
                        reason=f"wss://{config.domain}/actvt -> Vector on 127.0.0.1:{config.vector_port}"),
                   Symlink(SITE_LINK, SITE, reason="enables it")]
        actions += _remove((SNIPPET,), facts, "the site of its own replaces the snippet")
        title = f"Apache: wss://{config.domain}/actvt"
    actions = [Directory(HEALTH_DIR, 0o755, reason="what Apache answers /actvt/health from"),
               File(HEALTH_FILE, HEALTH_BODY, 0o644, reason="/actvt/health answers OK, as behind nginx")] + actions
    actions += list(test_and_reload((SNIPPET,) + SITE_FILES + inputs, f"wss://{config.domain}/actvt"))
    return [Step(title, tuple(actions))]


def notes(config, facts, decisions, ctx=None) -> List[str]:
    if not is_front(decisions):
        return []
    elsewhere = served(config, facts, 443)
    if elsewhere:
        return [f"Apache already serves {config.domain} on 443 ({elsewhere}): add `Include {SNIPPET}` inside its "
                "<VirtualHost *:443>, then run `apache2ctl configtest && systemctl reload apache2`"
                + ("; with mTLS it asks every visitor of that site for a client certificate (optional: browsers may "
                   "offer one)" if config.enable_mtls else "")]
    return []


def uninstall_steps(entries, facts, options) -> List[Step]:
    """The modules this installer enabled disabled again, then configtest and a reload (the files
    themselves are removed or put back from the manifest)."""
    touched = tuple(path for path in entries if path.startswith(ETC + "/") or path == MODULES_RECORD)
    if not touched or not installed(facts):
        return []
    actions: list = []
    modules = recorded_modules(facts)
    if modules:
        # -p: a2enmod marked them enabled by the admin (/var/lib/apache2/module/enabled_by_admin); a plain
        # a2dismod would leave disabled_by_admin markers instead: purged, the state is as before
        actions.append(Command(("a2dismod", "-q", "-f", "-p") + modules, reason="the modules the installer enabled",
                               timeout=60))
        actions += [Command(("rmdir", "--ignore-fail-on-non-empty", folder), may_fail=True, timeout=30,
                            reason="a2dismod -p leaves it empty; it was there only for the installer's modules")
                    for folder in _marker_folders_made(facts, modules)]
    actions += test_and_reload(touched, "the configuration without Actvt")
    return [Step("Apache: modules disabled, configuration reloaded", tuple(actions))]


def _marker_folders_made(facts, modules: Tuple[str, ...]) -> List[str]:
    """The marker folders that were there only for the installer's modules: enabled_by_admin holding
    nothing but their markers (a2enmod made it), disabled_by_admin absent (a2dismod -p makes it empty)."""
    inside = {path for path in facts.files if path.startswith(ENABLED_MARKERS + "/")}
    made = [ENABLED_MARKERS] if inside and inside <= {f"{ENABLED_MARKERS}/{name}" for name in modules} else []
    return made + ([DISABLED_MARKERS] if DISABLED_MARKERS not in facts.dirs else [])


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    if not is_front(decisions):
        return []
    hosts = _hosts(facts)
    if hosts is None:
        return [Finding("apache.config", SKIP, "apache2ctl -S: not run (apache2ctl not found, or --root)")]
    if hosts.returncode == 0:
        return [Finding("apache.config", PASS, "apache2ctl configtest: the configuration is valid")]
    return [Finding("apache.config", FAIL, f"apache2ctl fails: {hosts.tail} (Apache serves what it loaded last; a "
                                           "reload or a restart would fail)",
                    "correct the file it names, then: sudo apache2ctl configtest && sudo systemctl reload apache2")]


#: What /actvt answers a client without a certificate (``ErrorDocument`` of the guard's 403).
NO_CERTIFICATE = (403, b"No required SSL certificate was sent")

FRONT = Front(name="apache", packages=PACKAGES, challenge_files=CHALLENGE_FILES, no_certificate=NO_CERTIFICATE,
              check_and_reload=check_and_reload, challenge_webroot=lambda config, facts: WEBROOT,
              proxy_identity_pem=MACHINE_PEM)

CONCERN = Concern(
    name="apache",
    reads=lambda config: READS,
    probes=(APACHE_HOSTS, APACHE_MODULES),
    planners=(Planner(Phase.CHALLENGE, plan_apache_challenge), Planner(Phase.FRONT, plan_apache_site)),
    notes=notes,
    uninstall=(Uninstaller(Undo.RELOAD, uninstall_steps),),
    checks=Checks(doctor_checks),
)
