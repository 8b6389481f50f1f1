"""Secrets stay where they were (issue 18, item 3).

People keep secrets in Vector's environment file (``DD_API_KEY=…``, sink credentials) and in their own
``vector.toml`` (``api_key = …``). Planted here in a ``--root`` server, ``/etc/default/vector`` 0600 as
Vector's package ships it: what a user observes through every output — the console, ``--dry-run``,
``--json`` of a dry and a real run, the log, the backups, the Ansible module's result with and without
``--diff`` — never holds the secret, and the file keeps its mode.
"""

import contextlib
import glob
import importlib.util
import io
import json
import os
import stat
import sys
import types

import pytest

from installer.core import paths
from installer.core.actions import File, Plan, Step
from installer.engine import engine
from installer.engine.diff import file_diff, written_by_installer

from helpers import ENV, run_cli

SECRET = "secret-value"
TOML_SECRET = "toml-secret-value"
DEFAULTS = ("# /etc/default/vector\n# This file can theoretically contain a bunch of environment variables\n"
            f"DD_API_KEY={SECRET}\nHTTPS_PROXY=http://user:{SECRET}@proxy:3128\n")
OLD_TOML = f'[sinks.datadog]\ntype = "datadog_metrics"\ninputs = ["host"]\napi_key = "{TOML_SECRET}"\n'
MODULE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "contrib", "ansible", "plugins", "modules", "actvt_install.py")


@pytest.fixture
def server(tmp_path):
    """A server where Vector's package left its 0600 defaults file with a user's secrets, and the user
    wrote their own vector.toml."""
    root = tmp_path / "root"
    (root / "etc/vector").mkdir(parents=True)
    (root / "etc/default").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    defaults = root / "etc/default/vector"
    defaults.write_text(DEFAULTS)
    os.chmod(defaults, 0o600)
    (root / "etc/vector/vector.toml").write_text(OLD_TOML)
    return root


