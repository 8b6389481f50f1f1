"""Check a plan against the host, then apply it.

``check`` compares every action with what is on disk (content, mode, owner) and with the system
(packages, services), and says for each whether it would change something and why. A dry run stops
there. ``apply`` carries out only the actions that change something, in order: files are written
atomically with their final mode and owner from the first byte, a replaced file's previous version
is copied to ``/var/lib/actvt/backups/<run>/`` first, and when an action fails the files this run
wrote are put back as they were before the error is raised.
"""

import dataclasses
import difflib
import filecmp
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import paths
from .actions import FILE_ACTIONS, Absent, Action, Command, Copy, Directory, Fetch, File, Packages, Plan, Service, Symlink
from .errors import ApplyError
from .paths import Root

CHANGE, OK, SKIP = "change", "ok", "skip"
MAX_DIFF_BYTES = 256 * 1024


@dataclasses.dataclass
class Checked:
    """An action and what applying it would do."""

    action: Action
    step: str
    status: str  # CHANGE, OK (already as wanted) or SKIP (cannot act here, e.g. under --root)
    why: str = ""  # what differs, or why it is skipped
    diff: str = ""
    changed: bool = False  # set by apply
    seconds: float = 0.0
    step_no: int = 0  # index of its step in the plan


@dataclasses.dataclass
class Result:
    items: List[Checked]
    backup_dir: Optional[str] = None
    created: Tuple[str, ...] = ()  # paths this run made where there was nothing
    backed_up: Mapping[str, str] = dataclasses.field(default_factory=dict)  # replaced path -> its backup

    @property
    def changed(self) -> List[Checked]:
        return [item for item in self.items if item.changed]


# --- running commands -----------------------------------------------------------------------------


class Runner:
    """Runs host commands; tests pass a recording fake with the same ``run``."""

    def __init__(self, log: Callable[[str, str], None] = lambda level, text: None):
        self.log = log

    def run(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None, check: bool = True,
            display: Optional[str] = None, timeout: Optional[float] = None,
            secrets: Sequence[str] = ()) -> subprocess.CompletedProcess:
        shown = display or " ".join(argv)
        self.log("INFO", f"run: {shown}")
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("DEBIAN_FRONTEND", "noninteractive")
        try:
            result = subprocess.run(list(argv), env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=timeout)
        except FileNotFoundError:
            raise ApplyError(f"{argv[0]} is not installed (needed for: {shown})") from None
        except subprocess.TimeoutExpired:
            raise ApplyError(f"timed out after {timeout:.0f} s: {shown}") from None
        for secret in secrets:
            if secret:
                result.stdout = result.stdout.replace(secret, "***")
                result.stderr = result.stderr.replace(secret, "***")
        for stream in (result.stdout, result.stderr):
            for line in stream.splitlines()[-200:]:
                self.log("DEBUG", f"  {line}")
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ApplyError(f"{shown} failed (exit {result.returncode}): " + " | ".join(tail))
        return result


# --- ownership ------------------------------------------------------------------------------------


def _ids(owner: str, group: str) -> Tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ApplyError(f"user {owner!r} does not exist") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ApplyError(f"group {group!r} does not exist") from None
    return uid, gid


def owner_names(st: os.stat_result) -> Tuple[str, str]:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


# --- diffs ----------------------------------------------------------------------------------------


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def file_diff(path: str, before: Optional[bytes], after: bytes, sensitive: bool) -> str:
    """A unified diff, or one line saying why the content is not shown."""
    if sensitive:
        return f"(content of {path} not shown: it holds a secret)"
    for data in (before, after):
        if data is not None and (not _is_text(data) or len(data) > MAX_DIFF_BYTES):
            digest = hashlib.sha256(after).hexdigest()[:16]
            return f"(binary or large file {path}: {len(after)} bytes, sha256 {digest}…)"
    old = (before or b"").decode().splitlines(keepends=True)
    new = after.decode().splitlines(keepends=True)
    fromfile = path if before is not None else "/dev/null"
    return "".join(difflib.unified_diff(old, new, fromfile=fromfile, tofile=path))


# --- the engine -----------------------------------------------------------------------------------


