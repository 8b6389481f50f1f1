"""Command line: ``install`` (the default), ``status``, ``doctor``, ``client``, ``ca``, ``uninstall``.

Parsing and dispatch only; each command is its module in this folder, imported when
one runs, so that ``--version``, ``--help`` and a refused input start fast (they need neither
cryptography nor the planners). Human output goes to stdout, or to stderr with ``--json`` (stdout
then carries only the JSON summary).
"""

import argparse
import contextlib
import os
import signal
import sys
import traceback
from typing import List, Optional

from installer import __version__
from installer.core import config as configuration
from installer.core.errors import EXIT_FAIL, EXIT_USAGE, ActvtError, Refused, Stopped, UsageError
from installer.core.paths import Root
from installer.ui.console import Console, Log, use_colour

COMMANDS = ("install", "status", "doctor", "client", "ca", "uninstall")


# --- arguments ------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--dry-run", action="store_true", default=default(False),
                        help="show the plan, with a diff of every file it would write, and change nothing")
    parser.add_argument("--root", metavar="DIR", default=default("/"),
                        help="treat DIR as the server's filesystem root; commands and services are listed, not run")
    parser.add_argument("--yes", "-y", action="store_true", default=default(False),
                        help="never prompt: take the variables' values and the defaults (as ACTVT_NON_INTERACTIVE=yes)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print a machine-readable summary on stdout (progress goes to stderr)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install.pyz",
        description="Set up this server to stream metrics to the Actvt app: Vector over a TLS WebSocket "
                    "(wss://DOMAIN:4096, or wss://DOMAIN/actvt behind nginx), optionally with mutual TLS. "
                    "Configured by ACTVT_* environment variables; `install` is the default command.",
        epilog=configuration.help_text() + "\n\nexamples:\n"
               "  curl -fsSL https://…/install.pyz | sudo ACTVT_DOMAIN=monitor.example.com "
               "ACTVT_EMAIL=you@example.com python3 -\n"
               "  ACTVT_DOMAIN=monitor.example.com ACTVT_EMAIL=you@example.com python3 install.pyz --dry-run "
               "--root /tmp/demo\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"actvt-installer {__version__}")
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (
        ("install", "install or update (default): Vector, TLS certificate, mTLS, nginx, firewall, service"),
        ("status", "show what is installed and whether a re-run would change anything"),
        ("doctor", "check the server as the Actvt app would use it; each failed check names its fix"),
        ("client", "manage mTLS client certificates (issue, renew, list, show, revoke)"),
        ("ca", "a CA kept off the servers, for a fleet (init, rotate, finish, show)"),
        ("uninstall", "remove what the installer wrote"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        _common(sub, suppress=True)
        if name in ("client", "ca"):
            sub.add_argument("client_args", nargs=argparse.REMAINDER, help=f"{name} sub-command and its arguments")
        if name == "install":
            sub.add_argument("--staged-file", action="append", default=[], metavar="PATH=STAGED",
                             help="with --dry-run: plan as if the server's file PATH held the content of STAGED "
                                  "(Ansible's check mode stages the files it would copy: contrib/ansible)")
        if name == "uninstall":
            sub.add_argument("--purge", action="store_true",
                             help="also remove the mTLS CA, client certificates and the Let's Encrypt certificate")
            sub.add_argument("--remove-vector", action="store_true", help="also remove the Vector package")
    return parser


def parse_args(argv: List[str]) -> argparse.Namespace:
    if not any(token in COMMANDS for token in argv) and not {"-h", "--help", "--version"} & set(argv):
        argv = ["install"] + argv
    args = make_parser().parse_args(argv)
    if args.command is None:
        args.command = "install"
    return args


def _command(name: str):
    """The handler of a command, imported on use."""
    if name == "client":
        from installer.commands.client import cmd_client

        return cmd_client
    if name == "ca":
        from installer.commands.ca import cmd_ca

        return cmd_ca
    if name == "status":
        from installer.commands.status import cmd_status

        return cmd_status
    if name == "doctor":
        sys.dont_write_bytecode = True  # doctor writes nothing, not even Python's cache of its own modules
        from installer.commands.doctor import cmd_doctor

        return cmd_doctor
    if name == "uninstall":
        from installer.commands.uninstall import cmd_uninstall

        return cmd_uninstall
    from installer.commands.install import cmd_install

    return cmd_install


def main(argv: Optional[List[str]] = None, environ=None, stdout=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    os.umask(os.umask(0o022) | 0o022)  # as the launcher: never looser than 022 (a stricter one is kept)
    stdout = stdout or sys.stdout
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    human = sys.stderr if args.json else stdout
    root = Root(args.root)
    log = Log(root, enabled=args.command in ("install", "uninstall"))
    out = Console(human, log, use_colour(human, environ))
    from installer.engine import journal  # here, not above: --version and --help need none of it

    journal.forget_commits()
    with stop_signals() as stops:  # also around the lines that say how it ended
        try:
            try:
                return _command(args.command)(args, environ, out, stdout)
            finally:
                stops.ignore()  # the command has ended: what follows only says how
        except UsageError as exc:
            log.discard()  # bad input: not one byte written
            for line in str(exc).splitlines():
                sys.stderr.write(f"error: {line}\n")
            return EXIT_USAGE
        except Refused as exc:
            log.discard()  # the log belongs to the run that holds the lock
            out.fail(str(exc))
            return exc.exit_status
        except ActvtError as exc:
            _start_log(log, out)
            out.fail(str(exc))
            return exc.exit_status
        except KeyboardInterrupt as exc:  # before the change or after its commit (the engine reports one in between)
            signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
            _start_log(log, out)
            out.fail(stopped_message(signal.Signals(signum).name, journal.last_commit()))
            return 128 + signum
        except Exception as exc:  # a bug: the traceback goes to the log, one line to the console
            _start_log(log, out)
            log("ERROR", traceback.format_exc())
            out.fail(f"unexpected error: {type(exc).__name__}: {exc}"
                     + (f" (details in {log.path})" if log.path else ""))
            return EXIT_FAIL
        finally:
            log.close()


def stopped_message(name: str, commit) -> str:
    """What a stop outside the engine's apply found: nothing changed yet (``commit`` None), or the
    change committed (``journal.last_commit()``, engine/journal.py); a stop in between is rolled back
    and reported by the engine."""
    if commit is None:
        return f"stopped by {name} before anything was changed"
    done = (f"its {commit.changed} change(s) are in place" if commit.changed else "nothing needed to change") \
        + (f" (previous versions in {commit.backup_dir})" if commit.backup_dir else "")
    return f"stopped by {name} after the run was complete: {done}; only its report was cut short"


def _start_log(log: Log, out: Console) -> None:
    problem = log.start()
    if problem:
        out.warn(problem)


@contextlib.contextmanager
def stop_signals():
    """SIGINT, SIGTERM and SIGHUP raise ``Stopped`` while a command runs: cloud-init, systemd and
    ``timeout`` stop a run with SIGTERM, a dropped SSH session with SIGHUP, and each must roll back as
    Ctrl-C does. Only the first one stops the run: a second one (systemd's stop and then a Ctrl-C) must
    not cut short the rollback or the report of the first, and once the command has ended a stop has
    nothing left to stop. The previous handlers come back afterwards."""
    stops = _Stops()

    def stop(signum, frame):
        if stops.ignored:
            return
        stops.ignore()
        raise Stopped(signum)

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, stop)
    except ValueError:  # not the main thread (an embedding caller): keep their handlers
        pass
    try:
        yield stops
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Stops:
    """Whether a stop signal still stops the command: not after the first one, nor once it has ended."""

    ignored = False

    def ignore(self) -> None:
        self.ignored = True


if __name__ == "__main__":
    sys.exit(main())
