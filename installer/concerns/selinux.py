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
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from installer.core import paths
from installer.core.actions import Absent, Command, File, Packages, Step
from installer.core.concern import FAIL, PASS, SKIP, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.facts import Probe, ProbeResult

RECORD = f"{paths.STATE_DIR}/selinux.added"
HTTP_PORT = "http_port_t"
_HEADER = "# SELinux port labels changed by actvt-installer (uninstall undoes exactly these), one per line"


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
    return commands


def record_lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


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
    if entries is None:
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
    previous = record_lines(facts.files.get(RECORD, b"").decode("utf-8", errors="replace"))
    lines = list(dict.fromkeys(previous + [line]))
    actions.append(File(RECORD, ("\n".join([_HEADER] + lines) + "\n").encode(), 0o600,
                        reason="the SELinux label the installer changed, for uninstall"))
    return [Step(f"SELinux: tcp/{port} as {HTTP_PORT} for {web}", tuple(actions))]


def uninstall_labels(entries, facts, options) -> List[Step]:
    """Undo the recorded labels (each exactly), then the record."""
    record = facts.files.get(RECORD)
    if not record:
        return []
    commands = removal_commands(record.decode(errors="replace"))
    actions: list = [Command(argv, "undo the SELinux port label the installer changed", may_fail=True, timeout=300)
                     for argv in commands]
    return [Step("Undoing the SELinux port labels the installer changed",
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


CONCERN = Concern(
    name="selinux",
    reads=lambda config: (RECORD,),
    probes=(PORTS, LOCAL_PORTS),
    planners=(Planner(Phase.FRONT, plan_port_label),),
    uninstall=(Uninstaller(Undo.FIREWALL, uninstall_labels),),
    checks=Checks(doctor_checks),
)