def run(root, *argv):
    """(exit status, stdout, stderr) of install.pyz ARGV --root ROOT."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, out = run_cli([*argv, "--root", str(root)])
    return status, out, err.getvalue()


def assert_no_secret(*texts):
    for text in texts:
        assert SECRET not in text and TOML_SECRET not in text, text


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def defaults_diff(summary) -> str:
    [action] = [a for a in summary["actions"] if a["target"] == paths.VECTOR_DEFAULTS]
    return action["diff"]


# --- the console and --dry-run --------------------------------------------------------------------


def test_a_dry_run_shows_the_installers_lines_and_counts_the_others(server):
    status, out, err = run(server, "--dry-run")
    assert status == 0
    assert_no_secret(out, err)
    assert "+VECTOR_CONFIG=/etc/vector/vector.toml" in out  # the line the installer manages is shown
    assert ("(4 other line(s) of /etc/default/vector not shown, the installer did not write them: 4 kept; the "
            "file as it is now is backed up first to /var/lib/actvt/backups/<run>/etc/default/vector)") in out
    assert "line(s) of /etc/vector/vector.toml not shown, the installer did not write them: 4 removed" in out
    assert '+address = "0.0.0.0:4096"' in out  # the new vector.toml is the installer's: all of it is shown
    assert "file /etc/default/vector (0644 root:root, or the stricter mode it has)" in out
    assert mode(server / "etc/default/vector") == 0o600 and not (server / "var").exists()


def test_dry_run_json_holds_no_secret(server):
    status, out, err = run(server, "--dry-run", "--json")
    assert status == 0
    assert_no_secret(out, err)
    summary = json.loads(out)
    assert "4 kept" in defaults_diff(summary) and "+VECTOR_CONFIG=/etc/vector/vector.toml" in defaults_diff(summary)


# --- a real run: its console, --json, the log, the backups ----------------------------------------


def test_a_real_run_keeps_the_mode_and_the_lines_and_prints_no_secret(server):
    status, out, err = run(server, "--json")
    assert status == 0, err
    assert_no_secret(out, err)
    summary = json.loads(out)
    defaults = server / "etc/default/vector"
    assert mode(defaults) == 0o600 and (os.stat(defaults).st_uid, os.stat(defaults).st_gid) == (0, 0)
    text = defaults.read_text()
    assert f"DD_API_KEY={SECRET}\n" in text and text.endswith("VECTOR_CONFIG=/etc/vector/vector.toml\n")
    assert "4 kept" in defaults_diff(summary)
    # the log
    log = (server / paths.LOG_FILE.lstrip("/")).read_text()
    assert "/etc/default/vector" in log
    assert_no_secret(log)
    # the backups: each as it was, with its own strict mode, named in the JSON summary
    [action] = [a for a in summary["actions"] if a["target"] == paths.VECTOR_DEFAULTS]
    backup = server / action["backup"].lstrip("/")
    assert action["backup"] == summary["backup_dir"] + paths.VECTOR_DEFAULTS
    assert backup.read_text() == DEFAULTS and mode(backup) == 0o600
    assert mode(backup.parent.parent.parent) == 0o700  # the run's backup folder
    [toml] = glob.glob(str(server / "var/lib/actvt/backups/*/etc/vector/vector.toml"))
    assert open(toml).read() == OLD_TOML
    # a re-run changes nothing and shows nothing of the file
    status, out, err = run(server)
    assert status == 0 and "Nothing to change" in out
    assert_no_secret(out, err)
    assert mode(defaults) == 0o600


def test_uninstall_puts_the_file_back_as_it_was_and_shows_none_of_it(server):
    assert run(server)[0] == 0
    status, out, err = run(server, "uninstall", "--dry-run")
    assert status == 0
    assert_no_secret(out, err)
    assert "other line(s) of /etc/default/vector not shown" in out
    status, out, err = run(server, "uninstall", "--yes")
    assert status == 0, err
    assert_no_secret(out, err)
    assert (server / "etc/default/vector").read_text() == DEFAULTS and mode(server / "etc/default/vector") == 0o600


# --- the rules, one by one ------------------------------------------------------------------------


def test_a_file_the_manifest_says_the_installer_made_shows_its_removed_lines():
    entries = {"/etc/vector/vector.toml": {"origin": "created", "kind": "file"},
               "/etc/default/vector": {"origin": "replaced", "kind": "file", "backup": "/var/lib/actvt/backups/x"},
               "/etc/old": {"origin": "adopted", "kind": "file"}}
    assert written_by_installer(entries) == {"/etc/vector/vector.toml"}
    before, after = b"port = 1\n", b"port = 2\n"
    assert "-port = 1\n+port = 2\n" in file_diff("/f", before, after, False, before_is_own=True)
    foreign = file_diff("/f", before, after, False)
    assert "port = 1" not in foreign and "+port = 2" in foreign and "1 removed" in foreign
    # a line kept from someone else's file is not shown on the new side either; the own lines are
    kept = file_diff("/f", b"KEY=x\n", b"KEY=x\nMINE=1\n", False, own_lines=("MINE=1",), before_is_own=True)
    assert "KEY" not in kept and "+MINE=1" in kept and "1 kept" in kept


@pytest.mark.parametrize("found, group, wanted", [
    (0o600, "root", 0o600),  # stricter: kept
    (0o640, "daemon", 0o640),  # stricter, with its group: kept
    (0o666, "root", 0o644),  # looser: made 0644
    (0o604, "root", 0o604),
    (0o744, "root", 0o644),  # an execute bit the installer does not give: 0644
])
def test_the_defaults_file_keeps_a_stricter_mode_and_its_group(server, found, group, wanted):
    import grp

    defaults = server / "etc/default/vector"
    os.chmod(defaults, found)
    os.chown(defaults, 65534, grp.getgrnam(group).gr_gid)  # another owner: always made root
    status, out, err = run(server)
    assert status == 0, err
    st = os.stat(defaults)
    assert (mode(defaults), st.st_uid) == (wanted, 0)
    assert st.st_gid == (grp.getgrnam(group).gr_gid if wanted == found else 0)
    status, out, err = run(server, "--dry-run")  # converged: nothing more to change
    assert "Dry run: 0 change(s) planned" in out, out


def test_the_engine_asks_the_mode_again_when_it_writes(tmp_path):
    """On a fresh host Vector's package makes the 0600 file after the plan was checked: it stays 0600."""
    eng = engine.Engine(engine.Root(str(tmp_path)), engine.Runner(), manage_owner=False)
    plan = Plan((Step("s", (File("/etc/default/vector", b"VECTOR_CONFIG=x\n", 0o644, keep_stricter=True),)),))
    items = eng.check(plan)
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/vector").write_text("made by the package\n")
    os.chmod(tmp_path / "etc/default/vector", 0o600)
    eng.apply(items)
    assert mode(tmp_path / "etc/default/vector") == 0o600


def test_doctor_accepts_the_stricter_defaults_file(server):
    assert run(server)[0] == 0
    status, out, err = run(server, "doctor", "--json")
    files = [f for f in json.loads(out)["checks"] if f["check"] == "files"]
    assert files and all(f["level"] == "pass" for f in files), files
    assert_no_secret(out, err)


# --- the Ansible module ---------------------------------------------------------------------------


class Exited(Exception):
    def __init__(self, result, failed):
        super().__init__(result)
        self.result, self.failed = result, failed


