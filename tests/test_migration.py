"""Migration from the bash installer: state defaults, the old unit override, files at our paths."""

import io
import os

import pytest

from installer.core import records
from installer.concerns import migration
from installer.core import paths
from installer.core.actions import Absent, Command
from installer.engine.engine import Engine
from installer.core.paths import Root
from installer.core.concern import Phase
from installer.plans.registry import Context, build_plan, reads

from helpers import DOMAIN, EMAIL, RecordingRunner, make_config, make_facts

BASH_STATE = (b"version=1.0.0\ninstalled_at=2024-05-01T10:00:00Z\nmode=proxy\nwebserver=nginx\n"
              b"mtls=enabled\nmtls_client_cn=laptop-01\n")
BASH_OVERRIDE = b"[Service]\nExecStart=\nExecStart=/usr/bin/vector --config /etc/vector/vector.toml\n"
FILES = {paths.STATE_FILE: BASH_STATE, paths.DOMAIN_FILE: f"{DOMAIN}\n".encode()}


def test_state_fills_what_the_variables_do_not_say():
    added, lines = migration.state_defaults(FILES, {"ACTVT_EMAIL": EMAIL})
    assert added == {"ACTVT_DOMAIN": DOMAIN, "ACTVT_INSTALL_MODE": "proxy", "ACTVT_ENABLE_MTLS": "yes",
                     "ACTVT_MTLS_CLIENT_CN": "laptop-01"}
    assert len(lines) == 4 and all("not set; taken from /var/lib/actvt/" in line for line in lines)
    assert any(line.startswith("ACTVT_INSTALL_MODE=proxy") and paths.STATE_FILE in line for line in lines)


def test_variables_win_over_the_state():
    env = {"ACTVT_DOMAIN": "other.example.com", "ACTVT_INSTALL_MODE": "standalone", "ACTVT_ENABLE_MTLS": "no"}
    added, lines = migration.state_defaults(FILES, env)
    assert added == {} and lines == []
    # mTLS explicitly on: the recorded client name is still taken
    assert migration.state_defaults(FILES, {"ACTVT_ENABLE_MTLS": "yes"})[0]["ACTVT_MTLS_CLIENT_CN"] == "laptop-01"
    # forcing standalone means the recorded mode must not be taken
    assert "ACTVT_INSTALL_MODE" not in migration.state_defaults(FILES, {"ACTVT_FORCE_STANDALONE": "yes"})[0]
    # an empty variable counts as not set, as in config.parse
    assert migration.state_defaults(FILES, {"ACTVT_INSTALL_MODE": " "})[0]["ACTVT_INSTALL_MODE"] == "proxy"


def test_no_state_no_defaults():
    assert migration.state_defaults({}, {}) == ({}, [])


@pytest.mark.parametrize("path,data,why", [
    (paths.STATE_FILE, b"mode=auto\n", "line 1: mode is not one of standalone, proxy"),
    (paths.STATE_FILE, b"mode=proxy\nmtls=maybe\n", "line 2: mtls is not one of enabled, disabled"),
    (paths.STATE_FILE, b"version=1.0.0\n\x00\x01garbage\n", "line 2 is not key=value"),
    (paths.STATE_FILE, b"\xff\xfe", "it is not text"),
    (paths.STATE_FILE, b"mtls=enabled\nmtls_client_cn=../x\n", "line 2: mtls_client_cn is not a client name"),
    (paths.DOMAIN_FILE, b"not a domain\n", "it does not hold a host name"),
])
def test_a_damaged_state_is_reported_not_ignored(path, data, why):
    """Odd values are never silently read as "not set" (the run would then rewrite the record)."""
    with pytest.raises(records.StateError) as info:
        migration.state_defaults({path: data}, {})
    assert str(info.value).startswith(f"{path} is damaged ({why})")
    assert f"{paths.BACKUP_DIR}/*{path}" in str(info.value) and "nothing was changed" in str(info.value)


def test_the_bash_override_is_recognised_and_a_foreign_one_is_not():
    assert migration.is_old_override(BASH_OVERRIDE.decode())
    assert migration.is_old_override("# comment\n[Service]\nExecStart=\nExecStart=/usr/bin/vector -c /x.toml\n")
    assert not migration.is_old_override(BASH_OVERRIDE.decode() + "Environment=FOO=1\n")
    assert not migration.is_old_override("[Service]\nLimitNOFILE=65536\n")
    assert not migration.is_old_override("")


