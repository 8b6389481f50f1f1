"""SELinux: in proxy mode, let the front (nginx or Apache, both httpd_t) connect to Vector's port, in the narrowest way, and take that back.

When SELinux is enforcing (``/sys/fs/selinux/enforce`` is 1, ``Facts.selinux_enforcing``), nginx runs
confined as ``httpd_t``, which may connect (``name_connect``) only to ports of a few types:
``http_port_t`` among them, Vector's port (4096, ``unreserved_port_t``) not. nginx then answers 502
for ``wss://DOMAIN/actvt`` while every file looks right. The fix here labels that one port
``http_port_t`` (``semanage port -a``, or ``-m`` when the port has another type of its own). Not the
``httpd_can_network_connect`` boolean: it lets every confined web process (nginx, php-fpm, CGI
scripts) connect to any port on any host, which is far more than one local port. (httpd_t's
``name_connect`` to ``http_port_t`` hangs on ``httpd_graceful_shutdown``, on by default on the RHEL family;
refpolicy, as Debian ships it, has it off: there ``doctor`` passing does not prove nginx may connect.)

Standalone mode needs nothing: Vector listens itself. It runs as ``unconfined_service_t`` (systemd
starts /usr/bin/vector, which has no policy module of its own), which may bind any port; clients
connect from the network, and no confined domain on the host connects to it.

semanage comes with ``policycoreutils-python-utils`` (the RHEL family 8+, Fedora, Amazon Linux 2023,
Debian, Ubuntu) or ``policycoreutils-python`` (EL7, Amazon Linux 2); it is installed when missing.
What was changed is recorded, one line per port, in ``/var/lib/actvt/selinux.added``, so that
uninstall undoes exactly that: a label it added is deleted, a type it replaced is put back, and a
port that was already ``http_port_t`` is left as it was (nothing is recorded for it).

The challenge webroot (``decisions.webroot``), from which the front serves certbot's http-01 files. A
folder gets its type when it is made, from its parent (the file-context rules apply only when
``restorecon`` runs), and httpd_t reads only some types. Found with the real policies: refpolicy as Debian
ships it (``selinux-policy-default``, ``sesearch -A -s httpd_t -c file -p read``) lets httpd_t read
``httpd_sys_content_t``, ``public_content_t``, ``httpd_var_lib_t``, ``usr_t`` and also ``var_lib_t``, not
``var_t``; ``matchpathcon`` gives ``/var/lib/actvt-acme`` ``var_lib_t`` (``/var/lib(/.*)?``) and
``/var/www/html`` ``httpd_sys_content_t`` (``/var/www(/.*)?``), ``/srv/acme`` ``var_t``. The RHEL family's
targeted policy (fedora-selinux/selinux-policy, branches c9s and c10s, ``apache.te``) has the same
``files_read_var_lib_files(httpd_t)`` and ``/var/www(/.*)?`` rule. So Apache's ``/var/lib/actvt-acme``
is readable as made; what fails is a folder made where its parent's type is not readable: nginx's
default ``/var/www/html`` made on a host without ``/var/www`` (nginx alone on the RHEL family) is
``var_t``, as is a folder under ``/srv``, and the challenge answers 403. For a webroot the installer makes
(Apache's; nginx's ``ACTVT_NGINX_WEBROOT`` when it did not exist), the folder is made before certbot runs,
a rule ``semanage fcontext -a -t httpd_sys_content_t '<webroot>(/.*)?'`` is added when the policy's
type for it is not one httpd_t reads (or the policy could not be read), and ``restorecon -R`` sets the
type. A rule added is recorded (``fcontext <rule> added``) and uninstall deletes exactly it. A site's own
document root, or a folder that was there before, is never relabelled (restorecon would undo types an
admin set with ``chcon``): the run's notes say what to check, and ``doctor`` checks the type of the
webroots it can read (``stat -c %C``).
"""

import re
import shlex
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from installer.core import paths
from installer.core.actions import Absent, Command, Directory, File, Packages, Step
from installer.core.config import BY_NAME
from installer.core.concern import FAIL, PASS, SKIP, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.facts import Probe, ProbeResult

RECORD = f"{paths.STATE_DIR}/selinux.added"
HTTP_PORT = "http_port_t"
_HEADER = ("# SELinux port labels and file-context rules changed by actvt-installer (uninstall undoes exactly "
           "these), one per line")
