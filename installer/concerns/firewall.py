"""The host firewall: open the ports clients need, as the bash installer did, and record what was added.

Ports: 80 and 443, plus the Vector port in standalone mode (in proxy mode Vector listens on
127.0.0.1 only). Nothing at all when ``ACTVT_CONFIGURE_FIREWALL=no``.

Which firewall, from the probes (read-only commands run before planning, on the host only):

- **ufw** when the ``ufw`` command exists. Rules are read from ``ufw show added`` (which lists them
  also while ufw is inactive) and ``ufw status``. A port that already has an allow or limit rule for
  TCP (a port, a range, a list, or an application profile such as ``Nginx Full``) is left alone,
  also when that rule is restricted to some sources: the user chose that. When ufw is inactive, SSH
  is allowed first (22/tcp and every port sshd listens on, so that enabling ufw cannot lock the user
  out) and ufw is then enabled (``ufw --force enable``; there is no terminal to confirm).
- else **firewalld** when it is running: ``--list-ports`` and ``--list-services`` (``http``,
  ``https``) of the default zone tell what is open; a missing port is added to the running and to the
  permanent configuration (no ``--reload``, which would drop runtime rules of others).
- else **iptables**: ``iptables -S INPUT``. A port is open when an ACCEPT rule covers it, or when the
  chain accepts everything (policy ACCEPT and no DROP/REJECT rule). A missing port gets a rule
  inserted at the top of INPUT (appended after a final DROP it would do nothing). When
  ``/etc/iptables/rules.v4`` exists (iptables-persistent loads it at boot), the same rules are written
  into its ``*filter`` table, and only those: the rest of the file, other tables included, stays as it
  is (``iptables-save`` would also save the run-time rules of other programs, e.g. Docker's).
- no firewall tool: nothing to do.

Every rule the installer adds is recorded, one per line, in ``/var/lib/actvt/firewall.added``
(earlier lines are kept), so that uninstall removes exactly those (``removal_commands``).

The ports are opened before certbot runs (``Phase.FIREWALL``): a running firewalld or a default-deny
iptables chain would otherwise refuse Let's Encrypt's challenge on port 80. Each added rule carries
its undo, so a run that fails later (certbot, say) takes its rules away again with its files.
"""

import re
import shlex
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from installer.core import paths
from installer.core.actions import Absent, Command, File, Step
from installer.core.concern import FAIL, PASS, SKIP, WARN, Checks, Concern, Finding, Phase, Planner, Undo, Uninstaller
from installer.core.facts import Probe, ProbeResult

RECORD = f"{paths.STATE_DIR}/firewall.added"
IPTABLES_RULES = "/etc/iptables/rules.v4"
SSH_PORT = 22


#: ufw application profiles (as shipped by Debian's nginx, apache2 and openssh packages) -> TCP ports.
UFW_APPS = {
    "openssh": (22,), "nginx full": (80, 443), "nginx http": (80,), "nginx https": (443,),
    "nginx quic": (443,), "apache": (80,), "apache full": (80, 443), "apache secure": (443,),
    "www": (80,), "www full": (80, 443), "www secure": (443,),
}
#: firewalld services -> TCP ports.
SERVICE_PORTS = {"http": (80,), "https": (443,), "ssh": (22,), "http3": (443,)}

_HEADER = "# Firewall rules added by actvt-installer (uninstall removes exactly these), one per line"


# --- what to open ---------------------------------------------------------------------------------


def wanted_ports(config, mode: str) -> Tuple[int, ...]:
    ports = [80, 443] + ([int(config.vector_port)] if mode == "standalone" else [])
    return tuple(dict.fromkeys(ports))


def ssh_ports(facts) -> Tuple[int, ...]:
    """22 and every port sshd listens on (so that enabling ufw keeps SSH reachable)."""
    found = [SSH_PORT] + sorted({item.port for item in facts.listeners if item.process == "sshd"})
    return tuple(dict.fromkeys(found))


# --- parsers (pure, tested on recorded output) ----------------------------------------------------


