"""One family of errors with messages meant for the user.

Tracebacks go to the log only; the console shows ``str(error)``.
"""


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


class LockedError(ActvtError):
    """Another installer run holds the lock."""


class ApplyError(ActvtError):
    """Applying the plan failed part-way; the message says what changed and that a re-run is safe."""