def test_plan_removes_the_old_override_then_reloads_systemd():
    facts = make_facts(files={migration.OVERRIDE: BASH_OVERRIDE})
    steps = migration.plan_migration(make_config(), facts, None, None)
    actions = steps[0].actions
    assert actions[0] == Absent(migration.OVERRIDE, actions[0].reason)
    assert actions[1].path == migration.OVERRIDE_DIR and actions[1].if_empty
    assert isinstance(actions[2], Command) and actions[2].argv == ("systemctl", "daemon-reload")
    assert actions[2].when_changed == (migration.OVERRIDE,)
    foreign = make_facts(files={migration.OVERRIDE: b"[Service]\nNice=5\n"})
    assert migration.plan_migration(make_config(), foreign, None, None) == []
    assert "kept" in migration.notes(make_config(), foreign, None, None)[0]


def test_migration_runs_before_vector_starts_and_the_override_is_read():
    [planner] = migration.CONCERN.planners
    assert planner.plan is migration.plan_migration and planner.phase == Phase.MIGRATION < Phase.SERVICE

    assert migration.OVERRIDE in reads(make_config())


def test_engine_backs_up_and_removes_the_override_and_reloads(tmp_path):
    root = Root(str(tmp_path))
    override = tmp_path / migration.OVERRIDE.lstrip("/")
    override.parent.mkdir(parents=True)
    override.write_bytes(BASH_OVERRIDE)
    facts = make_facts(files={migration.OVERRIDE: BASH_OVERRIDE})
    plan = build_plan(make_config(), facts, Context(version="9", now="2025-01-01T00:00:00Z"))
    step = [s for s in plan.steps if s.title == "Replacing the old Vector unit override"]
    assert step
    runner = RecordingRunner()
    engine = Engine(root, runner, manage_owner=False)
    from installer.core.actions import Plan

    items = engine.check(Plan(tuple(step)))
    result = engine.apply(items, lambda item: None, lambda item: None)
    assert not override.exists() and not override.parent.exists()
    backup = tmp_path / result.backup_dir.lstrip("/") / migration.OVERRIDE.lstrip("/")
    assert backup.read_bytes() == BASH_OVERRIDE
    # under --root the daemon-reload is listed, not run (the e2e migration scenario runs it for real)
    assert [item.status for item in items][-1] == "skip" and runner.calls == []
    # nothing left to do on a second run
    facts2 = make_facts(files={})
    assert migration.plan_migration(make_config(), facts2, None, None) == []


def test_the_old_override_goes_and_our_limits_in_the_same_folder_stay(tmp_path):
    """The bash installer's override.conf and our actvt-limits.conf share vector.service.d: removing the
    one (and the folder 'if empty') must leave the other, on the first run and on every re-run."""
    root = Root(str(tmp_path))
    override = tmp_path / migration.OVERRIDE.lstrip("/")
    override.parent.mkdir(parents=True)
    override.write_bytes(BASH_OVERRIDE)
    from installer.core import paths
    from installer.core.actions import Plan

    for files in ({migration.OVERRIDE: BASH_OVERRIDE}, {}):
        plan = build_plan(make_config(), make_facts(files=files), Context(version="9", now="2025-01-01T00:00:00Z"))
        wanted = [s for s in plan.steps if s.title in ("Keeping Vector's port in service",
                                                       "Replacing the old Vector unit override")]
        engine = Engine(root, RecordingRunner(), manage_owner=False)
        engine.apply(engine.check(Plan(tuple(wanted))), lambda item: None, lambda item: None)
        assert not override.exists()
        assert (tmp_path / paths.VECTOR_LIMITS.lstrip("/")).read_text().endswith("LimitNOFILE=65536\n")


def test_bash_installer_files_are_at_the_paths_we_write():
    """The old nginx site, its link, the renewal hook and vector.toml are replaced (and backed up) by the
    ordinary file actions because the bash script used the same paths."""
    from installer.concerns import nginx
    from installer.concerns import certbot

    assert paths.NGINX_SITE == "/etc/nginx/sites-available/actvt-vector"
    assert paths.NGINX_SITE_LINK == "/etc/nginx/sites-enabled/actvt-vector"
    assert paths.DEPLOY_HOOK == "/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh"
    assert paths.VECTOR_CONFIG == "/etc/vector/vector.toml"
    assert nginx and certbot
