"""Questions: asked only where someone can answer; a variable always wins."""

import io

from installer.core import paths
from installer.core.context import Context, answer
from installer.ui.prompt import Prompter, answers

from helpers import make_config, make_facts


class Terminal(io.StringIO):
    def __init__(self, reply):
        super().__init__(reply)
        self.written = []

    def isatty(self):
        return True

    def write(self, text):
        self.written.append(text)
        return len(text)


def test_a_variable_always_wins():
    cfg = make_config(reinstall_vector="no")
    tty = Terminal("y\n")
    assert Prompter(cfg, None, tty).ask("ACTVT_REINSTALL_VECTOR") is False
    assert tty.written == []


def test_terminal_on_stdin_is_asked():
    tty = Terminal("y\n")
    assert Prompter(make_config(), None, tty).ask("ACTVT_REINSTALL_VECTOR") is True
    assert tty.written == ["Vector is already installed. Reinstall it? [y/N] "]


def test_an_empty_reply_takes_the_default():
    assert Prompter(make_config(), None, Terminal("\n")).ask("ACTVT_ENABLE_GPU") is True


def test_pipe_reads_dev_tty_when_there_is_one():
    tty = Terminal("n\n")
    pipe = io.StringIO("")  # stdin is the script under curl | python3 -
    assert Prompter(make_config(), None, pipe, open_tty=lambda: tty).ask("ACTVT_ENABLE_GPU") is False
    assert tty.written and "[Y/n]" in tty.written[0]


def test_no_terminal_takes_the_default():
    assert Prompter(make_config(), None, io.StringIO(""), open_tty=lambda: None).ask("ACTVT_REUSE_CERT") is True


def test_non_interactive_never_asks():
    opened = []
    prompter = Prompter(make_config(), False, Terminal("y\n"), open_tty=lambda: opened.append(1))
    assert prompter.ask("ACTVT_REINSTALL_VECTOR") is False and opened == []


def test_only_questions_that_apply_are_asked():
    asked = []

    class Recorder(Prompter):
        def ask(self, name):
            asked.append(name)
            return True

    cfg = make_config(enable_mtls="yes")
    facts = make_facts(packages={"vector": "0.50.0-1"}, gpu=True, domain_addresses=(),
                       files={paths.CA_CERT: b"x"})
    result = answers(cfg, facts, Recorder(cfg, None))
    assert asked == ["ACTVT_REINSTALL_VECTOR", "ACTVT_ENABLE_GPU", "ACTVT_CONTINUE_WITHOUT_DNS", "ACTVT_REUSE_MTLS_CA"]
    assert answers(make_config(), make_facts(), Recorder(cfg, None)) == {} and result["ACTVT_ENABLE_GPU"]


def test_answer_prefers_the_variable_then_the_reply():
    ctx = Context(version="1", now="x", answers={"ACTVT_ENABLE_GPU": False})
    assert answer(make_config(), ctx, "ACTVT_ENABLE_GPU") is False
    assert answer(make_config(enable_gpu="yes"), ctx, "ACTVT_ENABLE_GPU") is True
    assert answer(make_config(), Context(version="1", now="x"), "ACTVT_ENABLE_GPU") is True
