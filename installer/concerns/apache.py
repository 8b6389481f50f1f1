"""Apache, the second proxy front: the ACME challenge, the site, or only a snippet.

Two fronts of one module, each with its ``Layout`` (the paths, commands and probes of one family):
Debian's ``apache2`` (``FRONT``: sites-available and links, ``a2enmod``, ``apache2ctl``) and the RHEL
family's ``httpd`` (``HTTPD_FRONT``: ``conf.d/zz-*.conf``, after ``ssl.conf``; missing modules loaded
by ``conf.modules.d/99-actvt-vector.conf``; mod_ssl installed when missing and recorded in
``PACKAGES_RECORD``, so that uninstall removes only what it added; ``httpd -S``/``-M``, ``apachectl``).
The planners below read the layout of ``decisions.front``; "apache2ctl" in this text is ``apachectl``
on the family.

Chosen by the mode decision (``plans.registry.decide``) when apache2 or httpd serves 80/443, or by
ACTVT_INSTALL_MODE=proxy when it is installed but stopped. Two planners (``CONCERN``), as nginx's:

- ``plan_apache_challenge`` (``Phase.CHALLENGE``, before certbot): refuses a configuration that
  already fails ``apache2ctl -S`` (before anything is written: every reload would fail); enables the
  modules the front needs, and those they depend on, with ``a2enmod`` (only those not loaded, recorded
  in ``MODULES_RECORD`` so that uninstall disables exactly those, ``a2dismod -p``); makes ``/.well-known/acme-challenge/`` of the domain on port
  80 answer from ``WEBROOT``, a folder of the installer's own (never the site's document root): a
  port-80 virtual host of the domain, or, when another one already names it or no virtual host has
  port 80 (ours would become its default for every name: the family's httpd.conf), a main-server Alias;
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
import functools
import re
from typing import List, Optional, Tuple

from installer import __version__
from installer.core import packaging, paths
from installer.core.actions import Absent, Command, Directory, File, Packages, Service, Step, Symlink
from installer.core.concern import FAIL, PASS, SKIP, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.errors import ActvtError
from installer.core.facts import Probe, ProbeResult
from installer.core.front import Front, upstream_ca_file
from installer.core.render import render_file

WEBROOT = paths.ACME_WEBROOT  # certbot's -w: the installer's own, never a site's document root
HEALTH_DIR = "/var/lib/actvt-health"  # what Apache answers /actvt/health from (a folder of the installer's own)
HEALTH_FILE = f"{HEALTH_DIR}/health"
HEALTH_BODY = b"OK\n"  # as nginx's `return 200 "OK\n"` (templates/nginx-location.conf)
MODULES_RECORD = f"{paths.STATE_DIR}/apache-modules"  # the modules this installer enabled (uninstall disables them)
PACKAGES_RECORD = f"{paths.STATE_DIR}/apache-packages"  # the packages this installer added (mod_ssl; uninstall removes them)
# Debian: a2enmod follows the `# Depends:` lines of mods-available/*.load, and records what the admin
# enabled or disabled (an empty file per module) in these folders
MODS_AVAILABLE = "/etc/apache2/mods-available"
ENABLED_MARKERS = "/var/lib/apache2/module/enabled_by_admin"
DISABLED_MARKERS = "/var/lib/apache2/module/disabled_by_admin"
MACHINE_PEM = f"{paths.PROXY_DIR}/apache.pem"  # the proxy identity, certificate then key (root only)
UPGRADE_SINCE = (2, 4, 47)  # mod_proxy_http tunnels `upgrade=websocket` itself from this version


def _parse_hosts(result):  # the parsers are defined below; the probes name them late (see ApacheHosts)
    return ApacheHosts.parse(result)


def _parse_modules(result):
    return parse_modules(result)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one family's Apache keeps what the front touches, and the commands that check and reload
    it: Debian's ``apache2`` (sites-available + links, a2enmod) or the RHEL family's ``httpd`` (conf.d,
    conf.modules.d, mod_ssl a package of its own). One front each (``FRONT``, ``HTTPD_FRONT``)."""

    front: str  # the Front's name, as Facts.web_server() names what listens (apache, httpd)
    package: str  # the server's package (its version says whether mod_proxy_http tunnels WebSockets)
    service: str
    etc: str
    main_config: str  # the main server's file (the challenge Alias lives there when no virtual host has port 80)
    configtest: Tuple[str, ...]
    hosts: Probe  # `-S`: the virtual hosts, and whether the configuration parses
    modules: Probe  # `-M`: the loaded modules
    site: str
    snippet: str
    challenge_site: str
    challenge_alias: str
    links: Tuple[Tuple[str, str], ...] = ()  # (link, file): Debian enables a file by a link
    modules_file: Optional[str] = None  # RHEL: our LoadModule lines (else a2enmod, recorded in MODULES_RECORD)
    ssl_package: Optional[str] = None  # mod_ssl is a package of its own on the RHEL family
    default_vhost_80: bool = True  # the package ships a port-80 virtual host (Debian's 000-default.conf)

    def link_of(self, path: str) -> Optional[str]:
        return next((link for link, target in self.links if target == path), None)

    def with_links(self, *files: str) -> Tuple[str, ...]:
        return tuple(item for path in files for item in (path, self.link_of(path)) if item)

    @property
    def challenge_files(self) -> Tuple[str, ...]:
        return self.with_links(self.challenge_site, self.challenge_alias)

    @property
    def site_files(self) -> Tuple[str, ...]:
        return self.with_links(self.site)

    @property
    def our_files(self) -> Tuple[str, ...]:
        return (self.site_files + self.challenge_files + (self.snippet,) + ((self.modules_file,) if self.modules_file else ())
                + (HEALTH_FILE,))


