"""The console (``[n/N]`` headings, ``→`` progress, ✓ ⚠ ✗ results) and the install log.

Colour only on a terminal and never with NO_COLOR. The log file uses the reference's line format
``[YYYY-mm-dd HH:MM:SS] [LEVEL] message``; nothing secret is ever passed to either.
"""

import os
import sys
import time
from typing import IO, Mapping, Optional

from . import paths
from .paths import Root

_COLOURS = {"ok": "32", "warn": "33", "fail": "31", "head": "1;36", "dim": "2"}


def use_colour(stream: IO[str], environ: Mapping[str, str]) -> bool:
    if "NO_COLOR" in environ or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Log:
    """Appends to ``/var/log/actvt-install.log`` (0644), else ``/tmp/actvt-install.log``.

    Opened on first use, so a dry run or a refused input writes nothing.
    """

    def __init__(self, root: Root, enabled: bool = True):
        self.root = root
        self.enabled = enabled
        self.path: Optional[str] = None
        self._handle: Optional[IO[str]] = None

    def _open(self) -> Optional[IO[str]]:
        if self._handle is None and self.enabled:
            for path in (paths.LOG_FILE, paths.FALLBACK_LOG_FILE):
                host = self.root.host(path)
                try:
                    os.makedirs(os.path.dirname(host), exist_ok=True)
                    fd = os.open(host, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    os.fchmod(fd, 0o644)
                    self._handle = os.fdopen(fd, "a", encoding="utf-8")
                    self.path = path
                    break
                except OSError:
                    continue
            else:
                self.enabled = False
        return self._handle

    def __call__(self, level: str, message: str) -> None:
        handle = self._open()
        if handle is not None and self.enabled:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for line in message.splitlines() or [""]:
                handle.write(f"[{stamp}] [{level}] {line}\n")
            handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


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
                self.stream.write(text + "\n")
            except UnicodeEncodeError:
                self.stream.write(text.encode("ascii", "replace").decode() + "\n")
            self.stream.flush()

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