class Engine:
    def __init__(self, root: Root, runner: Runner, manage_owner: Optional[bool] = None,
                 log: Callable[[str, str], None] = lambda level, text: None):
        self.root = root
        self.runner = runner
        self.log = log
        # Owners can only be set (and so are only compared) when running as root.
        self.manage_owner = os.geteuid() == 0 if manage_owner is None else manage_owner
        self.warnings: List[str] = []  # failures of commands marked may_fail

    # -- check --

    def check(self, plan: Plan) -> List[Checked]:
        items: List[Checked] = []
        changing: set = set()
        for number, step in enumerate(plan.steps):
            for action in step.actions:
                item = self._check_one(action, step.title, changing)
                item.step_no = number
                if item.status == CHANGE and isinstance(action, FILE_ACTIONS):
                    changing.add(action.path)
                if item.status == CHANGE and isinstance(action, Command):
                    changing.update(action.creates)
                items.append(item)
        return items

    def _check_one(self, action: Action, step: str, changing: set) -> Checked:
        if isinstance(action, File):
            return self._check_file(action, step)
        if isinstance(action, Copy):
            return self._check_copy(action, step, changing)
        if isinstance(action, Directory):
            return self._check_dir(action, step)
        if isinstance(action, Symlink):
            host = self.root.host(action.path)
            current = os.readlink(host) if os.path.islink(host) else None
            if current == action.target:
                return Checked(action, step, OK)
            return Checked(action, step, CHANGE, "link missing" if current is None else f"points to {current}")
        if isinstance(action, Absent):
            host = self.root.host(action.path)
            if not os.path.lexists(host):
                return Checked(action, step, OK)
            if action.if_empty and os.path.isdir(host) and not os.path.islink(host):
                left = [name for name in os.listdir(host)
                        if f"{action.path.rstrip('/')}/{name}" not in changing]
                if left:
                    return Checked(action, step, OK, f"kept: {len(left)} other file(s) in it")
            return Checked(action, step, CHANGE, "exists")
        if not self.root.is_host:
            return Checked(action, step, SKIP, f"not run under --root {self.root.root}")
        if isinstance(action, Fetch):
            if os.path.isfile(action.path):
                return Checked(action, step, OK)
            return Checked(action, step, CHANGE, "missing")
        if isinstance(action, Packages):
            missing = [name for name in action.names if not self._package_present(name)]
            if not missing:
                return Checked(action, step, OK)
            return Checked(action, step, CHANGE, "missing: " + " ".join(missing))
        if isinstance(action, Command):
            if not action.when_changed:
                return Checked(action, step, CHANGE, action.reason)
            hit = [path for path in action.when_changed if path in changing]
            if hit:
                return Checked(action, step, CHANGE, "changed: " + ", ".join(hit))
            return Checked(action, step, OK, "nothing it depends on changed")
        if isinstance(action, Service):
            return self._check_service(action, step, changing)
        raise TypeError(f"unknown action {action!r}")

    def _copy_source(self, action: Copy) -> str:
        return action.source if action.host_source else self.root.host(action.source)

    def _check_copy(self, action: Copy, step: str, changing: set) -> Checked:
        source = self._copy_source(action)
        if action.source in changing and not action.host_source:
            return Checked(action, step, CHANGE, f"{action.source} is made in this run")
        if not os.path.isfile(source):
            if not self.root.is_host:  # made on the server by a command that is not run under --root
                return Checked(action, step, SKIP, f"{action.source} is made on the server")
            return Checked(action, step, CHANGE, f"{action.source} does not exist yet")
        if os.path.getsize(source) <= MAX_DIFF_BYTES:  # small: compared and diffed like a File
            with open(source, "rb") as handle:
                content = handle.read()
            return self._check_file(File(action.path, content, action.mode, action.owner, action.group,
                                         action.sensitive, action.reason), step, shown=action)
        # large (the kept zipapp): compared in blocks, never held in memory whole
        host = self.root.host(action.path)
        summary = f"({os.path.getsize(source)} bytes, copied from {action.source})"
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return Checked(action, step, CHANGE, "new file", summary)
        if not stat.S_ISREG(st.st_mode):
            return Checked(action, step, CHANGE, "not a regular file")
        why = [] if filecmp.cmp(source, host, shallow=False) else ["content"]
        why += self._meta_differences(st, action.mode, action.owner, action.group)
        return Checked(action, step, CHANGE if why else OK, ", ".join(why), summary if "content" in why else "")

    def _meta_differences(self, st: os.stat_result, mode: int, owner: str, group: str) -> List[str]:
        why = []
        if stat.S_IMODE(st.st_mode) != mode:
            why.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}")
        if self.manage_owner and owner_names(st) != (owner, group):
            why.append("owner {}:{} -> {}:{}".format(*owner_names(st), owner, group))
        return why

    def _check_file(self, action: File, step: str, shown: Optional[Action] = None) -> Checked:
        shown = shown or action
        host = self.root.host(action.path)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return Checked(shown, step, CHANGE, "new file", file_diff(action.path, None, action.content,
                                                                       action.sensitive))
        if not stat.S_ISREG(st.st_mode):
            return Checked(shown, step, CHANGE, "not a regular file")
        with open(host, "rb") as handle:
            before = handle.read()
        why = []
        diff = ""
        if before != action.content:
            why.append("content")
            diff = file_diff(action.path, before, action.content, action.sensitive)
        why += self._meta_differences(st, action.mode, action.owner, action.group)
        return Checked(shown, step, CHANGE if why else OK, ", ".join(why), diff)

    def _check_dir(self, action: Directory, step: str) -> Checked:
        host = self.root.host(action.path)
        try:
            st = os.stat(host)
        except FileNotFoundError:
            return Checked(action, step, CHANGE, "new directory")
        if not stat.S_ISDIR(st.st_mode):
            return Checked(action, step, CHANGE, "not a directory")
        why = []
        if stat.S_IMODE(st.st_mode) != action.mode:
            why.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {action.mode:04o}")
        if self.manage_owner and owner_names(st) != (action.owner, action.group):
            why.append("owner {}:{} -> {}:{}".format(*owner_names(st), action.owner, action.group))
        return Checked(action, step, CHANGE if why else OK, ", ".join(why))

    def _package_present(self, spec: str) -> bool:
        name, _, version = spec.partition("=")
        result = self.runner.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name], check=False) \
            if shutil.which("dpkg-query") else \
            self.runner.run(["rpm", "-q", "--queryformat", "installed\t%{VERSION}-%{RELEASE}", name], check=False)
        if result.returncode != 0 or "installed" not in result.stdout:
            return False
        return not version or result.stdout.split("\t")[-1].strip() == version

    def _check_service(self, action: Service, step: str, changing: set) -> Checked:
        active = self.runner.run(["systemctl", "is-active", action.name], check=False).stdout.strip()
        enabled = self.runner.run(["systemctl", "is-enabled", action.name], check=False).stdout.strip()
        why = []
        if action.enabled and enabled != "enabled":
            why.append("enable")
        if not action.enabled and enabled == "enabled":
            why.append("disable")
        if action.running:
            hit = [path for path in action.restart_when_changed if path in changing]
            if active != "active":
                why.append("start")
            elif hit:
                why.append("restart: changed " + ", ".join(hit))
        elif active == "active":
            why.append("stop")
        return Checked(action, step, CHANGE if why else OK, "; ".join(why))

    # -- apply --

    def apply(self, items: List[Checked], before: Callable[[Checked], None] = lambda item: None,
              after: Callable[[Checked], None] = lambda item: None) -> Result:
        """Apply every CHANGE item in order; ``before``/``after`` are called around each item."""
        journal = _Journal(self.root)
        try:
            for item in items:
                before(item)
                if item.status == CHANGE:
                    started = time.monotonic()
                    self._apply_one(item, journal)
                    item.changed = True
                    item.seconds = time.monotonic() - started
                after(item)
        except BaseException as exc:
            restored = journal.roll_back()
            for argv in reversed(journal.undo):  # e.g. reload nginx with the files put back
                self.runner.run(list(argv), check=False)
            done = [item.action.describe() for item in items if item.changed and
                    not isinstance(item.action, FILE_ACTIONS)]
            message = str(exc) if isinstance(exc, ApplyError) else f"{type(exc).__name__}: {exc}"
            lines = [message]
            if restored:
                lines.append(f"put back {restored} file(s) this run had written")
            if done:
                lines.append("already done before the failure: " + "; ".join(done))
            lines.append("nothing else was changed; running the installer again is safe")
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ApplyError("\n".join(lines)) from exc
        return Result(items, journal.backup_dir, tuple(journal.created), dict(journal.saved))

    def _apply_one(self, item: Checked, journal: "_Journal") -> None:
        action = item.action
        if isinstance(action, File):
            self._ensure_parent(action.path, journal)
            journal.save(action.path)
            ids = _ids(action.owner, action.group) if self.manage_owner else None
            write_atomic(self.root.host(action.path), action.content, action.mode, ids)
        elif isinstance(action, Copy):
            source = self._copy_source(action)
            if not os.path.isfile(source):
                raise ApplyError(f"cannot copy {action.source} to {action.path}: it does not exist")
            self._ensure_parent(action.path, journal)
            journal.save(action.path)
            ids = _ids(action.owner, action.group) if self.manage_owner else None
            write_atomic(self.root.host(action.path), None, action.mode, ids, source=source)
        elif isinstance(action, Fetch):
            self._ensure_parent(action.path, journal)
            journal.save(action.path)
            write_atomic(self.root.host(action.path), fetch(action.url), action.mode,
                         (0, 0) if self.manage_owner else None)
        elif isinstance(action, Directory):
            host = self.root.host(action.path)
            if not os.path.isdir(host):
                self._ensure_parent(action.path, journal)
                os.mkdir(host, action.mode)
                journal.created.append(action.path)
            os.chmod(host, action.mode)
            if self.manage_owner:
                os.chown(host, *_ids(action.owner, action.group))
        elif isinstance(action, Symlink):
            self._ensure_parent(action.path, journal)
            journal.save(action.path)
            host = self.root.host(action.path)
            tmp = f"{host}.actvt-tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(action.target, tmp)
            os.replace(tmp, host)
        elif isinstance(action, Absent):
            host = self.root.host(action.path)
            if not os.path.lexists(host):
                return
            journal.save(action.path)
            if os.path.isdir(host) and not os.path.islink(host):
                shutil.rmtree(host)
            else:
                os.unlink(host)
        elif isinstance(action, Packages):
            self._install_packages(action)
        elif isinstance(action, Command):
            result = self.runner.run(action.argv, env=dict(action.env), display=action.display,
                                     timeout=action.timeout, check=not action.may_fail, secrets=action.secrets)
            journal.undo.extend(action.on_rollback)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
                item.why = f"failed (exit {result.returncode}), going on: " + " | ".join(tail)
                self.warnings.append(f"{action.describe()}: {item.why}")
        elif isinstance(action, Service):
            self._apply_service(action, item.why)
        else:
            raise TypeError(f"unknown action {action!r}")

    def _ensure_parent(self, path: str, journal: "_Journal") -> None:
        missing = []
        parent = os.path.dirname(path)
        while parent != "/" and not os.path.isdir(self.root.host(parent)):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            os.mkdir(self.root.host(directory), 0o755)
            journal.created.append(directory)

    def _install_packages(self, action: Packages) -> None:
        if action.manager == "apt":
            # keep configuration files we edited (e.g. /etc/default/vector) without asking
            self.runner.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                             "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                             *action.names], timeout=1800)
        else:
            names = [name.replace("=", "-", 1) for name in action.names]
            self.runner.run([action.manager, "install", "-y", *names], timeout=1800)

    def _apply_service(self, action: Service, why: str) -> None:
        if "enable" in why.split("; "):
            self.runner.run(["systemctl", "enable", action.name])
        if "disable" in why.split("; "):
            self.runner.run(["systemctl", "disable", action.name])
        if "stop" in why.split("; "):
            self.runner.run(["systemctl", "stop", action.name])
            return  # a stopped unit is what was asked: nothing to wait for
        elif "start" in why.split("; "):
            self.runner.run(["systemctl", "start", action.name])
        elif why.startswith("restart") or "; restart" in why:
            self.runner.run(["systemctl", "restart", action.name])
        else:
            return
        self._wait_active(action)

    def _wait_active(self, action: Service) -> None:
        """Wait for the unit to be active; if it is not, say why (journal, diagnosis commands)."""
        from .facts import gather_listeners

        deadline = time.monotonic() + action.wait_seconds
        state, missing = "", list(action.ports)
        while True:
            state = self.runner.run(["systemctl", "is-active", action.name], check=False).stdout.strip()
            if state == "active":
                listening = {listener.port for listener in gather_listeners(self.root)}
                missing = [port for port in action.ports if port not in listening]
            if (state == "active" and not missing) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if state == "active" and not missing:
            return
        if state == "active":
            lines = [f"{action.name} is active but nothing listens on port(s) "
                     f"{', '.join(map(str, missing))} after {action.wait_seconds:.0f} s"]
        else:
            lines = [f"{action.name} is {state or 'not active'} after {action.wait_seconds:.0f} s"]
        for argv in (("journalctl", "-u", action.name, "-n", "20", "--no-pager"),) + tuple(action.diagnose):
            result = self.runner.run(list(argv), check=False)
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            lines.append(f"$ {' '.join(argv)}")
            lines.extend(f"  {line}" for line in output)
        raise ApplyError("\n".join(lines))


