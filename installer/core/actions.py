"""The typed actions a plan is made of.

Each action names its target as the absolute path *on the server* (``/etc/vector/vector.toml``);
the executor maps it under ``--root``. Actions are values: the planner makes them from facts and
configuration without touching the host, the executor checks them against the host and applies them.
``reason`` says why the action is in the plan; it is shown by ``--dry-run``.
"""

import dataclasses
from typing import Optional, Tuple, Union

from installer.core.packaging import Lock


@dataclasses.dataclass(frozen=True)
class File:
    """A regular file with exactly this content, mode and owner."""

    path: str
    content: bytes
    mode: Optional[int] = 0o644  # None: the mode the file has (0644 for a new one)
    owner: str = "root"
    group: str = "root"
    sensitive: bool = False  # a private key or similar: never diffed, never logged
    reason: str = ""
    # a file of someone else's that a concern edits line by line (e.g. /etc/iptables/rules.v4): the
    # manifest does not claim it; the concern's own uninstall takes its lines out again
    shared: bool = False
    # the lines of ``content`` that are the installer's own when the others are kept from the file that
    # was there (None: every line is the installer's). Only these are ever shown (engine/diff.py)
    own_lines: Optional[Tuple[str, ...]] = None
    # an existing file whose mode gives no more than ``mode`` keeps that mode and its group (a 0600
    # file of secrets stays 0600); the owner is always ``owner``. See wanted_mode_group
    keep_stricter: bool = False

    def describe(self) -> str:
        mode = "mode kept" if self.mode is None else f"{self.mode:04o}"
        stricter = ", or the stricter mode it has" if self.keep_stricter else ""
        return f"file {self.path} ({mode} {self.owner}:{self.group}{stricter})"


@dataclasses.dataclass(frozen=True)
class Copy:
    """A file whose content is another file's, read when the plan is checked or applied (e.g. the
    certificate certbot makes, copied for Vector). Its source may be made earlier in the same run
    by a ``Command`` that lists it in ``creates``."""

    path: str
    source: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    sensitive: bool = False
    reason: str = ""
    host_source: bool = False  # ``source`` is a path on this machine (not mapped under --root)

    def describe(self) -> str:
        return f"copy {self.source} to {self.path} ({self.mode:04o} {self.owner}:{self.group})"


@dataclasses.dataclass(frozen=True)
class Keyring:
    """OpenPGP public keys downloaded from ``urls`` into one keyring file, kept only when each key's
    fingerprint is one of ``fingerprints``: a key of any other fingerprint stops the run before the
    file is written (``hint`` says how to declare it). A keyring already there is checked against the
    fingerprints, not downloaded again (its name says what it was made from)."""

    path: str
    urls: Tuple[str, ...]
    fingerprints: Tuple[str, ...]
    armored: bool = False  # dnf and yum read armored keys; apt's signed-by a binary keyring
    mode: int = 0o644
    reason: str = ""
    hint: str = ""

    def describe(self) -> str:
        return (f"keyring {self.path} ({len(self.urls)} key file(s), accepted only with one of "
                f"{len(self.fingerprints)} pinned fingerprint(s))")


@dataclasses.dataclass(frozen=True)
class Directory:
    path: str
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"
    reason: str = ""

    def describe(self) -> str:
        return f"directory {self.path} ({self.mode:04o} {self.owner}:{self.group})"


@dataclasses.dataclass(frozen=True)
class Symlink:
    path: str
    target: str
    reason: str = ""

    def describe(self) -> str:
        return f"symlink {self.path} -> {self.target}"


@dataclasses.dataclass(frozen=True)
class Absent:
    """No file, directory or link at ``path`` (what uninstall and clean-ups ask for).
    ``if_empty``: a directory is removed only when nothing is left in it."""

    path: str
    reason: str = ""
    if_empty: bool = False

    def describe(self) -> str:
        return f"remove {self.path}" + (" (if empty)" if self.if_empty else "")


