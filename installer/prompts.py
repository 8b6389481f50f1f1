"""Yes/no questions, asked only where someone can answer.

An ``ACTVT_*`` variable always wins. Otherwise: non-interactive (``ACTVT_NON_INTERACTIVE=yes`` or
``--yes``) takes the default; a terminal on stdin is asked; under ``curl … | python3 -`` stdin is the
script itself, so ``/dev/tty`` is opened instead when there is one; else the default applies.
"""

from typing import IO, Callable, Optional

from .config import BY_NAME


def _open_tty() -> Optional[IO[str]]:
    try:
        return open("/dev/tty", "r+", encoding="utf-8", errors="replace")
    except OSError:
        return None


class Prompter:
    def __init__(self, config, interactive: Optional[bool], stdin: Optional[IO[str]] = None,
                 open_tty: Callable[[], Optional[IO[str]]] = _open_tty):
        self.config = config
        self.interactive = interactive  # None: decide from the terminal
        self.stdin = stdin
        self.open_tty = open_tty
        self.answers = {}

    def _terminal(self) -> Optional[IO[str]]:
        if self.interactive is False:
            return None
        if self.stdin is not None and self.stdin.isatty():
            return self.stdin
        return self.open_tty()

    def ask(self, name: str) -> bool:
        """The value of the yes/no variable ``name``: from the environment, the user, or its default."""
        var = BY_NAME[name]
        value = getattr(self.config, var.field)
        if self.config.is_set(name) or var.prompt is None:
            return value
        if name in self.answers:
            return self.answers[name]
        terminal = self._terminal()
        if terminal is None:
            return value
        hint = "[Y/n]" if value else "[y/N]"
        answer = value
        try:
            terminal.write(f"{var.prompt} {hint} ")
            terminal.flush()
            reply = terminal.readline().strip().lower()
            if reply in ("y", "yes"):
                answer = True
            elif reply in ("n", "no"):
                answer = False
        except OSError:
            pass
        finally:
            if terminal is not self.stdin:
                terminal.close()
        self.answers[name] = answer
        return answer