def fetch(url: str, timeout: float = 30) -> bytes:
    """GET ``url`` (proxy variables and the system's CA store, as apt and certbot); a clear error
    when it cannot."""
    from .reach import FetchError, get

    try:
        return get(url, os.environ, timeout)
    except FetchError as exc:
        raise ApplyError(f"could not download {url}: {exc}") from None


def write_atomic(host_path: str, content: Optional[bytes], mode: int, ids: Optional[Tuple[int, int]] = None,
                 source: Optional[str] = None) -> None:
    """Write ``content`` (or the file ``source``, in blocks) through a temporary file in the same
    directory that has its final mode and owner before the first byte; fsync; rename over the
    target; fsync the directory."""
    directory = os.path.dirname(host_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(host_path)}.", dir=directory)  # created 0600
    try:
        if ids is not None:
            os.fchown(fd, *ids)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            if source is None:
                handle.write(content)
            else:
                with open(source, "rb") as origin:
                    shutil.copyfileobj(origin, handle, 1 << 20)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, host_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _Journal:
    """What this run replaced (backed up) and created, so that a failure can put it back."""

    def __init__(self, root: Root):
        self.root = root
        self.backup_dir: Optional[str] = None  # server path of this run's backup folder
        self.saved: Dict[str, str] = {}  # server path -> server path of its backup copy
        self.created: List[str] = []
        self.undo: List[Tuple[str, ...]] = []  # commands to run after files are put back

    def _backup_folder(self) -> str:
        if self.backup_dir is None:
            base = self.root.host(paths.BACKUP_DIR)
            os.makedirs(base, 0o700, exist_ok=True)
            os.chmod(os.path.dirname(base), 0o700)
            os.chmod(base, 0o700)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            name, n = stamp, 1
            while os.path.lexists(os.path.join(base, name)):
                n += 1
                name = f"{stamp}-{n}"
            os.mkdir(os.path.join(base, name), 0o700)
            self.backup_dir = f"{paths.BACKUP_DIR}/{name}"
        return self.backup_dir

    def save(self, path: str) -> None:
        """Copy the current file (or link) at ``path`` into the run's backup folder, once."""
        if path in self.saved or path in self.created:
            return
        if paths.BACKUP_DIR == path or paths.BACKUP_DIR.startswith(path.rstrip("/") + "/"):
            raise ApplyError(f"refusing to replace {path}: it holds the backups")
        host = self.root.host(path)
        if not os.path.lexists(host):
            self.created.append(path)
            return
        if os.path.isdir(host) and not os.path.islink(host):
            copy = f"{self._backup_folder()}{path}"
            shutil.copytree(host, self.root.host(copy), symlinks=True, dirs_exist_ok=True)
            self.saved[path] = copy
            return
        copy = f"{self._backup_folder()}{path}"
        host_copy = self.root.host(copy)
        os.makedirs(os.path.dirname(host_copy), 0o700, exist_ok=True)
        shutil.copy2(host, host_copy, follow_symlinks=False)
        _copy_owner(host, host_copy)
        self.saved[path] = copy

    def roll_back(self) -> int:
        count = 0
        for path in reversed(self.created):
            host = self.root.host(path)
            try:
                if os.path.isdir(host) and not os.path.islink(host):
                    os.rmdir(host)
                elif os.path.lexists(host):
                    os.unlink(host)
                count += 1
            except OSError:
                pass
        for path, copy in self.saved.items():
            host, host_copy = self.root.host(path), self.root.host(copy)
            if os.path.isdir(host_copy) and not os.path.islink(host_copy):
                if os.path.lexists(host):
                    shutil.rmtree(host, ignore_errors=True)
                shutil.copytree(host_copy, host, symlinks=True)
            else:
                tmp = f"{host}.actvt-restore"
                shutil.copy2(host_copy, tmp, follow_symlinks=False)
                _copy_owner(host_copy, tmp)
                os.replace(tmp, host)
            count += 1
        return count


def _copy_owner(source: str, target: str) -> None:
    """Give ``target`` the owner of ``source`` (only root can; elsewhere both are the caller's)."""
    if os.geteuid() == 0:
        st = os.lstat(source)
        os.lchown(target, st.st_uid, st.st_gid)