DEBIAN = Layout(
    front="apache", package="apache2", service="apache2", etc="/etc/apache2", main_config="/etc/apache2/apache2.conf",
    configtest=("apache2ctl", "configtest"),
    hosts=Probe("apache2ctl_S", ("apache2ctl", "-S"), _parse_hosts),
    modules=Probe("apache2ctl_M", ("apache2ctl", "-M"), _parse_modules),
    site="/etc/apache2/sites-available/actvt-vector.conf", snippet="/etc/apache2/actvt-vector-location.conf",
    challenge_site="/etc/apache2/sites-available/actvt-vector-acme.conf",
    challenge_alias="/etc/apache2/conf-available/actvt-vector-acme.conf",
    links=(("/etc/apache2/sites-enabled/actvt-vector.conf", "/etc/apache2/sites-available/actvt-vector.conf"),
           ("/etc/apache2/sites-enabled/actvt-vector-acme.conf", "/etc/apache2/sites-available/actvt-vector-acme.conf"),
           ("/etc/apache2/conf-enabled/actvt-vector-acme.conf", "/etc/apache2/conf-available/actvt-vector-acme.conf")),
)

# conf.d/*.conf is included in name order: "zz-" puts ours after ssl.conf (its `Listen 443`, the SSL
# globals) and after the sites, so that no virtual host of ours becomes a port's default
RHEL = Layout(
    front="httpd", package="httpd", service="httpd", etc="/etc/httpd", main_config="/etc/httpd/conf/httpd.conf",
    configtest=("apachectl", "configtest"),
    hosts=Probe("httpd_S", ("httpd", "-S"), _parse_hosts, when=lambda facts: facts.has_package("httpd")),
    modules=Probe("httpd_M", ("httpd", "-M"), _parse_modules, when=lambda facts: facts.has_package("httpd")),
    site="/etc/httpd/conf.d/zz-actvt-vector.conf", snippet="/etc/httpd/actvt-vector-location.conf",
    challenge_site="/etc/httpd/conf.d/zz-actvt-vector-acme.conf",
    challenge_alias="/etc/httpd/conf.d/zz-actvt-vector-acme-alias.conf",
    modules_file="/etc/httpd/conf.modules.d/99-actvt-vector.conf", ssl_package="mod_ssl", default_vhost_80=False,
)
LAYOUTS = (DEBIAN, RHEL)
ALL_OUR_FILES = tuple(dict.fromkeys(path for layout in LAYOUTS for path in layout.our_files))

