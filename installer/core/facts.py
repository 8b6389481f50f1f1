"""What the host is: read once into a ``Facts`` value before anything is planned.

Parsers are pure functions of text (tested on recorded files); ``gather`` reads the files under the
``Root`` (``/proc`` too: under ``--root`` it is the tree's, read through ``Tree`` as every other file)
and runs nothing but ``nvidia-smi`` (only on the real host). Everything here is read-only.
"""

import dataclasses
import os
import shutil
import subprocess
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from installer.core import records
from installer.core.fs import Tree, UnsafePath, walk_files
from installer.core.paths import Root

WEB_SERVERS = {"nginx": "nginx", "apache2": "apache", "httpd": "httpd"}
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"


@dataclasses.dataclass(frozen=True)
class OSInfo:
    id: str = "unknown"
    version_id: str = ""
    id_like: Tuple[str, ...] = ()
    pretty_name: str = "unknown"


@dataclasses.dataclass(frozen=True)
class Listener:
    port: int
    address: str
    process: str = ""  # the listening program's name, when it could be found
    user: str = ""  # the socket's owner (from /proc/net/tcp: known even where /proc/<pid>/fd is not readable)

    def is_program(self, name: str) -> bool:
        """Held by ``name``: its process, or (when the process cannot be told, as for root without
        CAP_SYS_PTRACE in a container) a socket of the user of the same name (``vector``)."""
        return self.process == name or (not self.process and self.user == name)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What a read-only command printed (stdout and stderr together) and its exit status."""

    returncode: int
    output: str


def _as_is(result: ProbeResult) -> ProbeResult:
    return result


@dataclasses.dataclass(frozen=True)
class Probe:
    """A fact read by running a command: the command and the parser of what it printed, kept together
    (as pyinfra's fact classes). Probes run only on the real host and only when the program exists;
    ``Facts.fact`` gives the parsed value, or None when the probe did not run."""

    name: str
    argv: Tuple[str, ...]
    parse: Callable[[ProbeResult], Any] = _as_is
    when: Optional[Callable[["Facts"], bool]] = None  # run only when true of the other facts (a slow command)


@dataclasses.dataclass(frozen=True)
class Facts:
    os: OSInfo = OSInfo()
    package_manager: Optional[str] = None
    packages: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> version
    listeners: Tuple[Listener, ...] = ()
    systemd_running: bool = False
    is_root: bool = False
    sudo_user: Optional[str] = None
    gpu: bool = False  # nvidia-smi ran and listed a GPU
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)  # watched path -> content
    dirs: FrozenSet[str] = frozenset()  # watched paths that are folders (their files are in ``files``)
    free_disk_mb: Optional[int] = None
    mem_total_mb: Optional[int] = None
    probes: Mapping[str, ProbeResult] = dataclasses.field(default_factory=dict)  # name -> result; absent: not run
    domain_addresses: Optional[Tuple[str, ...]] = None  # None: not looked up (under --root)
    dns_waited: Optional[int] = None  # seconds the run waited for the domain to resolve (ACTVT_WAIT_FOR_DNS)
    selinux_enforcing: bool = False  # /sys/fs/selinux/enforce is 1 (concerns/selinux.py)

    def fact(self, probe: "Probe"):
        """The probe's parsed value, or None when it did not run (under --root, program absent)."""
        result = self.probes.get(probe.name)
        return None if result is None else probe.parse(result)

    def has_package(self, name: str) -> bool:
        return name in self.packages

    def listening_on(self, *ports: int) -> Tuple[Listener, ...]:
        return tuple(item for item in self.listeners if item.port in ports)

    def web_server(self) -> str:
        """``none``, ``nginx``, ``apache``, ``httpd`` or ``unknown`` (what listens on 80/443)."""
        found = self.listening_on(80, 443)
        if not found:
            return "none"
        for item in found:
            if item.process in WEB_SERVERS:
                return WEB_SERVERS[item.process]
        return "unknown"


# --- pure parsers ---------------------------------------------------------------------------------


def parse_os_release(text: str) -> OSInfo:
    values: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return OSInfo(
        id=values.get("ID", "unknown").lower(),
        version_id=values.get("VERSION_ID", ""),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "unknown")),
    )


