"""What a run replaced (backed up first) and created, so that a failure can put it back, and whether
its change is committed.

Backups go to ``/var/lib/actvt/backups/<UTC time>/`` (0700, like the folders above it), once per file
and run, with the file's mode, owner and times; they are never removed by the installer.

A run is committed when every action and its record (install's manifest) are written: before that, a
failure or a stop signal puts everything back (the old state); after it, nothing is put back (the new
state). ``last_commit`` tells ``commands/cli.py`` which of the two a stop found, for its message.
"""

import os
import stat
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from installer.core import paths
from installer.core.errors import ApplyError
from installer.core.fs import Tree


def backup_folder(tree: Tree) -> str:
    """A new folder ``/var/lib/actvt/backups/<UTC time>[-n]`` (0700, like the folders above it)."""
    tree.make_dir(paths.STATE_DIR, 0o700, parents=0o755)
    tree.make_dir(paths.BACKUP_DIR, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name, n = stamp, 1
    while tree.exists(f"{paths.BACKUP_DIR}/{name}"):
        n += 1
        name = f"{stamp}-{n}"
    tree.make_dir(f"{paths.BACKUP_DIR}/{name}", 0o700)
    return f"{paths.BACKUP_DIR}/{name}"


class Commit(NamedTuple):
    """A committed change: how many actions changed something, and where the replaced files are."""

    changed: int
    backup_dir: Optional[str]


# One process runs one command, and the stop-signal handlers are the process's too.
_commits: List[Commit] = []


def last_commit() -> Optional[Commit]:
    """The change this process committed last (None: none yet, or since ``forget_commits``)."""
    return _commits[-1] if _commits else None


def forget_commits() -> None:
    """A command starts: what an earlier one in this process committed is not its own."""
    _commits.clear()


class Journal:
    """What this run replaced (backed up) and created, so that a failure can put it back."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self.backup_dir: Optional[str] = None  # server path of this run's backup folder
        self.saved: Dict[str, str] = {}  # server path -> server path of its backup copy
        self.created: List[str] = []
        self.undo: List[Tuple[str, ...]] = []  # commands to run after files are put back

    def save(self, path: str) -> None:
        """Copy the current file, link or folder at ``path`` into the run's backup folder, once."""
        if path in self.saved or path in self.created:
            return
        if paths.BACKUP_DIR == path or paths.BACKUP_DIR.startswith(path.rstrip("/") + "/"):
            raise ApplyError(f"refusing to replace {path}: it holds the backups")
        if self.tree.lstat(path) is None:
            self.created.append(path)
            return
        if self.backup_dir is None:
            self.backup_dir = backup_folder(self.tree)
        copy = f"{self.backup_dir}{path}"
        self.tree.copy_entry(path, copy, keep_owner=os.geteuid() == 0)
        self.saved[path] = copy

    def commit(self, changed: int) -> None:
        """The point of no return: from here on the run's change stays (called with stops held)."""
        _commits.append(Commit(changed, self.backup_dir))

    def roll_back(self) -> int:
        count = 0
        for path in reversed(self.created):
            try:
                st = self.tree.lstat(path)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    self.tree.rmdir(path)
                elif st is not None:
                    self.tree.remove(path)
                count += 1
            except OSError:
                pass
        for path, copy in self.saved.items():
            if self.tree.lstat(path) is not None:
                self.tree.remove(path)
            self.tree.copy_entry(copy, path, keep_owner=os.geteuid() == 0)
            count += 1
        return count
