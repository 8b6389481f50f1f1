"""The console (``[n/N]`` headings, ``→`` progress, ✓ ⚠ ✗ results) and the install log.

Colour only on a terminal and never with NO_COLOR. The log file uses the bash installer's line format
``[YYYY-mm-dd HH:MM:SS] [LEVEL] message``; nothing secret is ever passed to either.
"""

import errno
import os
import stat
import sys
import time
from typing import IO, List, Mapping, Optional

from installer.core import paths
from installer.core.fs import Tree, UnsafePath, trusted_uids
from installer.core.paths import Root

_COLOURS = {"ok": "32", "warn": "33", "fail": "31", "head": "1;36", "dim": "2"}


def use_colour(stream: IO[str], environ: Mapping[str, str]) -> bool:
    if "NO_COLOR" in environ or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Log:
    """``/var/log/actvt-install.log``: lines are kept in memory until ``start``, so that a run that is
    refused (bad input, the lock held by another run, not root) or a dry run writes nothing at all.

    ``start`` opens the file without following a link (``O_NOFOLLOW``), makes it 0644 only when it
    creates it (an existing file's mode is left alone), and uses it only when it is a regular file
    owned by root in a folder only root can change; otherwise the run goes on without a file log and
    ``start`` says why, once. There is no fallback into a world-writable folder such as ``/tmp``.
    """

    def __init__(self, root: Root, enabled: bool = True):
        self.root = root
        self.enabled = enabled
        self.path: Optional[str] = None
        self._handle: Optional[IO[str]] = None
        self._pending: List[str] = []
        self._started = False

    def start(self) -> Optional[str]:
        """Open the file and write what was logged so far. Returns why it cannot be used, or None."""
        if self._started or not self.enabled:
            return None
        self._started = True
        pending, self._pending = self._pending, []
        try:
            self._handle = _open_log(self.root)
        except (OSError, UnsafePath) as exc:
            self.enabled = False
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return f"cannot write the log {paths.LOG_FILE} ({reason}); going on without a file log"
        self.path = paths.LOG_FILE
        self._handle.write("".join(pending))
        self._handle.flush()
        return None

    def discard(self) -> None:
        """Forget what was kept, and log nothing more (a refused run)."""
        self._pending.clear()
        self.enabled = False

    def __call__(self, level: str, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = "".join(f"[{stamp}] [{level}] {line}\n" for line in message.splitlines() or [""])
        if self._handle is not None:
            self._handle.write(text)
            self._handle.flush()
        elif not self._started:
            self._pending.append(text)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _open_log(root: Root) -> IO[str]:
    tree = Tree(root)
    folder, name = tree.parent(paths.LOG_FILE, create=0o755, writable=True)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder)
            os.fchmod(fd, 0o644)  # made now: 0644 whatever the umask
        except FileExistsError:
            try:
                fd = os.open(name, flags | os.O_NONBLOCK, dir_fd=folder)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENXIO):
                    raise UnsafePath(f"{paths.LOG_FILE} is a symbolic link or a FIFO") from None
                raise
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid not in trusted_uids():
                os.close(fd)
                raise UnsafePath(f"{paths.LOG_FILE} is not a regular file owned by root")
            os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8")
    finally:
        os.close(folder)


class Console:
    def __init__(self, stream: IO[str], log: Log, colour: bool = False, quiet: bool = False):
        self.stream = stream
        self.log = log
        self.colour = colour
        self.quiet = quiet

    def _paint(self, kind: str, text: str) -> str:
        return f"\033[{_COLOURS[kind]}m{text}\033[0m" if self.colour else text

    def _write(self, text: str) -> None:
        if not self.quiet:
            try:
                try:
                    self.stream.write(text + "\n")
                except UnicodeEncodeError:
                    self.stream.write(text.encode("ascii", "replace").decode() + "\n")
                self.stream.flush()
            except OSError:  # the terminal went away (SIGHUP of an SSH session): the run goes on
                pass

    def heading(self, number: int, total: int, title: str) -> None:
        self.log("INFO", f"[{number}/{total}] {title}")
        self._write(self._paint("head", f"[{number}/{total}] {title}"))

    def progress(self, text: str) -> None:
        self.log("INFO", text)
        self._write(f"  → {text}")

    def ok(self, text: str) -> None:
        self.log("INFO", text)
        self._write("  " + self._paint("ok", "✓") + f" {text}")

    def warn(self, text: str) -> None:
        self.log("WARN", text)
        self._write("  " + self._paint("warn", "⚠") + f" {text}")

    def fail(self, text: str) -> None:
        self.log("ERROR", text)
        self._write("  " + self._paint("fail", "✗") + f" {text}")

    def plain(self, text: str = "", kind: Optional[str] = None) -> None:
        self._write(self._paint(kind, text) if kind else text)


def stderr_console(log: Log, environ: Mapping[str, str], quiet: bool = False) -> Console:
    return Console(sys.stderr, log, use_colour(sys.stderr, environ), quiet)