CONTENT = "httpd_sys_content_t"
#: the file types httpd_t may read, in refpolicy and the RHEL family's targeted policy (the docstring)
HTTPD_READS: FrozenSet[str] = frozenset({CONTENT, "httpd_sys_rw_content_t", "httpd_sys_ra_content_t",
                                         "httpd_var_lib_t", "public_content_t", "usr_t", "var_lib_t"})
DEFAULT_WEBROOT = BY_NAME["ACTVT_NGINX_WEBROOT"].default


class PortType(NamedTuple):
    type: str
    exact: bool  # a definition of this port alone (else a range covers it)


# --- parsing `semanage port -l` (pure) --------------------------------------------------------------


def parse_ports(text: str) -> Dict[Tuple[str, int, int], str]:
    """(protocol, first port, last port) -> type, from ``semanage port -l`` (or ``-l -C``) output:
    ``http_port_t   tcp   80, 81, 443, 8008`` and ranges such as ``1024-32767``."""
    found: Dict[Tuple[str, int, int], str] = {}
    for line in text.splitlines():
        words = line.split(None, 2)
        if len(words) < 3 or not words[0].endswith("_t") or words[1] not in ("tcp", "udp", "sctp", "dccp"):
            continue
        for item in words[2].split(","):
            low, _, high = item.strip().partition("-")
            if low.isdigit() and (not high or high.isdigit()):
                found.setdefault((words[1], int(low), int(high or low)), words[0])
    return found


def port_type(entries: Dict[Tuple[str, int, int], str], port: int, proto: str = "tcp") -> Optional[PortType]:
    """The type the policy gives a port: its own definition, else the narrowest range that covers it."""
    if (proto, port, port) in entries:
        return PortType(entries[(proto, port, port)], True)
    ranges = sorted((high - low, kind) for (p, low, high), kind in entries.items() if p == proto and low <= port <= high)
    return PortType(ranges[0][1], False) if ranges else None


def _when_ok(result: ProbeResult):
    return parse_ports(result.output) if result.returncode == 0 else None


def _enforcing(facts) -> bool:
    return facts.selinux_enforcing


#: every port definition (the policy's and the local ones); the local ones alone (what `-d` can delete).
#: Only where SELinux is enforcing: each loads the whole policy (seconds).
PORTS = Probe("semanage_ports", ("semanage", "port", "-l"), _when_ok, when=_enforcing)
LOCAL_PORTS = Probe("semanage_ports_local", ("semanage", "port", "-l", "-C"), _when_ok, when=_enforcing)


# --- the record and its undo ------------------------------------------------------------------------


def record_line(port: int, before: Optional[PortType], local: bool) -> str:
    """``tcp 4096 added``; ``tcp 8080 was http_cache_port_t local`` (a local definition replaced: put it
    back); ``tcp 8080 was http_cache_port_t policy`` (the policy's own: deleting the local one restores it)."""
    if before is None or not before.exact:
        return f"tcp {port} added"
    return f"tcp {port} was {before.type} {'local' if local else 'policy'}"


def removal_commands(text: str) -> List[Tuple[str, ...]]:
    commands = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "tcp" or not words[1].isdigit():
            continue
        port, what = words[1], words[2:]
        if what == ["added"] or (len(what) == 3 and what[0] == "was" and what[2] == "policy"):
            commands.append(("semanage", "port", "-d", "-p", "tcp", port))
        elif len(what) == 3 and what[0] == "was" and what[2] == "local" and what[1].endswith("_t"):
            commands.append(("semanage", "port", "-m", "-t", what[1], "-p", "tcp", port))
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "fcontext" and words[2] == "added" and _RULE.fullmatch(words[1]):
            commands.append(("semanage", "fcontext", "-d", words[1]))
    return commands


def record_lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def record_file(facts, lines: List[str]) -> File:
    """The record: what earlier runs recorded, then ``lines`` (each once)."""
    previous = record_lines(facts.files.get(RECORD, b"").decode("utf-8", errors="replace"))
    lines = list(dict.fromkeys(previous + lines))
    return File(RECORD, ("\n".join([_HEADER] + lines) + "\n").encode(), 0o600,
                reason="the SELinux labels the installer changed, for uninstall")


# --- the challenge webroot's file type (pure) --------------------------------------------------------

_META = frozenset(".^$?*+|[]{}()\\")
#: the one kind of rule the installer adds (what uninstall accepts from the record): ``<folder>(/.*)?``
_RULE = re.compile(r"/[^\s]*\(/\.\*\)\?")


def rule_for(folder: str) -> str:
    """``/var/lib/actvt-acme(/.*)?``: the folder and everything in it (regex characters escaped)."""
    return "".join("\\" + char if char in _META else char for char in folder.rstrip("/")) + "(/.*)?"