# Debian's names, as the rest of the project and its tests know them
ETC = DEBIAN.etc
SITE, SITE_LINK, SNIPPET = DEBIAN.site, DEBIAN.link_of(DEBIAN.site), DEBIAN.snippet
CHALLENGE_SITE, CHALLENGE_ALIAS = DEBIAN.challenge_site, DEBIAN.challenge_alias
CHALLENGE_SITE_LINK, CHALLENGE_ALIAS_LINK = DEBIAN.link_of(CHALLENGE_SITE), DEBIAN.link_of(CHALLENGE_ALIAS)
CHALLENGE_FILES, SITE_FILES, OUR_FILES = DEBIAN.challenge_files, DEBIAN.site_files, DEBIAN.our_files
PACKAGES = (DEBIAN.package,)
READS = ALL_OUR_FILES + (MODULES_RECORD, PACKAGES_RECORD, MODS_AVAILABLE, ENABLED_MARKERS, DISABLED_MARKERS)


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

    def has_port(self, port: int) -> bool:
        """Whether a virtual host (other than ours) listens on ``port``: else the main server answers it."""
        return any(host.port == port and host.file not in ALL_OUR_FILES for host in self.hosts)

    def serving_file(self, domain: str, port: int) -> Optional[str]:
        """The first file (other than ours) with a virtual host on ``port`` named ``domain``."""
        for host in self.hosts:
            if host.port == port and host.file not in ALL_OUR_FILES and any(_matches(name, domain) for name in host.names):
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


APACHE_HOSTS, APACHE_MODULES = DEBIAN.hosts, DEBIAN.modules


def layout_of(decisions) -> Layout:
    """The layout of the front decided (Debian's when it is not Apache: its leftovers are looked for)."""
    name = decisions.front.name if decisions.front is not None else DEBIAN.front
    return next((layout for layout in LAYOUTS if layout.front == name), DEBIAN)


def _hosts(facts, layout: Layout = DEBIAN) -> Optional[ApacheHosts]:
    return facts.fact(layout.hosts)


def installed(facts, layout: Layout = DEBIAN) -> bool:
    return facts.has_package(layout.package)


def version(facts, layout: Layout = DEBIAN) -> Tuple[int, ...]:
    """The server's upstream version from its package (``2.4.57-2`` -> (2, 4, 57)); unknown: the oldest."""
    found = re.match(r"(?:\d+:)?(\d+)\.(\d+)\.(\d+)", facts.packages.get(layout.package, ""))
    return tuple(int(part) for part in found.groups()) if found else (2, 4, 0)


def needed_modules(facts, layout: Layout = DEBIAN) -> Tuple[str, ...]:
    return ("alias", "ssl", "proxy", "proxy_http") + (() if version(facts, layout) >= UPGRADE_SINCE
                                                      else ("proxy_wstunnel",))


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


def modules_to_enable(facts, loaded: Tuple[str, ...], layout: Layout = DEBIAN) -> Tuple[str, ...]:
    """Debian: the modules the front needs and those they depend on, that are not loaded, dependencies
    first: a2enmod is given every module it will enable, so that all of them are recorded (and uninstall
    disables exactly those, not leaving socache_shmcb behind ssl)."""
    order: List[str] = []

    def visit(name: str, path: Tuple[str, ...]) -> None:
        if name in order or name in path:
            return
        for dependency in module_dependencies(facts, name):
            visit(dependency, path + (name,))
        order.append(name)

    for name in needed_modules(facts, layout):
        visit(name, ())
    return tuple(name for name in order if name not in loaded)


def recorded_modules(facts) -> Tuple[str, ...]:
    return _recorded(facts, MODULES_RECORD, r"\w+")


def recorded_packages(facts) -> Tuple[str, ...]:
    return _recorded(facts, PACKAGES_RECORD, r"[A-Za-z0-9][\w.+-]*")


def _recorded(facts, path: str, allowed: str) -> Tuple[str, ...]:
    text = facts.files.get(path, b"").decode(errors="replace")
    return tuple(name for name in text.split() if re.fullmatch(allowed, name))


def served(config, facts, port: int, layout: Layout = DEBIAN) -> Optional[str]:
    hosts = _hosts(facts, layout)
    return hosts.serving_file(config.domain, port) if hosts is not None else None


