"""Waiting for another package manager: who holds a lock (``core/packaging.py``), and a bounded wait.

The holder of an fcntl lock is asked of the kernel (``F_GETLK``: the pid of a process holding a
conflicting record lock, in our pid namespace), as apt does to name it in its own message; a dnf or
yum pid file names its writer, held while that process lives. Nothing here takes a lock.
"""

import dataclasses
import fcntl
import os
import struct
import time
from typing import Callable, Iterable, List, Optional

from installer.core.errors import ApplyError
from installer.core.packaging import FCNTL, TIMEOUT_VARIABLE, Lock

_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len (off_t: 64 bits), l_pid
_FLOCK_SIZE = struct.calcsize(_FLOCK) + (-struct.calcsize(_FLOCK) % 8)
POLL_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Holder:
    path: str
    pid: int  # 0: a process we cannot name (another pid namespace, an open-file-description lock)
    name: str = ""

    def describe(self) -> str:
        who = f"{self.name or 'a process'} (pid {self.pid})" if self.pid > 0 else "another process"
        return f"{who} holds {self.path}"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _fcntl_holder(path: str) -> Optional[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None  # no lock file: nobody holds it
    try:
        asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(_FLOCK_SIZE, b"\0")
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, asked)
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _, _, _, pid = struct.unpack(_FLOCK, answer[:struct.calcsize(_FLOCK)])
    return None if kind == fcntl.F_UNLCK else max(pid, 0)


def _pidfile_holder(path: str) -> Optional[int]:
    try:
        with open(path, "rb") as handle:
            pid = int(handle.read(20).strip() or b"0")
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid() or not os.path.exists(f"/proc/{pid}"):
        return None  # left by a process that is gone (dnf and yum take it over then too)
    return pid


def holder(lock: Lock, host_path: Optional[str] = None) -> Optional[Holder]:
    """Who holds ``lock`` now (None: nobody). ``host_path``: where the lock file is on this machine."""
    path = host_path or lock.path
    pid = _fcntl_holder(path) if lock.kind == FCNTL else _pidfile_holder(path)
    return None if pid is None else Holder(lock.path, pid, _comm(pid) if pid else "")


def first_holder(locks: Iterable[Lock], host: Callable[[str], str] = lambda path: path) -> Optional[Holder]:
    for lock in locks:
        found = holder(lock, host(lock.path))
        if found is not None:
            return found
    return None


class Waiter:
    """Waits, within one bound per command, until no other process holds the locks it takes; says so
    in one line when it has to wait, and fails with the holder's name after the bound."""

    def __init__(self, timeout: float, notify: Callable[[str], None], log: Callable[[str, str], None],
                 host: Callable[[str], str] = lambda path: path, clock=time.monotonic, sleep=time.sleep):
        self.timeout, self.notify, self.log, self.host = timeout, notify, log, host
        self.clock, self.sleep = clock, sleep

    def deadline(self) -> float:
        return self.clock() + self.timeout

    def wait(self, locks, deadline: float, what: str) -> None:
        found = first_holder(locks, self.host)
        if found is None:
            return
        started = self.clock()
        self.notify(f"another package manager is running: {found.describe()}; waiting for it, at most "
                    f"{self.timeout:.0f} s ({TIMEOUT_VARIABLE})")
        seen: List[Holder] = [found]
        while found is not None:
            if self.clock() >= deadline:
                raise ApplyError(f"another package manager still holds its lock after {self.timeout:.0f} s: "
                                 f"{found.describe()} (not run: {what}). Let it finish (or give it more time "
                                 f"with {TIMEOUT_VARIABLE}) and run the installer again")
            self.sleep(POLL_SECONDS)
            found = first_holder(locks, self.host)
            if found is not None and found != seen[-1]:
                seen.append(found)
                self.log("INFO", f"package lock: now {found.describe()}")
        self.log("INFO", f"package lock: free after {self.clock() - started:.1f} s (held by "
                         + "; then ".join(item.describe() for item in seen) + ")")
