"""Running host commands: output captured and masked, a bounded time, and a clean stop.

Each command runs in its own process group; when a stop signal (SIGINT, SIGTERM, SIGHUP) reaches the
installer while a command runs, the command and what it started (apt and its dpkg) get SIGTERM and a
moment to end, then SIGKILL, before the run rolls back. Every command runs without a terminal and
with ``packaging.UNATTENDED_ENV`` over the caller's environment: no debconf question, no needrestart.
"""

import os
import signal
import subprocess
from typing import Callable, Mapping, Optional, Sequence

from installer.core import packaging
from installer.core.errors import ApplyError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_GRACE_SECONDS = 10  # a stopped run gives the command it was running this long to end after SIGTERM


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
        full_env.update(packaging.UNATTENDED_ENV)  # over the caller's: nothing asks, nothing restarts unasked
        full_env.update(env or {})
        try:
            # its own process group: a stop reaches the command and what it started (apt and its dpkg)
            child = subprocess.Popen(list(argv), env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        except FileNotFoundError:
            raise ApplyError(f"{argv[0]} is not installed (needed for: {shown})") from None
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end(child)
            raise ApplyError(f"timed out after {timeout:.0f} s: {shown}") from None
        except BaseException:  # a stop signal: let the command end cleanly (apt, dpkg) before rolling back
            with held_signals():
                _end(child)
            raise
        result = subprocess.CompletedProcess(list(argv), child.returncode, stdout, stderr)
        for secret in secrets:
            if secret:
                result.stdout = result.stdout.replace(secret, "***")
                result.stderr = result.stderr.replace(secret, "***")
        for stream in (result.stdout, result.stderr):
            for line in stream.splitlines()[-200:]:
                self.log("DEBUG", f"  {line}")
        if check and result.returncode != 0:
            raise failure(shown, result)
        return result


def failure(shown: str, result: subprocess.CompletedProcess) -> ApplyError:
    """The error of a failed command: its exit status and the last lines it printed."""
    tail = (result.stderr or result.stdout or "").strip().splitlines()[-5:]
    return ApplyError(f"{shown} failed (exit {result.returncode}): " + " | ".join(tail))


def _end(child: subprocess.Popen) -> None:
    """SIGTERM to the command's process group, a bounded wait, then SIGKILL."""
    def signal_group(signum):
        try:
            os.killpg(child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    if child.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            child.communicate(timeout=CHILD_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL)
            child.communicate()


def hold_stops():
    """Stop signals wait from now on (the installer is one thread); returns the mask to give back to
    ``release_stops``, which delivers a stop that came meanwhile."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stops(previous) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class held_signals:
    """Stop signals wait while the block runs (a rollback must finish), and are then dropped: the
    run is already stopping."""

    def __enter__(self):
        self.previous = hold_stops()
        return self

    def __exit__(self, *exc):
        pending = signal.sigpending() & set(STOP_SIGNALS)
        while pending:
            signal.sigtimedwait(list(pending), 0)
            pending = signal.sigpending() & set(STOP_SIGNALS)
        release_stops(self.previous)
        return False