def _port_spec(spec: str, proto: Optional[str] = None) -> Set[int]:
    """TCP ports of a ufw/iptables port spec: ``80``, ``80/tcp``, ``80,443/tcp``, ``8000:8100``."""
    spec, _, slash_proto = spec.partition("/")
    proto = (slash_proto or proto or "any").lower()
    if proto not in ("tcp", "any"):
        return set()
    ports: Set[int] = set()
    for part in spec.split(","):
        low, sep, high = part.replace("-", ":").partition(":")
        if not low.isdigit() or (sep and not high.isdigit()):
            return set()
        first, last = int(low), int(high) if sep else int(low)
        if last - first > 65535:
            return set()
        ports.update(range(first, last + 1))
    return ports


def _rule_ports(spec: str, proto: Optional[str] = None) -> Set[int]:
    """TCP ports of a port spec or of an application profile's name (``Nginx Full``)."""
    return _port_spec(spec, proto) or set(UFW_APPS.get(spec.lower(), ()))


def ufw_added_rules(text: str) -> Dict[int, str]:
    """TCP port -> the allow or limit rule of ``ufw show added`` output that opens it (its line)."""
    ports: Dict[int, str] = {}
    for line in text.splitlines():
        try:
            tokens = shlex.split(line.strip())
        except ValueError:
            continue
        if not tokens or tokens[0] != "ufw":
            continue
        tokens = tokens[1:]
        if tokens[:1] == ["route"]:
            continue
        if tokens[:1] == ["insert"]:
            tokens = tokens[2:]
        if tokens[:1] == ["prepend"]:
            tokens = tokens[1:]
        if not tokens or tokens[0] not in ("allow", "limit"):
            continue
        rest = [token for token in tokens[1:] if token not in ("log", "log-all")]
        if rest[:1] == ["out"]:
            continue
        if rest[:1] == ["in"]:
            rest = rest[1:]
        if rest[:1] == ["on"]:
            rest = rest[2:]
        proto = rest[rest.index("proto") + 1] if "proto" in rest[:-1] else None
        if "port" in rest[:-1]:
            found = _port_spec(rest[rest.index("port") + 1], proto)
        elif "app" in rest[:-1]:
            found = set(UFW_APPS.get(rest[rest.index("app") + 1].lower(), ()))
        elif rest and rest[0] not in ("from", "to", "proto"):
            found = _rule_ports(rest[0], proto)
        else:
            found = set()
        for port in sorted(found):
            ports.setdefault(port, line.strip())
    return ports


def parse_ufw_added(text: str) -> Set[int]:
    """TCP ports with an allow or limit rule in ``ufw show added`` output."""
    return set(ufw_added_rules(text))


class UfwStatus(NamedTuple):
    """``ufw status verbose``, read in the order ufw matches: the first rule that covers a port decides."""

    active: Optional[bool]  # None: unknown (ufw failed)
    opened: Dict[int, str]  # TCP port -> its first covering rule (a line of the table), an ALLOW or LIMIT
    blocked: Dict[int, str]  # TCP port -> its first covering rule, a DENY or REJECT from anywhere
    default: str = ""  # the policy for incoming connections no rule covers (deny, reject, allow; "": not shown)


_ANYWHERE = ("anywhere", "anywhere (v6)")


