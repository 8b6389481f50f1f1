"""The environment the installer gives apt and every other command it runs (issue 21, item 5).

On Ubuntu, needrestart runs after every apt run (apt's ``DPkg::Post-Invoke``); Ubuntu 24.04's restarts
the services that need it without asking, terminal or not, and 22.04's asks on a terminal. debconf
asks on a terminal too. The installer's commands must do neither: they run with no terminal and with
``packaging.UNATTENDED_ENV``, over whatever the caller's environment says (``sudo -E`` keeps a user's
``DEBIAN_FRONTEND``). Checked on the real runner, with programs on PATH that record what they got.
"""

import json
import sys

import pytest

from installer.core import packaging
from installer.core.actions import Packages, Plan, Step
from installer.core.paths import Root
from installer.engine import engine
from installer.engine.runner import Runner

RECORD = r"""
import json, os, sys
with open(os.environ["ACTVT_TEST_RECORD"], "a") as out:
    out.write(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ),
                          "tty": [os.isatty(fd) for fd in (0, 1, 2)]}) + "\n")
sys.exit(int(os.environ.get("ACTVT_TEST_EXIT_" + os.path.basename(sys.argv[0]).replace("-", "_"), "0")))
"""


@pytest.fixture
def programs(tmp_path, monkeypatch):
    """apt-get and dpkg-query on PATH that record their arguments, environment and terminals; the
    caller's environment as a user's shell may pass it through ``sudo -E``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("apt-get", "dpkg-query"):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{RECORD}")
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("ACTVT_TEST_RECORD", str(record))
    monkeypatch.setenv("ACTVT_TEST_EXIT_dpkg_query", "1")  # no package is installed yet
    monkeypatch.setenv("DEBIAN_FRONTEND", "dialog")
    monkeypatch.setenv("NEEDRESTART_MODE", "a")
    monkeypatch.delenv("NEEDRESTART_SUSPEND", raising=False)

    def calls():
        return [json.loads(line) for line in record.read_text().splitlines()]

    return calls


def test_the_package_install_asks_nothing_and_suspends_needrestart(tmp_path, programs, monkeypatch):
    # the engine acting as on a host, with every server path (the dpkg lock files) under tmp_path
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    monkeypatch.setattr(Root, "host", lambda self, p: str(tmp_path / p.lstrip("/")))
    eng = engine.Engine(Root(str(tmp_path)), Runner(), manage_owner=False, lock_timeout=5)
    eng.apply(eng.check(Plan((Step("Installing nginx", (Packages("apt", ("nginx",), reason="proxy mode"),)),))))
    [install] = [call for call in programs() if call["argv"][:1] != ["-W"]]
    assert install["argv"][-1] == "nginx" and "install" in install["argv"]
    env = install["env"]
    assert env["DEBIAN_FRONTEND"] == "noninteractive"  # not the caller's "dialog"
    assert env["NEEDRESTART_SUSPEND"] == "1"  # apt-pinvoke (needrestart's apt hook) then starts nothing
    assert env["NEEDRESTART_MODE"] == "l"  # not the caller's "a": a needrestart run otherwise only lists
    assert env["APT_LISTCHANGES_FRONTEND"] == "none"
    assert install["tty"] == [False, False, False]  # nothing apt starts can find a terminal to ask on
    assert "--force-confold" in " ".join(install["argv"])  # dpkg keeps edited configuration files unasked


def test_every_command_gets_it_and_an_action_may_still_set_its_own(programs):
    Runner().run(["dpkg-query", "-W", "nginx"], check=False)
    Runner().run(["apt-get", "update"], env={"NEEDRESTART_MODE": "i"})
    query, update = programs()
    for name, value in packaging.UNATTENDED_ENV.items():
        assert query["env"][name] == value
    assert update["env"]["NEEDRESTART_MODE"] == "i" and update["env"]["NEEDRESTART_SUSPEND"] == "1"