def package_manager_for(os_info: OSInfo, has_dnf: bool) -> Optional[str]:
    """apt for Debian and Ubuntu; dnf (else yum) for RHEL-likes and Amazon Linux (2023 has dnf, 2 only yum)."""
    family = (os_info.id,) + os_info.id_like
    if any(name in ("debian", "ubuntu") for name in family):
        return "apt"
    if any(name in ("rhel", "centos", "fedora", "rocky", "almalinux", "amzn") for name in family):
        return "dnf" if has_dnf else "yum"
    return None


def parse_dpkg_status(text: str) -> Dict[str, str]:
    """Installed packages from ``/var/lib/dpkg/status``: name -> version."""
    installed = {}
    for stanza in text.split("\n\n"):
        fields: Dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            installed[fields["Package"]] = fields.get("Version", "")
    return installed


def parse_proc_net_tcp(text: str, ipv6: bool = False) -> Tuple[Tuple[int, str, str, int], ...]:
    """Listening sockets from ``/proc/net/tcp`` or ``tcp6``: (port, address, inode, uid)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10 or cols[3] != "0A":  # 0A = LISTEN
            continue
        address_hex, _, port_hex = cols[1].partition(":")
        found.append((int(port_hex, 16), _address(address_hex, ipv6), cols[9], int(cols[7])))
    return tuple(found)


def _address(hex_text: str, ipv6: bool) -> str:
    raw = bytes.fromhex(hex_text)
    if not ipv6:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    joined = b"".join(words)
    import ipaddress

    return str(ipaddress.IPv6Address(joined))


# --- the collector --------------------------------------------------------------------------------


def read_file(root: Root, path: str) -> Optional[bytes]:
    """A file under the root, read through ``fsafe`` (no planted link followed, no FIFO opened);
    None when it is absent. One of the installer's records is read only when root alone could
    have written it (``records.kind``). One that cannot be read for another reason stops the run."""
    kind = records.kind(path)
    try:
        if kind is None:
            return Tree(root).read(path)
        return Tree(root).read_record(path, any_owner=kind == records.BACKUP, allowed=records.allowed_owners)
    except PermissionError as exc:
        raise UnsafePath(f"cannot read {path}: {exc.strerror}") from None


class _Proc:
    """``/proc`` (and ``/sys``) as the run sees it. On the host it is the kernel's, read as it is; under ``--root``
    it is a folder of the tree like any other, read through ``Tree`` (no link planted there is
    followed out of the tree, no FIFO opened: ``UnsafePath`` names it)."""

    def __init__(self, root: Root):
        self.root = root
        self.tree = None if root.is_host else Tree(root)

    def read(self, path: str) -> Optional[bytes]:
        return read_file(self.root, path) if self.tree is not None else _kernel(_read_bytes, path, None)

    def listdir(self, path: str) -> List[str]:
        return self.tree.listdir(path) if self.tree is not None else _kernel(os.listdir, path, [])

    def readlink(self, path: str) -> Optional[str]:
        return self.tree.readlink(path) if self.tree is not None else _kernel(os.readlink, path, None)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _kernel(read: Callable[[str], Any], path: str, missing: Any) -> Any:
    """``read(path)`` of the kernel's /proc; ``missing`` when it cannot be read (a process that ended,
    another user's fd/ in a container)."""
    try:
        return read(path)
    except OSError:
        return missing


def _socket_owners(proc: _Proc) -> Dict[str, str]:
    """inode -> process name, by walking /proc/<pid>/fd (root sees every process)."""
    owners: Dict[str, str] = {}
    for pid in (name for name in proc.listdir("/proc") if name.isdigit()):
        fds = proc.listdir(f"/proc/{pid}/fd")
        comm = proc.read(f"/proc/{pid}/comm") if fds else None
        if comm is None:
            continue
        name = comm.decode(errors="replace").strip()
        for fd in fds:
            link = proc.readlink(f"/proc/{pid}/fd/{fd}") or ""
            if link.startswith("socket:["):
                owners.setdefault(link[8:-1], name)
    return owners


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def gather_listeners(root: Root) -> Tuple[Listener, ...]:
    proc = _Proc(root)
    sockets = []
    for name, ipv6 in (("tcp", False), ("tcp6", True)):
        raw = proc.read(f"/proc/net/{name}")
        if raw:
            sockets.extend(parse_proc_net_tcp(raw.decode(errors="replace"), ipv6))
    if not sockets:
        return ()
    owners = _socket_owners(proc)
    seen = set()
    listeners = []
    for port, address, inode, uid in sockets:
        key = (port, address)
        if key not in seen:
            seen.add(key)
            listeners.append(Listener(port, address, owners.get(inode, ""), _user_name(uid)))
    return tuple(sorted(listeners, key=lambda item: (item.port, item.address)))


