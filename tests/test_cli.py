"""The command line, run in-process against a temporary --root."""

import dataclasses
import io
import json
import os
import re

import pytest

from installer import __version__
from installer.commands import cli
from installer.commands import install as commands
from installer.core import config
from installer.core import paths
from installer.core.paths import Root
from installer.engine import lock

from helpers import DOMAIN, EMAIL, tree_digest
from helpers import run_cli as run


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    return tmp_path


def test_dry_run_prints_the_plan_with_diffs_and_changes_nothing(root):
    before = tree_digest(root)
    status, out = run(["--dry-run", "--root", str(root)])
    assert status == 0
    headings = re.findall(r"^\[(\d+)/(\d+)\] (.*)$", out, re.M)
    total = len(headings)
    assert [(int(n), int(t)) for n, t, _ in headings] == [(i, total) for i in range(1, total + 1)]
    assert headings[0][2] == "Checking the system" and headings[-1][2] == "Recording installation state"
    assert "+++ /var/lib/actvt/install.state" in out and "+mode=standalone" in out
    assert "+++ /etc/vector/vector.toml" in out
    assert "install packages (apt): vector=0.50.0-1 (listed, not run under --root" in out
    assert re.search(r"Dry run: \d+ change\(s\) planned, nothing was changed.", out)
    assert tree_digest(root) == before