def challenge_by_alias(config, facts, layout: Layout) -> Optional[str]:
    """Where port 80 of the domain is answered when a virtual host of ours would not do: a virtual host
    of the domain in another file, or the main server when no virtual host has port 80 (the RHEL
    family's httpd.conf: a virtual host of ours would become port 80's default for every name)."""
    elsewhere = served(config, facts, 80, layout)
    if elsewhere:
        return elsewhere
    hosts = _hosts(facts, layout)
    if not (hosts.has_port(80) if hosts is not None else layout.default_vhost_80):
        return f"the main server ({layout.main_config})"
    return None


def is_front(decisions) -> bool:
    return decisions.mode == "proxy" and decisions.front in FRONTS


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


def render_locations(config, facts, layout: Layout = DEBIAN) -> str:
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
    modern = version(facts, layout) >= UPGRADE_SINCE
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


def render_site(config, facts, layout: Layout = DEBIAN) -> bytes:
    body = render_locations(config, facts, layout)
    return render_file("apache-site.conf", {
        "VERSION": __version__, "DOMAIN": config.domain, "PORT": str(int(config.vector_port)),
        "FULLCHAIN": paths.fullchain(config.domain), "PRIVKEY": paths.privkey(config.domain),
        "BODY": "".join("    " + line if line.strip() else line for line in body.splitlines(keepends=True)).rstrip("\n"),
    }).encode()


def render_snippet(config, facts, layout: Layout = DEBIAN) -> bytes:
    head = [f"# Actvt: include this file inside the <VirtualHost *:443> of {config.domain} (not in a <Location>):",
            f'#   Include "{layout.snippet}"',
            f"# Managed by actvt-installer {__version__}; re-running the installer rewrites this file.", ""]
    return ("\n".join(head) + render_locations(config, facts, layout)).encode()


def render_challenge(config, facts, layout: Layout = DEBIAN) -> bytes:
    elsewhere = challenge_by_alias(config, facts, layout)
    if elsewhere:
        return render_file("apache-challenge-alias.conf", {
            "VERSION": __version__, "DOMAIN": config.domain, "WEBROOT": WEBROOT, "SERVED": elsewhere}).encode()
    return render_file("apache-challenge.conf", {"VERSION": __version__, "DOMAIN": config.domain,
                                                 "WEBROOT": WEBROOT}).encode()


# --- actions ---------------------------------------------------------------------------------------------


def test_and_reload(when_changed: Tuple[str, ...], what: str, layout: Layout = DEBIAN) -> Tuple[Command, Command]:
    """``apache2ctl configtest`` (``apachectl`` on the RHEL family) then a graceful reload, each only
    when one of ``when_changed`` changed in this run. A failed test stops the run; the engine puts back
    the files it wrote."""
    return (
        Command(layout.configtest, reason=f"checks Apache's configuration before the reload ({what})",
                when_changed=when_changed, timeout=60),
        # try-: a stopped Apache (a mode switch, uninstall) stays stopped and the run does not fail on it
        Command(("systemctl", "try-reload-or-restart", layout.service), reason=f"Apache serves {what}",
                when_changed=when_changed, timeout=120,
                on_rollback=(("systemctl", "try-reload-or-restart", layout.service),)),
    )


def check_and_reload(when_changed: Tuple[str, ...], what: str, layout: Layout = DEBIAN) -> tuple:
    """The front's check and reload; when the CRL changed, Vector restarts after it, which ends the
    WebSockets old Apache children keep tunnelling (a revoked client's too; see the module's docstring)."""
    actions: tuple = test_and_reload(when_changed, what, layout)
    if paths.MTLS_CRL in when_changed:
        actions += (Service("vector", restart_when_changed=(paths.MTLS_CRL,), wait_seconds=30,
                            reason="ends the open WebSockets that old Apache children hold with the old CRL"),)
    return actions


def _remove(files, facts, reason: str) -> list:
    return [Absent(path, reason=reason) for path in files if path in facts.files]