def detect_gpu(root: Root) -> bool:
    """True when ``nvidia-smi -L`` runs and lists a GPU (only on the real host)."""
    if not root.is_host or not shutil.which("nvidia-smi"):
        return False
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def _meminfo_mb(text: str) -> Optional[int]:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def run_probes(root: Root, probes: Iterable["Probe"]) -> Dict[str, ProbeResult]:
    """Run read-only commands (only on the real host, only when the program exists)."""
    results: Dict[str, ProbeResult] = {}
    if not root.is_host:
        return results
    for probe in probes:
        if not shutil.which(probe.argv[0]):
            continue
        try:
            done = subprocess.run(list(probe.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace", timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        results[probe.name] = ProbeResult(done.returncode, done.stdout)
    return results


def resolve(domain: Optional[str]) -> Tuple[str, ...]:
    """The domain's addresses (empty when it does not resolve)."""
    import socket

    try:
        infos = socket.getaddrinfo(domain, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return ()
    return tuple(sorted({info[4][0] for info in infos}))


def public_addresses(addresses: Iterable[str]) -> Tuple[str, ...]:
    """The addresses that are not loopback (a line of this host's /etc/hosts is not a DNS record)."""
    import ipaddress

    return tuple(item for item in addresses if not ipaddress.ip_address(item.split("%")[0]).is_loopback)


def gather(root: Root, environ: Mapping[str, str], reads: Iterable[str] = (),
           probes: Iterable["Probe"] = (), domain: Optional[str] = None) -> Facts:
    """Read the host's facts under ``root``: the files (and, for a folder, the regular files in it) at
    ``reads``, what ``probes`` print, the domain's addresses. Probes run and the domain is looked up
    only on the host."""
    os_text = read_file(root, "/etc/os-release") or read_file(root, "/usr/lib/os-release") or b""
    os_info = parse_os_release(os_text.decode(errors="replace"))
    manager = package_manager_for(os_info, os.path.exists(root.host("/usr/bin/dnf")))
    dpkg = read_file(root, "/var/lib/dpkg/status")
    packages = parse_dpkg_status(dpkg.decode(errors="replace")) if dpkg else {}
    if manager in ("dnf", "yum") and root.is_host and shutil.which("rpm"):
        packages = _rpm_packages()
    files: Dict[str, bytes] = {}
    dirs = set()
    tree = Tree(root)
    for path in dict.fromkeys(reads):
        if tree.is_dir(path):
            # a watched folder: its regular files (one level) are read too
            dirs.add(path)
            for child in walk_files(tree, path):
                content = read_file(root, child)
                if content is not None:
                    files[child] = content
        else:
            content = read_file(root, path)
            if content is not None:
                files[path] = content
    proc = _Proc(root)
    comm = proc.read("/proc/1/comm") or b""
    free_mb = None
    try:
        stat = os.statvfs(_existing_parent(root.host("/var/lib")))
        free_mb = stat.f_bavail * stat.f_frsize // (1024 * 1024)
    except OSError:
        pass
    meminfo = proc.read("/proc/meminfo")
    found = Facts(
        os=os_info,
        package_manager=manager,
        packages=packages,
        listeners=gather_listeners(root),
        systemd_running=comm.strip() == b"systemd",
        is_root=os.geteuid() == 0,
        sudo_user=environ.get("SUDO_USER") or None,
        gpu=detect_gpu(root),
        files=files,
        dirs=frozenset(dirs),
        free_disk_mb=free_mb,
        mem_total_mb=_meminfo_mb(meminfo.decode()) if meminfo else None,
        domain_addresses=resolve(domain) if domain and root.is_host else None,
        # the kernel's selinuxfs, read as /proc is: a --root tree carries its own
        selinux_enforcing=(proc.read(SELINUX_ENFORCE) or b"").strip() == b"1",
    )
    wanted = [probe for probe in probes if probe.when is None or probe.when(found)]
    return dataclasses.replace(found, probes=run_probes(root, wanted))


def _existing_parent(path: str) -> str:
    while not os.path.exists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    return path or "/"


def _rpm_packages() -> Dict[str, str]:
    try:
        result = subprocess.run(
            ["rpm", "-qa", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE}\n"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
