"""Yes/no questions, asked only where someone can answer.

An ``ACTVT_*`` variable always wins. Otherwise: non-interactive (``ACTVT_NON_INTERACTIVE=yes`` or
``--yes``) takes the default; a terminal on stdin is asked; under ``curl … | python3 -`` stdin is the
script itself, so ``/dev/tty`` is opened instead when there is one; else the default applies.
"""

from typing import IO, Callable, Optional

from installer.core.config import BY_NAME


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


def _lineage(config) -> str:
    from installer.core import paths

    return f"{paths.LETSENCRYPT_LIVE}/{config.domain}"


#: Each question and when it is asked (what the host must show for the question to make sense).
QUESTIONS = (
    ("ACTVT_REINSTALL_VECTOR", lambda config, facts: facts.has_package("vector")),
    ("ACTVT_ENABLE_GPU", lambda config, facts: facts.gpu),
    ("ACTVT_CONTINUE_WITHOUT_DNS", lambda config, facts: facts.domain_addresses == ()),
    ("ACTVT_REUSE_CERT", lambda config, facts: _lineage(config) in facts.dirs
        or f"{_lineage(config)}/fullchain.pem" in facts.files),
    ("ACTVT_REUSE_MTLS_CA", lambda config, facts: config.enable_mtls and _ca_exists(facts)),
    ("ACTVT_REGEN_CLIENT_CERT", lambda config, facts: config.enable_mtls and _client_exists(config, facts)),
)


def _ca_exists(facts) -> bool:
    from installer.core import paths

    return paths.CA_CERT in facts.files


def _client_exists(config, facts) -> bool:
    from installer.core import paths

    return f"{paths.MTLS_CLIENTS_DIR}/{config.mtls_client_cn}.crt" in facts.files


def answers(config, facts, prompter: "Prompter") -> dict:
    """The yes/no answers for the questions that apply to this host (variables win, see ``ask``)."""
    return {name: prompter.ask(name) for name, applies in QUESTIONS if applies(config, facts)}