def refusal(facts, layout: Layout = DEBIAN) -> Optional[str]:
    """Why Apache's configuration as it is cannot take the front: it already fails its test."""
    hosts = _hosts(facts, layout)
    if hosts is not None and hosts.returncode != 0:
        return (f"Apache's configuration already fails its test ({' '.join(layout.hosts.argv)}: {hosts.tail}); every "
                f"reload would fail, so the installer changes nothing. Correct it (see `sudo {' '.join(layout.configtest)}`),"
                " then re-run. Nothing was changed.")
    return None


def render_modules(names: Tuple[str, ...]) -> bytes:
    """conf.modules.d's file of ours: a LoadModule line for each module the front needs that the
    server does not load yet (the family's own files load them under these names)."""
    return ("# Actvt: the modules wss://DOMAIN/actvt needs that httpd did not load; uninstall removes this file.\n"
            f"# Managed by actvt-installer {__version__}; re-running the installer rewrites this file.\n"
            + "".join(f"LoadModule {name}_module modules/mod_{name}.so\n" for name in names)).encode()


def _module_actions(facts, layout: Layout, installing: Tuple[str, ...]) -> Tuple[list, Tuple[str, ...]]:
    """The modules the front needs and the server does not load: a2enmod on Debian (recorded, for
    uninstall), our conf.modules.d file on the RHEL family (the ssl module comes with mod_ssl when this
    run installs it). The paths whose change needs a configtest and reload."""
    loaded = set(facts.fact(layout.modules) or ())
    if installing:
        loaded.add("ssl")  # the package's conf.modules.d/00-ssl.conf loads it
    missing = tuple(name for name in needed_modules(facts, layout) if name not in loaded)
    if layout.modules_file:
        ours = facts.files.get(layout.modules_file)
        if ours is not None:  # what our own file loads stays needed (-M lists it as loaded)
            kept = set(re.findall(r"^LoadModule (\w+)_module ", ours.decode(errors="replace"), re.M))
            missing = tuple(name for name in needed_modules(facts, layout) if name in kept or name not in loaded)
        if not missing:
            return _remove((layout.modules_file,), facts, "httpd loads every module the front needs"), (layout.modules_file,)
        return [File(layout.modules_file, render_modules(missing), 0o644,
                     reason="the modules the proxy needs (removed by uninstall)")], (layout.modules_file,)
    missing = modules_to_enable(facts, tuple(loaded), layout)
    actions: list = []
    if missing:
        actions.append(Command(("a2enmod", "-q") + missing, reason="modules the proxy needs (disabled again by uninstall)",
                               on_rollback=(("a2dismod", "-q", "-f", "-p") + missing,), timeout=60))
    record = tuple(sorted(set(recorded_modules(facts)) | set(missing)))
    if record:
        actions.append(File(MODULES_RECORD, ("\n".join(record) + "\n").encode(), 0o600,
                            reason="the Apache modules this installer enabled"))
    return actions, ((MODULES_RECORD,) if missing else ())


def plan_apache_challenge(config, facts, decisions, ctx) -> List[Step]:
    """Before certbot: the modules, Apache running, and the domain's port 80 answering the challenge."""
    if not is_front(decisions):
        return []
    layout = layout_of(decisions)
    problem = refusal(facts, layout)
    if problem:
        raise ApacheError(problem)
    actions: list = []
    installing: Tuple[str, ...] = ()
    if layout.ssl_package and not facts.has_package(layout.ssl_package):
        installing = (layout.ssl_package,)
        actions.append(Packages(facts.package_manager or "dnf", installing,
                                reason="TLS for httpd (removed by uninstall, as the installer added it)"))
    packages = tuple(sorted(set(recorded_packages(facts)) | set(installing)))
    if packages:
        actions.append(File(PACKAGES_RECORD, ("\n".join(packages) + "\n").encode(), 0o600,
                            reason="the packages this installer added for Apache"))
    module_actions, module_paths = _module_actions(facts, layout, installing)
    actions += module_actions
    actions.append(Directory(WEBROOT, 0o755, reason="certbot's webroot for the http-01 challenge (the installer's own)"))
    actions.append(Directory(WEBROOT + "/.well-known", 0o755, reason="the challenge folder"))
    actions.append(Directory(WEBROOT + "/.well-known/acme-challenge", 0o755, reason="the challenge folder"))
    elsewhere = challenge_by_alias(config, facts, layout)
    if elsewhere:
        path, other = layout.challenge_alias, layout.challenge_site
        reason = f"{config.domain} on port 80 is served by {elsewhere}: an Alias answers the challenge there"
    else:
        path, other = layout.challenge_site, layout.challenge_alias
        reason = f"port 80 for {config.domain}: ACME http-01 challenges from {WEBROOT}, else a redirect to https"
    actions.append(File(path, render_challenge(config, facts, layout), 0o644, reason=reason))
    link = layout.link_of(path)
    if link:
        actions.append(Symlink(link, path, reason="enables it"))
    actions += _remove(layout.with_links(other), facts, "replaced by " + path)
    watched = layout.challenge_files + module_paths + ((PACKAGES_RECORD,) if installing else ())
    check, reload = test_and_reload(watched, f"port 80 for {config.domain}", layout)
    actions += [check, Service(layout.service, reason=f"proxy mode: Apache serves wss://{config.domain}/actvt",
                               diagnose=(layout.configtest,)), reload]
    return [Step("Apache: modules and port 80 for the certificate challenge", tuple(actions))]