@pytest.mark.parametrize("env,variable", [
    ({"ACTVT_VECTOR_PORT": "99999"}, "ACTVT_VECTOR_PORT"),
    ({"ACTVT_ENABLE_MTLS": "ture"}, "ACTVT_ENABLE_MTLS"),
    ({"ACTVT_DOMAIN": "bad_domain!"}, "ACTVT_DOMAIN"),
    ({"ACTVT_EMAIL": "nope"}, "ACTVT_EMAIL"),
    ({"ACTVT_INSTALL_MODE": "nginx"}, "ACTVT_INSTALL_MODE"),
    ({"ACTVT_MTLS_CLIENT_CN": "../x"}, "ACTVT_MTLS_CLIENT_CN"),
    ({"ACTVT_MTLS_CA_DAYS": "0"}, "ACTVT_MTLS_CA_DAYS"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_value_exits_2_with_one_line_and_changes_nothing(root, capsys, env, variable, dry_run):
    before = tree_digest(root)
    status, out = run(["--root", str(root)] + (["--dry-run"] if dry_run else []), env)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {variable}: ") and "allowed: " in err
    assert tree_digest(root) == before


def test_missing_domain_is_an_error(root, capsys):
    status = cli.main(["--root", str(root)], environ={"ACTVT_EMAIL": EMAIL}, stdout=io.StringIO())
    assert status == 2 and "ACTVT_DOMAIN: is required" in capsys.readouterr().err


def test_bad_root_is_an_error(tmp_path, capsys):
    status, _ = run(["--root", str(tmp_path / "missing")])
    assert status == 2 and "--root" in capsys.readouterr().err


def test_unknown_variable_warns_and_goes_on(root):
    status, out = run(["--dry-run", "--root", str(root)], {"ACTVT_DOMIAN": "x"})
    assert status == 0 and "did you mean ACTVT_DOMAIN?" in out


def test_install_then_rerun_reports_zero_changes(root, capsys):
    status, out = run(["--root", str(root), "--json"])
    summary = json.loads(out)
    assert status == 0 and summary["status"] == "ok"
    assert summary["changed"] == sum(1 for a in summary["actions"] if a["status"] == "changed") > 0
    assert summary["url"] == f"wss://{DOMAIN}:4096" and summary["mode"] == "standalone"
    assert {paths.STATE_FILE, paths.DOMAIN_FILE, paths.VECTOR_CONFIG} <= set(summary["paths_written"])
    assert {a["status"] for a in summary["actions"]} == {"changed", "skipped"}
    assert (root / "var/lib/actvt/domain").read_text() == DOMAIN + "\n"
    assert oct(os.stat(root / "var/lib/actvt").st_mode & 0o777) == "0o700"
    state = (root / "var/lib/actvt/install.state").read_text()
    assert state.startswith(f"version={__version__}\ninstalled_at=") and "mode=standalone\nwebserver=none\nmtls=disabled\n" in state
    before = tree_digest(root)
    status, out = run(["--root", str(root), "--json"])
    summary = json.loads(out)
    assert status == 0 and summary["changed"] == 0
    assert {a["status"] for a in summary["actions"]} == {"unchanged", "skipped"}
    assert [entry for entry in tree_digest(root) if "actvt-install.log" not in entry[0]] == \
        [entry for entry in before if "actvt-install.log" not in entry[0]]
    assert "Nothing to change" in capsys.readouterr().err


def test_log_has_the_reference_format_and_no_full_email(root):
    run(["--root", str(root)])
    log = (root / "var/log/actvt-install.log").read_text()
    assert log.splitlines()[0][:1] == "[" and f"] [INFO] actvt-installer {__version__}" in log.splitlines()[0]
    assert EMAIL not in log and "a***@example.com" in log
    assert oct(os.stat(root / "var/log/actvt-install.log").st_mode & 0o777) == "0o644"


def test_a_second_concurrent_run_is_refused(root, capsys):
    with lock.hold(Root(str(root))):
        status, out = run(["--root", str(root)])
    assert status == 1 and "another actvt installer is running" in out
    assert not (root / "var/lib/actvt").exists()
    assert not (root / "var/log/actvt-install.log").exists()  # the log is the running installer's


def test_help_lists_every_variable(capsys):
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for var in config.VARIABLES:
        assert var.name in text


def test_version(capsys):
    assert cli.main(["--version"], environ={}) == 0
    assert capsys.readouterr().out == f"actvt-installer {__version__}\n"


def test_options_before_or_after_the_command(root):
    assert run(["install", "--dry-run", "--root", str(root)])[0] == 0
    assert run(["--dry-run", "--root", str(root), "install"])[0] == 0


def test_real_host_without_root_is_refused(monkeypatch, capsys):
    if os.geteuid() == 0:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    status, out = run([])
    assert status == 1 and "must run as root" in out


def test_no_colour_without_a_terminal_or_with_no_color():
    from installer.ui.console import use_colour

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert use_colour(Tty(), {}) is True
    assert use_colour(Tty(), {"NO_COLOR": ""}) is False
    assert use_colour(io.StringIO(), {}) is False


def test_readme_variable_table_is_generated_from_the_declaration():
    import subprocess
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.join(here, "scripts", "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    with open(os.path.join(here, "README.md")) as handle:
        readme = handle.read()
    for var in config.VARIABLES:
        assert f"| `{var.name}` |" in readme


def test_ci_runs_exactly_the_readme_test_command():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "README.md")) as handle:
        readme = handle.read()
    with open(os.path.join(here, ".ci", "run")) as handle:
        ci = handle.read()
    command = readme.split("## Run the tests", 1)[1].split("```sh\n", 1)[1].split("\n", 1)[0]
    assert command == "bash scripts/test.sh" and f"\n{command}\n" in ci


def test_bake_mode_prepares_an_image_without_anything_unique(root):
    status, out = run(["--root", str(root), "--json"], {"ACTVT_BAKE": "yes", "ACTVT_ENABLE_MTLS": "yes",
                                                      "ACTVT_DOMAIN": "", "ACTVT_EMAIL": ""})
    assert status == 0 and json.loads(out)["status"] == "ok"  # no domain or e-mail needed to bake
    files = {entry[0] for entry in tree_digest(root)}
    assert "etc/systemd/system/actvt-firstboot.service" in files
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/actvt-firstboot.service") == \
        "/etc/systemd/system/actvt-firstboot.service"
    unit = (root / "etc/systemd/system/actvt-firstboot.service").read_text()
    assert "EnvironmentFile=/etc/actvt/install.env" in unit and "ExecStart=/usr/local/bin/actvt install --yes" in unit
    assert "ConditionPathExists=!/var/lib/actvt/firstboot.done" in unit
    assert oct(os.stat(root / "etc/actvt").st_mode & 0o777) == "0o700"
    # nothing unique to one server: no keys, certificates, CA or state
    assert not [f for f in files if f.endswith((".key", ".crt", ".pem")) or f.startswith("var/lib/actvt")], files
    assert not (root / "etc/vector/certs").exists()


def test_without_systemd_the_message_names_bake_mode(monkeypatch):
    from installer.core import facts as host_facts

    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
    from helpers import make_facts

    # a host without systemd (as in `docker build`); nothing real is read or looked up
    monkeypatch.setattr(host_facts, "gather", lambda *a, **k: dataclasses.replace(make_facts(), systemd_running=False))
    status, out = run([])
    assert status == 1 and "ACTVT_BAKE=yes" in out and "systemd is not running" in out


def test_a_stop_while_planning_still_answers_json(root, monkeypatch):
    """apache2 on 80 stops the run while planning (e2e: the summary was missing with --json)."""
    from installer.core.errors import ActvtError

    def stop(*args, **kwargs):
        raise ActvtError("proxy mode needs nginx, but apache2 serves ports 80/443 on this host")

    monkeypatch.setattr(commands.registry, "build", stop)
    status, out = run(["--root", str(root), "--json"])
    summary = json.loads(out)
    assert status == 1 and summary["status"] == "failed" and "apache2" in summary["error"]
    assert summary["actions"] == [] and summary["changed"] == 0