def ufw_status_rules(text: str) -> UfwStatus:
    active = None
    default = ""
    opened: Dict[int, str] = {}
    blocked: Dict[int, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("status:"):
            active = stripped.split(":", 1)[1].strip().lower() == "active"
            continue
        policy = re.match(r"default:\s*(\w+)\s*\(incoming\)", stripped, re.I)
        if policy:
            default = policy.group(1).lower()
            continue
        columns = re.split(r"\s{2,}", stripped)
        if len(columns) < 2:
            continue
        target, action = columns[0], columns[1].upper()
        if action.endswith(" OUT") or action.endswith("FWD"):
            continue
        target = re.sub(r"\s*\(v6\)$", "", target)
        target = re.sub(r"\s+on\s+\S+$", "", target)
        if action.startswith("ALLOW") or action.startswith("LIMIT"):
            ports, into = _rule_ports(target), opened
        elif action.startswith("DENY") or action.startswith("REJECT"):
            source = columns[2].lower() if len(columns) > 2 else "anywhere"
            if source not in _ANYWHERE:
                continue  # blocks some sources only
            ports, into = (set(range(1, 65536)) if target.lower() == "anywhere" else _rule_ports(target)), blocked
        else:
            continue
        for port in ports:
            if port not in opened and port not in blocked:
                into[port] = stripped
    return UfwStatus(active, opened, blocked, default)


def parse_ufw_status(text: str) -> Tuple[Optional[bool], Set[int]]:
    """(active or not, or None when unknown; TCP ports an ALLOW/LIMIT IN rule opens) from ``ufw status``."""
    status = ufw_status_rules(text)
    return status.active, set(status.opened)


def firewalld_rules(ports_text: str, services_text: str) -> Dict[int, str]:
    """TCP port -> what opens it in the zone (``port 4096/tcp``, ``service https``)."""
    ports: Dict[int, str] = {}
    for item in ports_text.split():
        spec, _, proto = item.partition("/")
        for port in sorted(_port_spec(spec.replace("-", ":"), proto or "tcp")):
            ports.setdefault(port, f"port {item}")
    for service in services_text.split():
        for port in SERVICE_PORTS.get(service, ()):
            ports.setdefault(port, f"service {service}")
    return ports


def parse_firewalld(ports_text: str, services_text: str) -> Set[int]:
    return set(firewalld_rules(ports_text, services_text))


class Chain(NamedTuple):
    """``iptables -S INPUT``, read in the order the kernel matches: the first rule that decides a new TCP
    connection to a port wins, then the chain's policy."""

    policy: str  # ACCEPT, DROP, ... ("" when not shown)
    opened: Dict[int, str]  # port -> its first deciding rule, an ACCEPT (as printed)
    blocked: Dict[int, str]  # port -> its first deciding rule, a DROP or REJECT for every source
    catch_all: Optional[str]  # the first DROP/REJECT of every TCP port and source: it decides all other ports
    blocking: bool  # any DROP or REJECT rule at all (even one of some sources only)

    @property
    def accept_all(self) -> bool:
        """Every port is open: policy ACCEPT and no DROP/REJECT rule."""
        return self.policy == "ACCEPT" and not self.blocking

    def verdict(self, port: int) -> Tuple[bool, str]:
        """(open, the rule, or the policy, that decides it)."""
        if port in self.opened:
            return True, self.opened[port]
        if port in self.blocked:
            return False, self.blocked[port]
        if self.catch_all:
            return False, self.catch_all
        return self.policy == "ACCEPT", f"-P INPUT {self.policy or 'ACCEPT'}"


#: Options of a DROP/REJECT rule that keep it one for every source (others, -s, -i or a state match,
#: make it one for some connections only).
_EVERY_SOURCE = {"-A", "INPUT", "-p", "-m", "tcp", "multiport", "comment", "--comment", "--dport", "--dports",
                 "-j", "--reject-with"}


def iptables_rules(text: str) -> Chain:
    policy, blocking, catch_all = "", False, None
    opened: Dict[int, str] = {}
    blocked: Dict[int, str] = {}
    for line in text.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        if tokens[:2] == ["-P", "INPUT"]:
            policy = (tokens[2:3] or [""])[0]
            continue
        if tokens[:1] != ["-A"] or catch_all:
            continue  # after a catch-all DROP, no rule is reached
        target = tokens[tokens.index("-j") + 1] if "-j" in tokens[:-1] else ""
        proto = tokens[tokens.index("-p") + 1] if "-p" in tokens[:-1] else "any"
        ports: Set[int] = set()
        for option in ("--dport", "--dports"):
            if option in tokens[:-1]:
                ports |= _port_spec(tokens[tokens.index(option) + 1], proto)
        if target in ("DROP", "REJECT"):
            blocking = True
            options = {token for index, token in enumerate(tokens) if token.startswith("-") or index == 1}
            if "!" in tokens or not options <= _EVERY_SOURCE or proto not in ("tcp", "any", "6"):
                continue  # for some connections only
            if "--dport" not in tokens and "--dports" not in tokens:
                catch_all = line.strip()
                continue
            into = blocked
        elif target == "ACCEPT" and not ("-i" in tokens[:-1] and tokens[tokens.index("-i") + 1] == "lo"):
            into = opened
        else:
            continue
        for port in ports:
            if port not in opened and port not in blocked:
                into[port] = line.strip()
    return Chain(policy, opened, blocked, catch_all, blocking)


def parse_iptables(text: str) -> Tuple[bool, Set[int]]:
    """(everything is accepted, TCP ports an ACCEPT rule opens before any rule drops them) from
    ``iptables -S INPUT``."""
    chain = iptables_rules(text)
    return chain.accept_all, set(chain.opened)


# --- the probes: each command with its parser ---------------------------------------------------


def _when_ok(parse, otherwise):
    return lambda result: parse(result.output) if result.returncode == 0 else otherwise


UFW_STATUS = Probe("ufw_status", ("ufw", "status", "verbose"), _when_ok(parse_ufw_status, (None, set())))
UFW_ADDED = Probe("ufw_added", ("ufw", "show", "added"), _when_ok(parse_ufw_added, set()))
FIREWALLD_RUNNING = Probe("firewalld_state", ("firewall-cmd", "--state"),
                          lambda result: result.returncode == 0 and result.output.strip() == "running")
FIREWALLD_PORTS = Probe("firewalld_ports", ("firewall-cmd", "--list-ports"),
                        _when_ok(lambda text: parse_firewalld(text, ""), set()))
FIREWALLD_SERVICES = Probe("firewalld_services", ("firewall-cmd", "--list-services"),
                           _when_ok(lambda text: parse_firewalld("", text), set()))
IPTABLES_INPUT = Probe("iptables_input", ("iptables", "-S", "INPUT"), _when_ok(parse_iptables, (False, set())))
PROBES = (UFW_STATUS, UFW_ADDED, FIREWALLD_RUNNING, FIREWALLD_PORTS, FIREWALLD_SERVICES, IPTABLES_INPUT)


# --- the record -----------------------------------------------------------------------------------


def record_lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def record_text(previous: Sequence[str], added: Iterable[str]) -> bytes:
    lines = list(dict.fromkeys(list(previous) + list(added)))
    return ("\n".join([_HEADER] + lines) + "\n").encode()


def removal_commands(text: str) -> List[Tuple[str, ...]]:
    """The commands that undo the recorded rules (for uninstall), in a safe order: a ufw the
    installer enabled is disabled before its SSH rule is deleted."""
    lines = record_lines(text)
    commands: List[Tuple[str, ...]] = []
    if "ufw enable" in lines:
        commands.append(("ufw", "--force", "disable"))
    for line in lines:
        words = line.split()
        if words[:2] == ["ufw", "allow"] and len(words) == 3:
            commands.append(("ufw", "delete", "allow", words[2]))
        elif words[:1] == ["firewalld"] and len(words) == 2:
            commands.append(("firewall-cmd", f"--remove-port={words[1]}"))
            commands.append(("firewall-cmd", "--permanent", f"--remove-port={words[1]}"))
        elif words[:1] == ["iptables"] and len(words) > 1:
            commands.append(("iptables", "-D", "INPUT", *words[1:]))
    return commands


def saved_rule(rule: Sequence[str]) -> str:
    """How iptables-save writes a rule added as ``-p tcp --dport N -j ACCEPT``."""
    words = list(rule)
    if words[:2] == ["-p", "tcp"] and "-m" not in words:
        words[2:2] = ["-m", "tcp"]
    return " ".join(["-A", "INPUT"] + words)


def with_saved_rules(text: str, rules: Sequence[Sequence[str]]) -> str:
    """rules.v4 with ``rules`` first in the INPUT chain of its ``*filter`` table, in the order the
    run-time chain has them after each was inserted at the top (the last one first). A rule the file
    already holds (only its run-time copy was deleted) is not written twice."""
    lines = text.splitlines()
    added = [saved_rule(rule) for rule in reversed(rules) if saved_rule(rule) not in lines]
    if "*filter" not in lines:
        return "\n".join(lines + ["*filter"] + added + ["COMMIT"]) + "\n"
    at = lines.index("*filter") + 1
    while at < len(lines) and (lines[at].startswith(":") or lines[at].startswith("#")):
        at += 1
    return "\n".join(lines[:at] + added + lines[at:]) + "\n"


def own_saved_lines(text: str, rules: Sequence[Sequence[str]]) -> Tuple[str, ...]:
    """The lines of rules.v4 that ``with_saved_rules`` writes for ``rules`` (``File.own_lines``: a diff
    shows only these of the user's file)."""
    frame = () if "*filter" in text.splitlines() else ("*filter", "COMMIT")
    return tuple(saved_rule(rule) for rule in rules) + frame


def without_saved_rules(text: str, rules: Sequence[Sequence[str]]) -> str:
    """rules.v4 without the lines ``with_saved_rules`` added for ``rules`` (each once)."""
    lines = text.splitlines()
    for rule in rules:
        line = saved_rule(rule)
        if line in lines:
            lines.remove(line)
    return "\n".join(lines) + "\n"


def recorded_iptables_rules(text: str) -> List[Tuple[str, ...]]:
    return [tuple(line.split()[1:]) for line in record_lines(text) if line.split()[:1] == ["iptables"]]


# --- planning -------------------------------------------------------------------------------------


def backend(facts) -> Optional[str]:
    """``ufw``, ``firewalld``, ``iptables`` or None (which the probes found, in that order)."""
    if facts.fact(UFW_STATUS) is not None or facts.fact(UFW_ADDED) is not None:
        return "ufw"
    if facts.fact(FIREWALLD_RUNNING):
        return "firewalld"
    if facts.fact(IPTABLES_INPUT) is not None:
        return "iptables"
    return None


def _ufw(facts, ports: Sequence[int]) -> Tuple[List, List[str], str]:
    active, open_ports = facts.fact(UFW_STATUS) or (None, set())
    open_ports = set(open_ports) | (facts.fact(UFW_ADDED) or set())
    actions: List = []
    recorded: List[str] = []
    wanted = list(ports)
    if active is False:
        wanted = list(ssh_ports(facts)) + wanted
    for port in dict.fromkeys(wanted):
        if port in open_ports:
            continue
        spec = f"{port}/tcp"
        why = "SSH, before ufw is enabled" if port not in ports else f"clients reach port {port}"
        actions.append(Command(("ufw", "allow", spec), reason=why, on_rollback=(("ufw", "delete", "allow", spec),)))
        recorded.append(f"ufw allow {spec}")
    if active is False:
        actions.append(Command(("ufw", "--force", "enable"), reason="ufw was inactive (SSH is allowed first)",
                               on_rollback=(("ufw", "--force", "disable"),)))
        recorded.append("ufw enable")
    return actions, recorded, "ufw"


def _firewalld(facts, ports: Sequence[int]) -> Tuple[List, List[str], str]:
    open_ports = (facts.fact(FIREWALLD_PORTS) or set()) | (facts.fact(FIREWALLD_SERVICES) or set())
    actions: List = []
    recorded: List[str] = []
    for port in ports:
        if port in open_ports:
            continue
        spec = f"{port}/tcp"
        actions.append(Command(("firewall-cmd", f"--add-port={spec}"), reason=f"clients reach port {port}",
                               on_rollback=(("firewall-cmd", f"--remove-port={spec}"),)))
        actions.append(Command(("firewall-cmd", "--permanent", f"--add-port={spec}"),
                               reason=f"port {port} stays open after a reboot",
                               on_rollback=(("firewall-cmd", "--permanent", f"--remove-port={spec}"),)))
        recorded.append(f"firewalld {spec}")
    return actions, recorded, "firewalld"


def _iptables(facts, ports: Sequence[int]) -> Tuple[List, List[str], str]:
    accept_all, open_ports = facts.fact(IPTABLES_INPUT)
    actions: List = []
    recorded: List[str] = []
    if accept_all:
        return actions, recorded, "iptables"
    rules = []
    for port in ports:
        if port in open_ports:
            continue
        rule = ("-p", "tcp", "--dport", str(port), "-j", "ACCEPT")
        actions.append(Command(("iptables", "-I", "INPUT", *rule), reason=f"clients reach port {port}",
                               on_rollback=(("iptables", "-D", "INPUT", *rule),)))
        recorded.append("iptables " + " ".join(rule))
        rules.append(rule)
    saved = facts.files.get(IPTABLES_RULES)
    text = saved.decode("utf-8", errors="replace") if saved is not None else None
    if rules and text is not None and with_saved_rules(text, rules) != text:
        actions.append(File(IPTABLES_RULES, with_saved_rules(text, rules).encode(), None, shared=True,
                            own_lines=own_saved_lines(text, rules),
                            reason="the same rules at the next boot (iptables-persistent)"))
    return actions, recorded, "iptables"


def plan_firewall(config, facts, decisions, ctx) -> List[Step]:
    if not config.configure_firewall:
        return []
    found = backend(facts)
    if found is None:
        return []
    ports = wanted_ports(config, decisions.mode)
    planner = {"ufw": _ufw, "firewalld": _firewalld, "iptables": _iptables}[found]
    actions, recorded, name = planner(facts, ports)
    previous = record_lines(facts.files.get(RECORD, b"").decode("utf-8", errors="replace"))
    if recorded:
        actions.append(File(RECORD, record_text(previous, recorded), 0o600,
                            reason="the rules the installer added, for uninstall"))
    if not actions:
        return []
    listed = ", ".join(f"{port}/tcp" for port in ports)
    return [Step(f"Opening {listed} in {name}", tuple(actions))]


def notes(config, facts, decisions, ctx) -> List[str]:
    if not config.configure_firewall:
        return ["firewall left alone (ACTVT_CONFIGURE_FIREWALL=no): open "
                + ", ".join(f"{port}/tcp" for port in wanted_ports(config, decisions.mode)) + " yourself if needed"]
    if facts.probes and backend(facts) is None:
        return ["no firewall tool found (ufw, firewalld, iptables): no ports were opened"]
    if backend(facts) == "iptables" and IPTABLES_RULES not in facts.files and _iptables(facts, wanted_ports(
            config, decisions.mode))[0]:
        return [f"the iptables rules added are not kept across a reboot: there is no {IPTABLES_RULES} "
                "(install iptables-persistent, or save them your way)"]
    return []


def uninstall_rules(entries, facts, options) -> List[Step]:
    """Remove the rules the installer added (as recorded), then the record."""
    record = facts.files.get(RECORD)
    if not record:
        return []
    text = record.decode(errors="replace")
    actions: List = [Command(argv, "remove a rule the installer added", may_fail=True)
                     for argv in removal_commands(text)]
    saved = facts.files.get(IPTABLES_RULES)
    rules = recorded_iptables_rules(text)
    if saved is not None and rules:
        text = saved.decode("utf-8", errors="replace")
        kept = without_saved_rules(text, rules).encode()
        if kept != saved:
            actions.append(File(IPTABLES_RULES, kept, None, shared=True, own_lines=own_saved_lines(text, rules),
                                reason="without the rules the installer added"))
    return [Step("Removing the firewall rules the installer added",
                 tuple(actions) + (Absent(RECORD, "the record of added rules"),))]


# --- what `actvt doctor` checks: the mode's ports, read with the planner's probes and parsers ---------


_NOT_RUN = ProbeResult(-1, "")


def _failed(probe: Probe, result: ProbeResult) -> Tuple[str, str, str]:
    """What a firewall command that failed leaves unknown (its output is not repeated: not the installer's)."""
    return SKIP, f"not checked: `{' '.join(probe.argv)}` failed (exit status {result.returncode})", ""


def _ufw_verdict(facts, port: int) -> Tuple[str, str, str]:
    spec = f"{port}/tcp"
    result = facts.probes.get(UFW_STATUS.name, _NOT_RUN)
    status = ufw_status_rules(result.output) if result.returncode == 0 else UfwStatus(None, {}, {})
    if status.active is None:
        return _failed(UFW_STATUS, result)
    if not status.active:
        added = facts.probes.get(UFW_ADDED.name)
        rules = ufw_added_rules(added.output) if added and added.returncode == 0 else {}
        if port in rules:
            return PASS, f"{spec}: ufw is inactive (it filters nothing); once enabled, `{rules[port]}` opens it", ""
        return WARN, f"{spec}: ufw is inactive (it filters nothing), but no ufw rule allows it: enabling ufw would " \
                     "block it", f"sudo ufw allow {spec}"
    if port in status.opened:
        return PASS, f"{spec} is open (ufw rule: {_squeeze(status.opened[port])})", ""
    if port in status.blocked:
        rule = status.blocked[port]
        # `ufw allow` turns a rule of the same port and protocol into an allow where it stands (ufw skips
        # inserting it again); any other blocking rule is overtaken by an allow put first
        same = re.sub(r"\s*\(v6\)$", "", re.split(r"\s{2,}", rule)[0]) == spec
        return FAIL, f"{spec} is blocked by the ufw rule '{_squeeze(rule)}'", \
            f"sudo ufw allow {spec}" if same else f"sudo ufw insert 1 allow {spec}"
    if status.default == "allow":
        return PASS, f"{spec} is open (ufw's default policy for incoming connections: allow)", ""
    return FAIL, f"{spec} is closed: no ufw rule allows it (ufw denies what no rule allows)", f"sudo ufw allow {spec}"


def _squeeze(line: str) -> str:
    return re.sub(r"\s{2,}", "  ", line.strip())


def _firewalld_verdict(facts, port: int) -> Tuple[str, str, str]:
    spec = f"{port}/tcp"
    ports = facts.probes.get(FIREWALLD_PORTS.name, _NOT_RUN)
    services = facts.probes.get(FIREWALLD_SERVICES.name, _NOT_RUN)
    for probe, result in ((FIREWALLD_PORTS, ports), (FIREWALLD_SERVICES, services)):
        if result.returncode != 0:
            return _failed(probe, result)
    rules = firewalld_rules(ports.output, services.output)
    if port in rules:
        return PASS, f"{spec} is open in firewalld's default zone ({rules[port]})", ""
    return FAIL, f"{spec} is closed: firewalld's default zone has no port or service for it", \
        f"sudo firewall-cmd --add-port={spec} && sudo firewall-cmd --permanent --add-port={spec}"


def _iptables_verdict(facts, port: int, saved: bool) -> Tuple[str, str, str]:
    spec = f"{port}/tcp"
    result = facts.probes.get(IPTABLES_INPUT.name, _NOT_RUN)
    if result.returncode != 0:
        return _failed(IPTABLES_INPUT, result)
    chain = iptables_rules(result.output)
    is_open, rule = chain.verdict(port)
    if is_open:
        return PASS, f"{spec} is open (iptables: {rule})", ""
    insert = f"sudo iptables -I INPUT -p tcp --dport {port} -j ACCEPT"
    keep = f"  (and the same rule in {IPTABLES_RULES}, which is loaded at boot)" if saved else ""
    if port in chain.blocked:  # a rule dropping this port: take it out (the same words, -D for -A)
        return FAIL, f"{spec} is blocked by the iptables rule '{rule}'", \
            "sudo iptables -D INPUT " + rule.split(None, 2)[2] + (f"  (and from {IPTABLES_RULES})" if saved else "")
    what = f"the rule '{rule}' drops it" if chain.catch_all else f"the INPUT policy is {chain.policy}"
    return FAIL, f"{spec} is closed: no iptables rule accepts it before {what}", insert + keep


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    """Whether each of the mode's ports is open for TCP in the firewall the planner would use: the
    rule that opens it, or the command that does. Read as the planner reads it (``backend``, the
    probes above), in the order the firewall matches its rules."""
    ports = wanted_ports(config, decisions.mode)
    found = backend(facts)
    if found is None:
        if not facts.probes:
            return [Finding("firewall", SKIP, "Firewall: not checked (--root, or no command could be run)")]
        return [Finding("firewall", PASS, "Firewall: no ufw, firewalld or iptables here: nothing on this host "
                                          "filters " + ", ".join(f"{port}/tcp" for port in ports))]
    saved = IPTABLES_RULES in facts.files
    findings = []
    for port in ports:
        if found == "ufw":
            level, text, fix = _ufw_verdict(facts, port)
        elif found == "firewalld":
            level, text, fix = _firewalld_verdict(facts, port)
        else:
            level, text, fix = _iptables_verdict(facts, port, saved)
        findings.append(Finding("firewall", level, f"Firewall ({found}): {text}", fix))
    return findings


CONCERN = Concern(
    name="firewall",
    reads=lambda config: (RECORD, IPTABLES_RULES),
    probes=PROBES,
    planners=(Planner(Phase.FIREWALL, plan_firewall),),
    notes=notes,
    uninstall=(Uninstaller(Undo.FIREWALL, uninstall_rules),),
    checks=Checks(doctor_checks),
)