class FileContext(NamedTuple):
    spec: str  # a regular expression matched against the whole path
    kind: str  # "all files", "directory", "regular file", ...
    type: Optional[str]  # None: <<None>> (not relabelled)


def parse_fcontexts(text: str) -> List[FileContext]:
    """``semanage fcontext -l`` (or ``-l -C``) lines, such as
    ``/var/www(/.*)?   all files   system_u:object_r:httpd_sys_content_t:s0``."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not words[0].startswith("/"):
            continue
        context = words[-1]
        parts = context.split(":")
        kind = " ".join(words[1:-1])
        found.append(FileContext(words[0], kind, parts[2] if len(parts) >= 3 and context != "<<None>>" else None))
    return found


def _stem(spec: str) -> int:
    """The length of the spec's text before its first regex character (libselinux's ``stem``)."""
    return next((index for index, char in enumerate(spec) if char in _META), len(spec))


def policy_type(entries: Sequence[FileContext], local: Sequence[FileContext], path: str) -> Optional[str]:
    """The type restorecon gives the folder ``path``: of the rules that match it (for a folder), the one
    libselinux takes: an exact path before a pattern, a local rule before the policy's, then the longest
    stem, then the longest pattern (setfiles' fc_sort order, the last match winning). Equivalences
    (``semanage fcontext -a -e``) are not followed."""
    local_specs = {item.spec for item in local}
    best = None
    for index, item in enumerate(list(entries) + [item for item in local if item not in entries]):
        if item.kind not in ("all files", "directory"):
            continue
        try:
            if not re.fullmatch(item.spec, path):
                continue
        except re.error:
            continue
        exact = not any(char in _META for char in item.spec)
        key = (exact, item.spec in local_specs, _stem(item.spec), len(item.spec), index)
        if best is None or key > best[0]:
            best = (key, item.type)
    return best[1] if best else None


def parse_labels(result: ProbeResult) -> Dict[str, str]:
    """path -> type, from ``stat -c '%C %n'`` (a path without a label or absent prints an error: left out)."""
    labels = {}
    for line in result.output.splitlines():
        context, _, path = line.partition(" ")
        parts = context.split(":")
        if len(parts) >= 4 and path.startswith("/"):
            labels[path] = parts[2]
    return labels


def _fcontexts(result: ProbeResult):
    return parse_fcontexts(result.output) if result.returncode == 0 else None


#: the file-context rules (the policy's and the local ones), the local ones alone; the types of the two
#: webroots the installer may make (a site's own is not known before nginx's configuration is read)
FCONTEXTS = Probe("semanage_fcontexts", ("semanage", "fcontext", "-l"), _fcontexts, when=_enforcing)
LOCAL_FCONTEXTS = Probe("semanage_fcontexts_local", ("semanage", "fcontext", "-l", "-C"), _fcontexts,
                        when=_enforcing)
LABELS = Probe("webroot_labels", ("stat", "-c", "%C %n", paths.ACME_WEBROOT, DEFAULT_WEBROOT), parse_labels,
               when=_enforcing)


class WebrootLabel(NamedTuple):
    """What the webroot needs (all false when SELinux is not enforcing, in standalone mode, or when the
    webroot is not one the installer makes)."""

    path: str = ""
    own: bool = False  # the installer makes it: Apache's, or nginx's ACTVT_NGINX_WEBROOT when it was not there
    create: bool = False  # made in this run
    rule: bool = False  # add rule_for(path)
    restore: bool = False  # restorecon -R path
    install: bool = False  # semanage is missing (or --root): installed first

    @property
    def record(self) -> List[str]:
        return [f"fcontext {rule_for(self.path)} added"] if self.rule else []


def webroot_label(config, facts, decisions) -> WebrootLabel:
    if not needed(config, facts, decisions) or not decisions.webroot:
        return WebrootLabel()
    path = decisions.webroot
    made = path in (paths.ACME_WEBROOT, config.nginx_webroot) and (
        path == paths.ACME_WEBROOT or path not in facts.dirs or _recorded(facts, path))
    if not made:
        return WebrootLabel(path)  # a site's own document root, or a folder that was there: never relabelled
    create = path not in facts.dirs
    rule = rule_needed(facts, path)
    return WebrootLabel(path, True, create, rule, rule or create, rule and facts.fact(FCONTEXTS) is None)


def _recorded(facts, path: str) -> bool:
    """An earlier run made ``path`` and added its rule."""
    recorded = record_lines(facts.files.get(RECORD, b"").decode("utf-8", errors="replace"))
    return f"fcontext {rule_for(path)} added" in recorded


def rule_needed(facts, path: str) -> bool:
    """No local rule of ours for ``path`` and the policy's type for it is not one httpd_t reads. The policy
    not read (no semanage yet, --root): needed, which is harmless where the policy's type was readable."""
    entries, local = facts.fact(FCONTEXTS), facts.fact(LOCAL_FCONTEXTS) or []
    if any(item.spec == rule_for(path) and item.type == CONTENT for item in local):
        return False
    return entries is None or policy_type(entries, local, path) not in HTTPD_READS


def plan_webroot_label(config, facts, decisions, ctx) -> List[Step]:
    """Before certbot: the folder the front serves the challenge from has a type httpd_t reads."""
    wanted = webroot_label(config, facts, decisions)
    if not wanted.restore:
        return []
    web = _front(decisions)
    actions: list = []
    if wanted.install:
        actions.append(Packages(facts.package_manager or "apt", (semanage_package(facts),),
                                reason=f"semanage labels the challenge webroot for {web}"))
    if wanted.create and wanted.path != paths.ACME_WEBROOT:  # Apache's is made by concerns/apache.py
        actions.append(Directory(wanted.path, 0o755, reason="certbot's webroot, made now so that it can be labelled"))
    if wanted.rule:
        rule = rule_for(wanted.path)
        argv = ("semanage", "fcontext", "-a", "-t", CONTENT, rule)
        actions.append(Command(argv, timeout=300, display=shlex.join(argv),  # as a shell takes it
                               on_rollback=(("semanage", "fcontext", "-d", rule),),
                               reason=f"SELinux is enforcing: {web} (httpd_t) reads the challenge files only when "
                                      f"their type is one it may read"))
    actions.append(Command(("restorecon", "-R", wanted.path), timeout=300,
                           reason="a new folder has its parent's type until restorecon applies the rules"))
    if wanted.rule:
        actions.append(record_file(facts, wanted.record))
    return [Step(f"SELinux: {wanted.path} as {CONTENT} for {web}", tuple(actions))]


def notes(config, facts, decisions, ctx) -> List[str]:
    wanted = webroot_label(config, facts, decisions)
    if not wanted.path or wanted.own:
        return []
    return [f"SELinux is enforcing: certbot's challenge is served from {wanted.path}, a folder the installer did "
            f"not make and does not relabel: `ls -Zd {wanted.path}` should show {CONTENT} (or another type "
            f"{_front(decisions)} may read), else certificates fail with 403"]


def semanage_package(facts) -> str:
    """EL7 and Amazon Linux 2 (yum) call it policycoreutils-python; the rest policycoreutils-python-utils."""
    if facts.package_manager == "yum" and facts.os.version_id.split(".")[0] in ("7", "2"):
        return "policycoreutils-python"
    return "policycoreutils-python-utils"


def label_command(port: int, before: Optional[PortType]) -> Tuple[str, ...]:
    flag = "-m" if before is not None and before.exact else "-a"
    return ("semanage", "port", flag, "-t", HTTP_PORT, "-p", "tcp", str(port))


# --- planning ---------------------------------------------------------------------------------------


def needed(config, facts, decisions) -> bool:
    return decisions.mode == "proxy" and facts.selinux_enforcing


def _front(decisions) -> str:
    """The web server that connects to Vector (nginx and Apache both run as httpd_t)."""
    return decisions.front.name if decisions.front is not None else "nginx"


def plan_port_label(config, facts, decisions, ctx) -> List[Step]:
    if not needed(config, facts, decisions):
        return []
    port = int(config.vector_port)
    web = _front(decisions)
    entries = facts.fact(PORTS)
    before = port_type(entries, port) if entries is not None else None
    if before is not None and before.type == HTTP_PORT:
        return []
    actions: list = []
    if entries is None and not webroot_label(config, facts, decisions).install:
        # no semanage (or --root): installed first; the port is then taken to have no type of its own (if it
        # had one, `-a` fails saying so and a re-run, which sees it, uses -m)
        actions.append(Packages(facts.package_manager or "apt", (semanage_package(facts),),
                                reason=f"semanage labels Vector's port for {web}"))
    local = port_type(facts.fact(LOCAL_PORTS) or {}, port)
    line = record_line(port, before, bool(local and local.exact))
    undo = removal_commands(line)
    actions.append(Command(label_command(port, before), timeout=300, on_rollback=tuple(undo),
                           reason=f"SELinux is enforcing: {web} (httpd_t) may connect to tcp/{port} (Vector) only "
                                  f"when it is {HTTP_PORT}" + (f" (now {before.type})" if before else "")))
    actions.append(record_file(facts, webroot_label(config, facts, decisions).record + [line]))
    return [Step(f"SELinux: tcp/{port} as {HTTP_PORT} for {web}", tuple(actions))]


def uninstall_labels(entries, facts, options) -> List[Step]:
    """Undo the recorded labels (each exactly), then the record."""
    record = facts.files.get(RECORD)
    if not record:
        return []
    commands = removal_commands(record.decode(errors="replace"))
    actions: list = [Command(argv, "undo the SELinux label the installer changed", may_fail=True, timeout=300)
                     for argv in commands]
    return [Step("Undoing the SELinux port labels and file-context rules the installer changed",
                 tuple(actions) + (Absent(RECORD, "the record of changed labels"),))]


# --- what `actvt doctor` checks ---------------------------------------------------------------------


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    """Proxy mode on an enforcing host: Vector's port is one nginx may connect to."""
    if not needed(config, facts, decisions):
        return []
    port = int(config.vector_port)
    web = _front(decisions)
    entries = facts.fact(PORTS)
    if entries is None:
        if PORTS.name not in facts.probes and not facts.probes:
            return [Finding("selinux.port", SKIP, f"SELinux: tcp/{port} not checked (--root)")]
        install = ("dnf" if facts.package_manager in ("dnf", "yum") else "apt-get") + " install -y " + \
            semanage_package(facts)
        return [Finding("selinux.port", FAIL, f"SELinux is enforcing and semanage is missing or failed: tcp/{port} "
                                              f"cannot be checked, and {web} may not be allowed to reach Vector",
                        f"sudo {install} && sudo {' '.join(label_command(port, None))}")]
    found = port_type(entries, port)
    if found is not None and found.type == HTTP_PORT:
        return [Finding("selinux.port", PASS, f"SELinux: tcp/{port} is {HTTP_PORT}: {web} may connect to Vector")]
    now = f"{found.type}" if found else "no type"
    return [Finding("selinux.port", FAIL, f"SELinux is enforcing and tcp/{port} is {now}, not {HTTP_PORT}: {web} "
                                          f"cannot connect to Vector (clients get 502)",
                    "sudo " + " ".join(label_command(port, found)))]


def webroot_checks(config, facts, decisions, ctx) -> List[Finding]:
    """Proxy mode on an enforcing host: the challenge webroot has a type the front may read."""
    if not needed(config, facts, decisions) or not decisions.webroot:
        return []
    path, web = decisions.webroot, _front(decisions)
    labels = facts.fact(LABELS)
    found = (labels or {}).get(path)
    if found is None:
        return [Finding("selinux.webroot", SKIP, f"SELinux: the type of {path} was not read: `ls -Zd {path}` "
                                                 f"should show {CONTENT}")]
    if found in HTTPD_READS:
        return [Finding("selinux.webroot", PASS, f"SELinux: {path} is {found}: {web} may serve the ACME challenge")]
    ours = path == paths.ACME_WEBROOT or _recorded(facts, path)
    rule = f"sudo semanage fcontext -a -t {CONTENT} '{rule_for(path)}' && " if rule_needed(facts, path) else ""
    return [Finding("selinux.webroot", FAIL, f"SELinux is enforcing and {path} is {found}, which {web} (httpd_t) "
                                             f"may not read: certbot's http-01 challenge gets 403 and renewals fail"
                                             + ("" if ours else " (restorecon resets types set with chcon in "
                                                                "it: look first with restorecon -Rnv)"),
                    f"{rule}sudo restorecon -R {path}")]


def all_checks(config, facts, decisions, ctx) -> List[Finding]:
    return doctor_checks(config, facts, decisions, ctx) + webroot_checks(config, facts, decisions, ctx)


CONCERN = Concern(
    name="selinux",
    # the webroots the installer may make: whether they are there before the run (Facts.dirs)
    reads=lambda config: (RECORD,) + ((paths.ACME_WEBROOT, config.nginx_webroot) if config is not None else ()),
    probes=(PORTS, LOCAL_PORTS, FCONTEXTS, LOCAL_FCONTEXTS, LABELS),
    # the webroot after the front's challenge site (concerns/apache.py makes its folder there), before certbot
    planners=(Planner(Phase.CHALLENGE, plan_webroot_label), Planner(Phase.FRONT, plan_port_label)),
    notes=notes,
    uninstall=(Uninstaller(Undo.FIREWALL, uninstall_labels),),
    checks=Checks(all_checks),
)
