"""The one prompter: yes/no questions, asked only where someone can answer.

An ``ACTVT_*`` variable always wins. Otherwise: non-interactive (``ACTVT_NON_INTERACTIVE=yes`` or
``--yes``) takes the default; a terminal on stdin is asked; under ``curl … | python3 -`` stdin is the
script itself, so ``/dev/tty`` is opened instead when there is one; else the default applies.
``actvt client`` asks its confirmations (replace a certificate, revoke) through the same ``ask``.
"""

import sys
from typing import IO, Callable, Optional

from installer.core import paths
from installer.core.config import BY_NAME


def open_tty() -> Optional[IO[str]]:
    try:
        return open("/dev/tty", "r+", encoding="utf-8", errors="replace")
    except OSError:
        return None


def ask(question: str, default: bool, stdin: Optional[IO[str]] = None, echo: Optional[IO[str]] = None,
        opener: Optional[Callable[[], Optional[IO[str]]]] = None) -> Optional[bool]:
    """``question [Y/n]`` (or ``[y/N]``) on stdin when it is a terminal, else on /dev/tty: True for
    y/yes, False for n/no, ``default`` for anything else; None when there is no terminal to ask on.
    ``echo``: where the question is written when stdin is the terminal (else the terminal itself)."""
    terminal = stdin if stdin is not None and stdin.isatty() else (opener or open_tty)()
    if terminal is None:
        return None
    writer = echo if echo is not None and terminal is stdin else terminal
    answer = default
    try:
        writer.write(f"{question} {'[Y/n]' if default else '[y/N]'} ")
        writer.flush()
        reply = terminal.readline().strip().lower()
        if reply in ("y", "yes"):
            answer = True
        elif reply in ("n", "no"):
            answer = False
    except OSError:
        pass
    finally:
        if terminal is not stdin:
            terminal.close()
    return answer


class Prompter:
    """The install run's questions about yes/no variables (``Variable.prompt``)."""

    def __init__(self, config, interactive: Optional[bool], stdin: Optional[IO[str]] = None,
                 open_tty: Optional[Callable[[], Optional[IO[str]]]] = None):
        self.config = config
        self.interactive = interactive  # None: decide from the terminal
        self.stdin = stdin
        self.open_tty = open_tty
        self.answers = {}

    def ask(self, name: str) -> bool:
        """The value of the yes/no variable ``name``: from the environment, the user, or its default."""
        var = BY_NAME[name]
        value = getattr(self.config, var.field)
        if self.config.is_set(name) or var.prompt is None:
            return value
        if name in self.answers:
            return self.answers[name]
        if self.interactive is False:
            return value
        answer = ask(var.prompt, value, self.stdin, opener=self.open_tty)
        if answer is None:
            return value
        self.answers[name] = answer
        return answer


#: Each question and when it is asked (what the host must show for the question to make sense).
QUESTIONS = (
    ("ACTVT_REINSTALL_VECTOR", lambda config, facts: facts.has_package("vector")),
    ("ACTVT_ENABLE_GPU", lambda config, facts: facts.gpu),
    ("ACTVT_CONTINUE_WITHOUT_DNS", lambda config, facts: facts.domain_addresses == ()),
    ("ACTVT_REUSE_CERT", lambda config, facts: paths.lineage(config.domain) in facts.dirs
        or paths.fullchain(config.domain) in facts.files),
    ("ACTVT_REUSE_MTLS_CA", lambda config, facts: config.enable_mtls and paths.CA_CERT in facts.files),
    ("ACTVT_REGEN_CLIENT_CERT", lambda config, facts: config.enable_mtls
        and paths.client_cert(config.mtls_client_cn) in facts.files),
)


def answers(config, facts, prompter: Prompter) -> dict:
    """The yes/no answers for the questions that apply to this host (variables win, see ``ask``)."""
    return {name: prompter.ask(name) for name, applies in QUESTIONS if applies(config, facts)}


def confirm(question: str, out, stdin: Optional[IO[str]] = None,
            opener: Optional[Callable[[], Optional[IO[str]]]] = None) -> Optional[bool]:
    """``question [y/N]``: True only for y/yes; None when there is no terminal to ask on."""
    return ask(question, False, stdin if stdin is not None else sys.stdin, echo=out.stream, opener=opener)