def load_module(monkeypatch, root, params, check_mode, diff):
    """The role's module with a stand-in for Ansible's AnsibleModule: its parameters, check and diff
    mode, and run_command running the installer in-process on ROOT (ansible-playbook itself runs in
    tests/integration/test_secrets_e2e.py, where Ansible's own no_log masking is seen)."""

    class AnsibleModule:
        spec = None

        def __init__(self, argument_spec, supports_check_mode):
            AnsibleModule.spec = argument_spec
            self.params = {name: params.get(name, spec.get("default")) for name, spec in argument_spec.items()}
            self.check_mode, self._diff = check_mode, diff

        def run_command(self, argv, environ_update):
            assert argv[:4] == [self.params["python"], "-I", self.params["installer"], "install"]
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status, out = run_cli(argv[4:] + ["--root", str(root)], environ_update, base={"NO_COLOR": "1"})
            return status, out, err.getvalue()

        def exit_json(self, **result):
            raise Exited(result, False)

        def fail_json(self, **result):
            raise Exited(result, True)

    basic = types.ModuleType("ansible.module_utils.basic")
    basic.AnsibleModule = AnsibleModule
    for name in ("ansible", "ansible.module_utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "ansible.module_utils.basic", basic)
    spec = importlib.util.spec_from_file_location("actvt_install", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, AnsibleModule


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
@pytest.mark.parametrize("diff", [False, True], ids=["no-diff", "diff"])
def test_the_modules_result_holds_the_summary_only_under_diff_and_never_a_secret(monkeypatch, server, tmp_path,
                                                                                check_mode, diff):
    pyz = tmp_path / "install.pyz"
    pyz.write_bytes(b"")
    params = {"installer": str(pyz), "email": ENV["ACTVT_EMAIL"],
              "variables": {"ACTVT_DOMAIN": ENV["ACTVT_DOMAIN"], "ACTVT_ENABLE_MTLS": "no"},
              "environment": {"HTTPS_PROXY": f"http://user:{SECRET}@127.0.0.1:9"}}
    module, ansible = load_module(monkeypatch, server, params, check_mode, diff)
    assert ansible.spec is None
    with pytest.raises(Exited) as exited:
        module.main()
    assert ansible.spec["environment"]["no_log"] is True and ansible.spec["email"]["no_log"] is True
    assert not ansible.spec["variables"].get("no_log")
    result = exited.value.result
    assert not exited.value.failed, result
    assert result["changed"] is True and result["url"] == "wss://monitor.example.com:4096"
    assert ("summary" in result, "diff" in result) == (diff, diff)
    assert_no_secret(json.dumps(result))
    if diff:
        [shown] = [d for d in result["diff"] if d["before_header"] == paths.VECTOR_DEFAULTS]
        assert "4 kept" in shown["prepared"]
    assert mode(server / "etc/default/vector") == 0o600



def test_a_users_saved_iptables_rules_are_not_shown_when_the_installers_are_added_or_taken_out(tmp_path):
    """rules.v4 is edited line by line (firewall.py): only the rule lines the installer adds are its own."""
    import dataclasses

    from installer.concerns import firewall
    from installer.core.facts import ProbeResult
    from installer.plans.registry import Context, Decisions

    from helpers import make_config, make_facts

    saved = f'*filter\n:INPUT DROP [0:0]\n-A INPUT -s 10.0.0.0/8 -m comment --comment "{SECRET}" -j ACCEPT\nCOMMIT\n'
    (tmp_path / "etc/iptables").mkdir(parents=True)
    (tmp_path / "etc/iptables/rules.v4").write_text(saved)
    facts = dataclasses.replace(make_facts(files={firewall.IPTABLES_RULES: saved.encode()}),
                                probes={"iptables_input": ProbeResult(0, "-P INPUT DROP\n")})
    steps = firewall.plan_firewall(make_config(), facts, Decisions(mode="standalone", webserver="none"),
                                   Context(version="1.0.0", now="2026-11-26T00:00:00Z"))
    eng = engine.Engine(engine.Root(str(tmp_path)), engine.Runner(), manage_owner=False)
    [item] = [item for item in eng.check(Plan(tuple(steps))) if getattr(item.action, "path", "") == firewall.IPTABLES_RULES]
    [record] = [a.content for step in steps for a in step.actions if getattr(a, "path", "") == firewall.RECORD]
    assert "+-A INPUT -p tcp -m tcp --dport 4096 -j ACCEPT" in item.diff and "4 kept" in item.diff, item.diff
    assert_no_secret(item.diff)
    # uninstall takes the installer's rule out again: shown; the user's lines are not
    (tmp_path / "etc/iptables/rules.v4").write_bytes(item.action.content)
    facts = make_facts(files={firewall.RECORD: record, firewall.IPTABLES_RULES: item.action.content})
    [item] = [item for item in eng.check(Plan(tuple(firewall.uninstall_rules({}, facts, None))))
              if getattr(item.action, "path", "") == firewall.IPTABLES_RULES]
    assert "--dport 4096 -j ACCEPT" in item.diff and "4 kept" in item.diff, item.diff
    assert_no_secret(item.diff)