def test_install_under_root_takes_the_recorded_settings(tmp_path):
    from installer.commands import cli

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    state = tmp_path / "var/lib/actvt"
    state.mkdir(parents=True)
    (state / "install.state").write_bytes(b"version=1.0.0\ninstalled_at=2024-05-01T10:00:00Z\nmode=standalone\n"
                                          b"webserver=none\nmtls=enabled\nmtls_client_cn=laptop-01\n")
    (state / "domain").write_text(DOMAIN + "\n")
    stdout = io.StringIO()
    status = cli.main(["--root", str(tmp_path), "--yes"], environ={"ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"},
                      stdout=stdout)
    out = stdout.getvalue()
    assert status == 0, out
    assert f"ACTVT_DOMAIN={DOMAIN} (not set; taken from /var/lib/actvt/domain)" in out
    assert "ACTVT_ENABLE_MTLS=yes (not set; taken from /var/lib/actvt/install.state)" in out
    new_state = (state / "install.state").read_text()
    assert "mtls=enabled" in new_state and "mtls_client_cn=laptop-01" in new_state
    assert "installed_at=2024-05-01T10:00:00Z" in new_state
    assert os.path.exists(tmp_path / "etc/vector/certs/mtls/clients/laptop-01.crt")


def test_the_bash_installers_files_are_adopted_so_uninstall_removes_them(tmp_path):
    """Seen in the migration scenario's design: recorded as 'replaced', uninstall would put the bash
    installer's vector.toml and renewal hook back."""
    from installer.commands import cli
    from installer.core import manifest

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    (tmp_path / "etc/vector").mkdir()
    (tmp_path / "etc/vector/vector.toml").write_text("# the bash installer's\n")
    (tmp_path / "etc/foreign.conf").write_text("x\n")
    state = tmp_path / "var/lib/actvt"
    state.mkdir(parents=True)
    (state / "install.state").write_bytes(b"version=1.0.0\nmode=standalone\nwebserver=none\nmtls=disabled\n")
    (state / "domain").write_text(DOMAIN + "\n")
    env = {"ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"}
    assert cli.main(["--root", str(tmp_path), "--yes"], environ=env, stdout=io.StringIO()) == 0
    import json

    entries = json.loads((tmp_path / manifest.MANIFEST.lstrip("/")).read_text())["paths"]
    assert entries[paths.VECTOR_CONFIG]["origin"] == "adopted"
    assert cli.main(["uninstall", "--root", str(tmp_path)], environ=env, stdout=io.StringIO()) == 0
    assert not (tmp_path / "etc/vector/vector.toml").exists()
    assert (tmp_path / "etc/foreign.conf").read_text() == "x\n"
    backups = list((tmp_path / "var/lib/actvt/backups").rglob("vector.toml"))
    assert "# the bash installer's\n" in [backup.read_text() for backup in backups]
    # on our own installs (a manifest exists) nothing is adopted this way
    from helpers import make_facts as facts_of

    assert migration.bash_files(facts_of(files={paths.STATE_FILE: b"x", manifest.MANIFEST: b"{}"})) == ()


def test_a_bash_install_on_an_apache_host_gets_the_apache_front_and_is_told_of_hand_made_proxies(tmp_path):
    """The bash installer printed instructions on an Apache host and configured no front: its state says
    proxy, Vector listens on 127.0.0.1 with nothing in front. The run sets Apache up (no nginx), says
    so, and a re-run converges."""
    from installer.commands import cli
    from installer.concerns import apache

    (tmp_path / "etc/vector").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    (tmp_path / "etc/vector/vector.toml").write_text("# the bash installer's, on 127.0.0.1:4096\n")
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("Package: apache2\nStatus: install ok installed\n"
                                                  "Version: 2.4.62-1~deb12u2\n\n")
    state = tmp_path / "var/lib/actvt"
    state.mkdir(parents=True)
    (state / "install.state").write_bytes(b"version=1.0.0\nmode=proxy\nwebserver=apache\nmtls=disabled\n")
    (state / "domain").write_text(DOMAIN + "\n")
    env = {"ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"}
    stdout = io.StringIO()
    assert cli.main(["--root", str(tmp_path), "--yes"], environ=env, stdout=stdout) == 0, stdout.getvalue()
    out = " ".join(stdout.getvalue().split())
    assert "ACTVT_INSTALL_MODE=proxy (not set; taken from /var/lib/actvt/install.state)" in out
    assert "set up by the bash installer, which did not configure Apache" in out and "ProxyPass" in out
    assert (tmp_path / apache.SITE.lstrip("/")).exists() and not (tmp_path / "etc/nginx").exists()
    assert "mode=proxy" in (state / "install.state").read_text()
    # our own install now (a manifest): the note is not repeated, nothing changes
    stdout = io.StringIO()
    assert cli.main(["--root", str(tmp_path), "--yes", "--json"], environ=env, stdout=stdout) == 0
    import json

    summary = json.loads(stdout.getvalue())
    assert summary["changed"] == 0 and summary["notes"] == [], summary