def plan_apache_site(config, facts, decisions, ctx) -> List[Step]:
    """After certbot and mTLS: the 443 virtual host (or the snippet); when Apache is not the front,
    removal of what an earlier run left."""
    if not is_front(decisions):
        steps = []
        for layout in LAYOUTS:
            leftovers = _remove(layout.our_files, facts, "Apache is not the proxy front of this install")
            if leftovers:
                steps.append(Step("Apache: removing the proxy setup of an earlier run", tuple(leftovers) + (
                    test_and_reload(layout.our_files, "the configuration without Actvt", layout)
                    if installed(facts, layout) else ())))
        return steps
    layout = layout_of(decisions)
    inputs: Tuple[str, ...] = (paths.fullchain(config.domain), paths.privkey(config.domain))
    if config.enable_mtls:
        inputs += (paths.CA_CERT, paths.MTLS_CRL, MACHINE_PEM)
    elsewhere = served(config, facts, 443, layout)
    if elsewhere:
        actions = [File(layout.snippet, render_snippet(config, facts, layout), 0o644,
                        reason=f"{config.domain} is already served by {elsewhere}: include this file there")]
        actions += _remove(layout.site_files, facts, f"{config.domain} is served by {elsewhere}")
        title = f"Apache: snippet for the site that serves {config.domain}"
    else:
        actions = [File(layout.site, render_site(config, facts, layout), 0o644,
                        reason=f"wss://{config.domain}/actvt -> Vector on 127.0.0.1:{config.vector_port}")]
        link = layout.link_of(layout.site)
        if link:
            actions.append(Symlink(link, layout.site, reason="enables it"))
        actions += _remove((layout.snippet,), facts, "the site of its own replaces the snippet")
        title = f"Apache: wss://{config.domain}/actvt"
    actions = [Directory(HEALTH_DIR, 0o755, reason="what Apache answers /actvt/health from"),
               File(HEALTH_FILE, HEALTH_BODY, 0o644, reason="/actvt/health answers OK, as behind nginx")] + actions
    actions += list(test_and_reload((layout.snippet,) + layout.site_files + inputs, f"wss://{config.domain}/actvt",
                                    layout))
    return [Step(title, tuple(actions))]


def notes(config, facts, decisions, ctx=None) -> List[str]:
    if not is_front(decisions):
        return []
    layout = layout_of(decisions)
    elsewhere = served(config, facts, 443, layout)
    if elsewhere:
        return [f"Apache already serves {config.domain} on 443 ({elsewhere}): add `Include {layout.snippet}` inside "
                f"its <VirtualHost *:443>, then run `{' '.join(layout.configtest)} && systemctl reload {layout.service}`"
                + ("; with mTLS it asks every visitor of that site for a client certificate (optional: browsers may "
                   "offer one)" if config.enable_mtls else "")]
    return []