@dataclasses.dataclass(frozen=True)
class Packages:
    """System packages installed through the host's package manager."""

    manager: str  # apt, dnf or yum
    names: Tuple[str, ...]
    reason: str = ""

    def describe(self) -> str:
        return f"install packages ({self.manager}): {' '.join(self.names)}"


@dataclasses.dataclass(frozen=True)
class Command:
    """A command run on the host.

    ``when_changed``: run only when one of these paths changes in this run (e.g. ``nginx -t`` and a
    reload after the site file changed). Empty means the planner already decided it must run.
    ``display`` replaces the argv in output when an argument is secret.
    ``creates``: paths the command makes or replaces (so later actions reading them know they change).
    ``timeout``: seconds before the command is stopped and the run fails.
    ``locks``: the package-manager locks it takes (``core/packaging.py``): the engine waits, within
    ``ACTVT_PACKAGE_LOCK_TIMEOUT``, until no other process holds them, and runs it again when it
    failed while another process held one.
    """

    argv: Tuple[str, ...]
    reason: str = ""
    when_changed: Tuple[str, ...] = ()
    display: Optional[str] = None
    env: Tuple[Tuple[str, str], ...] = ()
    creates: Tuple[str, ...] = ()
    timeout: float = 600
    may_fail: bool = False  # a failure is reported as a warning and the run goes on
    on_rollback: Tuple[Tuple[str, ...], ...] = ()  # run (best effort) when a later action fails and files are put back
    secrets: Tuple[str, ...] = ()  # strings masked in the command's output before it is logged or shown
    locks: Tuple[Lock, ...] = ()
    # files of someone else's the command rewrites (certbot's renewal configuration): backed up by the
    # journal before it runs and put back when a later action fails
    saves: Tuple[str, ...] = ()

    def describe(self) -> str:
        return "run " + (self.display or " ".join(self.argv))


@dataclasses.dataclass(frozen=True)
class Service:
    """A systemd unit that should be enabled and running.

    It is started when not active, and restarted only when one of ``restart_when_changed`` changes in
    this run: a re-run with nothing to change leaves the process alone.
    """

    name: str
    enabled: bool = True
    running: bool = True
    restart_when_changed: Tuple[str, ...] = ()
    reason: str = ""
    wait_seconds: float = 30  # after a start or restart: how long to wait for "active" (and the ports)
    ports: Tuple[int, ...] = ()  # TCP ports the unit must listen on once started
    diagnose: Tuple[Tuple[str, ...], ...] = ()  # commands whose output explains a failed start

    def describe(self) -> str:
        want = "enabled" if self.enabled else "disabled"
        state = "running" if self.running else "stopped"
        return f"service {self.name} ({want}, {state})"


def wanted_mode_group(action, mode_now: int, group_now: str) -> Tuple[Optional[int], str]:
    """The mode and group an action wants for a path that has ``mode_now`` and ``group_now``: the
    action's own, or (``File.keep_stricter``) the ones it has when that mode gives no more than the
    action's. The engine (check and apply) and ``actvt doctor`` ask this one function."""
    mode, group = getattr(action, "mode", None), getattr(action, "group", "root")
    if getattr(action, "keep_stricter", False) and mode is not None and not mode_now & ~mode:
        return mode_now, group_now
    return mode, group


Action = Union[File, Copy, Keyring, Directory, Symlink, Absent, Packages, Command, Service]

#: Actions that only touch files, and so can act inside ``--root``.
FILE_ACTIONS = (File, Copy, Keyring, Directory, Symlink, Absent)


@dataclasses.dataclass(frozen=True)
class Step:
    """A heading of the console output (``[n/N] title``) and the actions under it."""

    title: str
    actions: Tuple[Action, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    steps: Tuple[Step, ...]

    @property
    def actions(self) -> Tuple[Action, ...]:
        return tuple(action for step in self.steps for action in step.actions)
