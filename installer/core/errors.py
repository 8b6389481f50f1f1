"""One family of errors with messages meant for the user, and the one set of exit statuses.

Tracebacks go to the log only; the console shows ``str(error)``.
"""

#: 0 done (or nothing to do), 1 failed (or refused), 2 bad input; a stop signal gives 128 + its number
#: (``Interrupted``); ``actvt status`` gives NOT_INSTALLED when there is no installation.
EXIT_OK, EXIT_FAIL, EXIT_USAGE, NOT_INSTALLED = 0, 1, 2, 3


class ActvtError(Exception):
    """A failure the user can act on. ``exit_status`` is the process exit code."""

    exit_status = 1


class UsageError(ActvtError):
    """Bad input: a variable or argument with a value that is not allowed. Nothing was changed."""

    exit_status = 2


class ConfigError(UsageError):
    """One or more ACTVT_* variables are invalid; ``problems`` holds one line each."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Refused(ActvtError):
    """The run is refused before it starts (not root, another run holds the lock): nothing is logged,
    nothing was changed."""


class LockedError(Refused):
    """Another installer run holds the lock."""


class ApplyError(ActvtError):
    """Applying the plan failed part-way; the message says what changed and that a re-run is safe."""


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived; raised by the handler ``cli`` installs, so that
    a run stopped by cloud-init, systemd or ``timeout`` rolls back as one stopped with Ctrl-C does."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Interrupted(ActvtError):
    """A signal stopped applying the plan; the files were put back. Exit status 128 + the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + int(signum)