def uninstall_steps(entries, facts, options) -> List[Step]:
    """The modules this installer enabled disabled again, then configtest and a reload (the files
    themselves are removed or put back from the manifest)."""
    steps = []
    for layout in LAYOUTS:
        records = (MODULES_RECORD,) if layout is DEBIAN else (PACKAGES_RECORD,)
        touched = tuple(path for path in entries if path.startswith(layout.etc + "/") or path in records)
        if not touched or not installed(facts, layout):
            continue
        actions: list = []
        modules = recorded_modules(facts) if layout is DEBIAN else ()
        if modules:
            # -p: a2enmod marked them enabled by the admin (/var/lib/apache2/module/enabled_by_admin); a plain
            # a2dismod would leave disabled_by_admin markers instead: purged, the state is as before
            actions.append(Command(("a2dismod", "-q", "-f", "-p") + modules, reason="the modules the installer enabled",
                                   timeout=60))
            actions += [Command(("rmdir", "--ignore-fail-on-non-empty", folder), may_fail=True, timeout=30,
                                reason="a2dismod -p leaves it empty; it was there only for the installer's modules")
                        for folder in _marker_folders_made(facts, modules)]
        added = tuple(name for name in recorded_packages(facts) if name == layout.ssl_package and facts.has_package(name))
        if added:  # after our files are gone (Undo.FILES), before the test: the configuration without them
            manager = facts.package_manager or "dnf"
            actions.append(Command((manager, "remove", "-y") + added, reason="the packages the installer added",
                                   locks=packaging.for_install(manager), timeout=1800))
        actions += test_and_reload(touched, "the configuration without Actvt", layout)
        steps.append(Step("Apache: modules disabled, configuration reloaded", tuple(actions)))
    return steps


def _marker_folders_made(facts, modules: Tuple[str, ...]) -> List[str]:
    """The marker folders that were there only for the installer's modules: enabled_by_admin holding
    nothing but their markers (a2enmod made it), disabled_by_admin absent (a2dismod -p makes it empty)."""
    inside = {path for path in facts.files if path.startswith(ENABLED_MARKERS + "/")}
    made = [ENABLED_MARKERS] if inside and inside <= {f"{ENABLED_MARKERS}/{name}" for name in modules} else []
    return made + ([DISABLED_MARKERS] if DISABLED_MARKERS not in facts.dirs else [])


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    if not is_front(decisions):
        return []
    layout = layout_of(decisions)
    hosts = _hosts(facts, layout)
    shown = " ".join(layout.hosts.argv)
    if hosts is None:
        return [Finding("apache.config", SKIP, f"{shown}: not run ({layout.hosts.argv[0]} not found, or --root)")]
    if hosts.returncode == 0:
        return [Finding("apache.config", PASS, f"{' '.join(layout.configtest)}: the configuration is valid")]
    return [Finding("apache.config", FAIL, f"{shown} fails: {hosts.tail} (Apache serves what it loaded last; a "
                                           "reload or a restart would fail)",
                    f"correct the file it names, then: sudo {' '.join(layout.configtest)} && "
                    f"sudo systemctl reload {layout.service}")]


#: What /actvt answers a client without a certificate (``ErrorDocument`` of the guard's 403).
NO_CERTIFICATE = (403, b"No required SSL certificate was sent")



def _front(layout: Layout) -> Front:
    return Front(name=layout.front, packages=(layout.package,), challenge_files=layout.challenge_files,
                 no_certificate=NO_CERTIFICATE, check_and_reload=functools.partial(check_and_reload, layout=layout),
                 challenge_webroot=lambda config, facts: WEBROOT, proxy_identity_pem=MACHINE_PEM)


FRONT = _front(DEBIAN)  # apache2 (Debian, Ubuntu)
HTTPD_FRONT = _front(RHEL)  # httpd (the RHEL family)
FRONTS = (FRONT, HTTPD_FRONT)

CONCERN = Concern(
    name="apache",
    reads=lambda config: READS,
    probes=tuple(probe for layout in LAYOUTS for probe in (layout.hosts, layout.modules)),
    planners=(Planner(Phase.CHALLENGE, plan_apache_challenge), Planner(Phase.FRONT, plan_apache_site)),
    notes=notes,
    uninstall=(Uninstaller(Undo.RELOAD, uninstall_steps),),
    checks=Checks(doctor_checks),
)
