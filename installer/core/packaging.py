"""The host's package managers' locks: which files each kind of command takes, and how to tell who
holds them (values only; ``engine/pkglock.py`` waits for them).

On a cloud image's first boot unattended-upgrades, apt-daily or cloud-init's own package step often
holds these when the installer starts. apt and dpkg then fail at once, dnf and yum wait without end;
the engine waits for every lock a command takes, with one bound (``ACTVT_PACKAGE_LOCK_TIMEOUT``), and
says who holds it. apt's own ``DPkg::Lock::Timeout`` also covers the moment between that wait and apt
taking the dpkg lock; it does not cover the lists and archives locks, nor dpkg run alone.
"""

import dataclasses
from typing import Tuple

FCNTL, PIDFILE = "fcntl", "pidfile"
TIMEOUT_VARIABLE = "ACTVT_PACKAGE_LOCK_TIMEOUT"
#: Its default, in seconds: long enough for unattended-upgrades' first run on an image a few months
#: old, short enough that a stuck lock is reported while someone still watches the boot.
DEFAULT_TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class Lock:
    """A lock file: ``fcntl`` (a POSIX record lock, as apt, dpkg and rpm take it: the kernel names the
    holder's pid) or ``pidfile`` (dnf and yum write their pid into it; held while that process lives)."""

    path: str
    kind: str = FCNTL


DPKG_FRONTEND = Lock("/var/lib/dpkg/lock-frontend")
DPKG = (DPKG_FRONTEND, Lock("/var/lib/dpkg/lock"))
APT_LISTS = (Lock("/var/lib/apt/lists/lock"),)  # apt-get update
APT_INSTALL = DPKG + (Lock("/var/cache/apt/archives/lock"),)  # apt-get install/remove: dpkg's and the downloads'
RPM = (Lock("/var/lib/rpm/.rpm.lock"),  # rpm's transaction lock (under dnf4, dnf5 and yum alike)
       Lock("/var/lib/dnf/rpmdb_lock.pid", PIDFILE), Lock("/var/cache/dnf/metadata_lock.pid", PIDFILE),
       Lock("/var/cache/dnf/download_lock.pid", PIDFILE),  # dnf4 (its dnf/lock.py)
       Lock("/var/run/yum.pid", PIDFILE))  # yum 3 (RHEL 7, Amazon Linux 2)


#: What every command the installer runs gets in its environment, over the caller's (``engine/runner.py``).
#: Those commands have no terminal (stdin is /dev/null, output is captured), and a package the installer
#: installs must not restart services of others:
#: - debconf and apt-listchanges ask nothing (a question would wait for an answer nobody can give);
#: - needrestart, which Ubuntu runs after every apt run (``DPkg::Post-Invoke``: ``apt-pinvoke``), is
#:   suspended for our runs: Ubuntu 24.04's hook restarts every service that maps a replaced library
#:   (unattended-upgrades' earlier upgrades, too) without asking, with a terminal or without, and
#:   DEBIAN_FRONTEND does not stop it. NEEDRESTART_MODE=l (list only) covers a needrestart started
#:   elsewhere than through apt-pinvoke. The user's own ``needrestart`` later shows what is pending.
UNATTENDED_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
    "NEEDRESTART_SUSPEND": "1",
    "NEEDRESTART_MODE": "l",
}


def for_install(manager: str) -> Tuple[Lock, ...]:
    """The locks an install or removal by ``manager`` (apt, dnf, yum) takes."""
    return APT_INSTALL if manager == "apt" else RPM


def apt_lock_option(seconds: int) -> Tuple[str, ...]:
    """apt's own wait for the dpkg lock, so that a lock taken again right after the engine's wait
    is waited for too (apt >= 1.9.11; older apt ignores an unknown option)."""
    return ("-o", f"DPkg::Lock::Timeout={int(seconds)}")
