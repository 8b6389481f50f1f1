"""The engine: check, atomic writes with final modes, backups, idempotence, rollback."""

import os
import stat

import pytest

from installer.engine import engine
from installer.core import paths
from installer.core.actions import Absent, Command, Copy, Directory, File, Plan, Service, Step, Symlink
from installer.core.errors import ApplyError
from installer.core.paths import Root

from helpers import RecordingRunner, tree_digest


def make_engine(root, runner=None):
    return engine.Engine(Root(str(root)), runner or RecordingRunner(), manage_owner=False)


def plan_of(*actions, title="Step"):
    return Plan((Step(title, tuple(actions)),))


def apply(eng, plan):
    return eng.apply(eng.check(plan))


def test_new_files_get_their_mode_and_parents(tmp_path):
    eng = make_engine(tmp_path)
    result = apply(eng, plan_of(File("/etc/x/key.pem", b"secret", 0o600, sensitive=True),
                                File("/etc/x/pub.pem", b"public", 0o644)))
    assert len(result.changed) == 2
    assert stat.S_IMODE(os.stat(tmp_path / "etc/x/key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "etc/x/pub.pem").st_mode) == 0o644
    assert (tmp_path / "etc/x/key.pem").read_bytes() == b"secret"
    assert not [n for n in os.listdir(tmp_path / "etc/x") if n.startswith(".")], "no temporary file is left"


def test_a_key_is_never_readable_by_others_while_written(tmp_path, monkeypatch):
    """Every byte goes into a file that already has the final (private) mode."""
    seen = []
    real_fdopen = os.fdopen

    def spying_fdopen(fd, *args, **kwargs):
        seen.append((stat.S_IMODE(os.fstat(fd).st_mode), os.fstat(fd).st_size))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(engine.os, "fdopen", spying_fdopen)
    apply(make_engine(tmp_path), plan_of(File("/k.pem", b"-----BEGIN PRIVATE KEY-----", 0o600, sensitive=True)))
    assert seen == [(0o600, 0)]


def test_second_apply_changes_nothing(tmp_path):
    eng = make_engine(tmp_path)
    plan = plan_of(Directory("/var/lib/actvt", 0o700), File("/var/lib/actvt/a", b"1\n", 0o644),
                   Symlink("/etc/link", "/var/lib/actvt/a"))
    assert len(apply(eng, plan).changed) == 3
    before = tree_digest(tmp_path)
    items = eng.check(plan)
    assert [item.status for item in items] == [engine.OK] * 3
    assert apply(eng, plan).changed == [] and tree_digest(tmp_path) == before


def test_mode_drift_is_reported_and_fixed_without_a_diff(tmp_path):
    eng = make_engine(tmp_path)
    plan = plan_of(File("/f", b"same\n", 0o600))
    apply(eng, plan)
    os.chmod(tmp_path / "f", 0o644)
    [item] = eng.check(plan)
    assert (item.status, item.why, item.diff) == (engine.CHANGE, "mode 0644 -> 0600", "")
    apply(eng, plan)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o600


def test_diff_shows_changes_but_never_secrets(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/conf").write_text("a=1\nb=2\n")
    (tmp_path / "etc/key").write_text("OLD-SECRET\n")
    eng = make_engine(tmp_path)
    eng.installer_files = frozenset({"/etc/conf"})  # the manifest says the installer made it: all its lines are its own
    conf, key = eng.check(plan_of(File("/etc/conf", b"a=1\nb=3\n"), File("/etc/key", b"NEW-SECRET\n", 0o600,
                                                                           sensitive=True)))
    assert "-b=2\n+b=3" in conf.diff and conf.diff.startswith("--- /etc/conf")
    assert "SECRET" not in key.diff and "not shown" in key.diff
    eng.installer_files = frozenset()  # someone else's file: its removed line is counted, not shown
    conf, key = eng.check(plan_of(File("/etc/conf", b"a=1\nb=3\n"), File("/etc/key", b"NEW-SECRET\n", 0o600,
                                                                           sensitive=True)))
    assert "b=2" not in conf.diff and "+b=3" in conf.diff and "1 removed" in conf.diff


def test_replaced_file_is_backed_up_in_a_private_folder(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/conf").write_text("old\n")
    os.chmod(tmp_path / "etc/conf", 0o640)
    result = apply(make_engine(tmp_path), plan_of(File("/etc/conf", b"new\n")))
    assert result.backup_dir.startswith(paths.BACKUP_DIR + "/")
    copy = tmp_path / result.backup_dir.lstrip("/") / "etc/conf"
    assert copy.read_text() == "old\n" and stat.S_IMODE(os.stat(copy).st_mode) == 0o640
    for folder in (tmp_path / "var/lib/actvt", tmp_path / "var/lib/actvt/backups", copy.parent.parent):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_failure_puts_files_back_and_says_a_rerun_is_safe(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/conf").write_text("old\n")
    before = tree_digest(tmp_path)
    runner = RecordingRunner(fail_on=("nginx -t",))
    eng = engine.Engine(Root(str(tmp_path)), runner, manage_owner=False)
    eng.root = Root(str(tmp_path))
    plan = plan_of(File("/etc/conf", b"new\n"), File("/etc/new/site", b"x"),
                   Command(("nginx", "-t"), "check nginx"))
    items = eng.check(plan)
    # commands are listed, not run, under --root: force this one to run for the test
    items[-1].status = engine.CHANGE
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    assert "nginx -t failed" in str(info.value) and "running the installer again is safe" in str(info.value)
    after = [entry for entry in tree_digest(tmp_path) if not entry[0].startswith("var")]
    assert after == before


def test_commands_and_services_are_listed_not_run_under_root(tmp_path):
    runner = RecordingRunner()
    eng = make_engine(tmp_path, runner)
    items = eng.check(plan_of(Command(("ufw", "allow", "80/tcp")), Service("vector")))
    assert [item.status for item in items] == [engine.SKIP, engine.SKIP]
    eng.apply(items)
    assert runner.calls == []


def test_service_restarts_only_when_an_input_changed(tmp_path, monkeypatch):
    runner = RecordingRunner(answers={"systemctl is-active vector": "active\n",
                                      "systemctl is-enabled vector": "enabled\n"})
    eng = make_engine(tmp_path, runner)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    monkeypatch.setattr(Root, "host", lambda self, p: os.path.join(str(tmp_path), p.lstrip("/")))
    plan = plan_of(File("/etc/vector/vector.toml", b"a"), Service("vector", restart_when_changed=("/etc/vector/vector.toml",)))
    items = eng.check(plan)
    assert items[1].why == "restart: changed /etc/vector/vector.toml"
    eng.apply(items)
    assert ("systemctl", "restart", "vector") in runner.calls
    runner.calls.clear()
    items = eng.check(plan)
    assert [i.status for i in items] == [engine.OK, engine.OK]
    eng.apply(items)
    assert not [c for c in runner.calls if c[1] in ("restart", "start")]


def test_absent_removes_and_backs_up(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/old").write_text("x")
    result = apply(make_engine(tmp_path), plan_of(Absent("/etc/old")))
    assert not (tmp_path / "etc/old").exists()
    assert (tmp_path / result.backup_dir.lstrip("/") / "etc/old").read_text() == "x"


def test_a_service_that_does_not_become_active_fails_with_its_journal(tmp_path, monkeypatch):
    runner = RecordingRunner(answers={"systemctl is-active vector": "failed\n",
                                      "journalctl -u vector -n 20 --no-pager": "vector[1]: bad config\n",
                                      "vector validate": "x: missing TLS file\n"})
    eng = make_engine(tmp_path, runner)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    items = eng.check(plan_of(Service("vector", wait_seconds=0, diagnose=(("vector", "validate"),))))
    assert items[0].why == "enable; start"
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    text = str(info.value)
    assert "vector is failed after 0 s" in text and "bad config" in text and "missing TLS file" in text


def test_stopping_a_service_does_not_wait_for_it_to_be_active(tmp_path, monkeypatch):
    """Uninstall stops Vector: the stop is the goal, not a failed start (seen on a real host: the
    uninstall waited 30 s for "active" and then failed)."""
    runner = RecordingRunner(answers={"systemctl is-active vector": "active\n",
                                      "systemctl is-enabled vector": "enabled\n"})
    eng = make_engine(tmp_path, runner)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    items = eng.check(plan_of(Service("vector", enabled=False, running=False, wait_seconds=0)))
    assert items[0].why == "disable; stop"
    runner.answers["systemctl is-active vector"] = "inactive\n"
    eng.apply(items)
    assert ("systemctl", "stop", "vector") in runner.calls and ("systemctl", "disable", "vector") in runner.calls


def test_a_command_allowed_to_fail_warns_and_goes_on(tmp_path, monkeypatch):
    runner = RecordingRunner(fail_on=("certbot renew",))
    eng = make_engine(tmp_path, runner)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    items = eng.check(plan_of(Command(("certbot", "renew", "--dry-run"), may_fail=True), Command(("true",))))
    eng.apply(items)
    assert runner.calls == [("certbot", "renew", "--dry-run"), ("true",)]
    assert eng.warnings and "going on" in eng.warnings[0]


def test_a_started_service_must_listen_on_its_ports(tmp_path, monkeypatch):
    import socket

    class Starting(RecordingRunner):
        """inactive before `systemctl start`, active after"""

        def run(self, argv, **kwargs):
            started = ("systemctl", "start", "vector") in self.calls
            self.answers["systemctl is-active vector"] = "active\n" if started else "inactive\n"
            return super().run(argv, **kwargs)

    eng = engine.Engine(Root("/"), Starting(), manage_owner=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        items = eng.check(plan_of(Service("vector", wait_seconds=2, ports=(port,))))
        eng.apply(items)  # listening: fine
    eng = engine.Engine(Root("/"), Starting(), manage_owner=False)
    items = eng.check(plan_of(Service("vector", wait_seconds=1, ports=(port,))))
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    assert f"vector is active but nothing listens on port(s) {port} after 1 s" in str(info.value)


def test_a_large_copy_from_this_machine_is_compared_and_written_in_blocks(tmp_path):
    """The kept zipapp (tens of MB) is never read whole: not to compare it, not to write it."""
    import tracemalloc

    size = 8 * 1024 * 1024
    source = tmp_path / "cache.pyz"
    source.write_bytes(os.urandom(size))
    root = tmp_path / "root"
    root.mkdir()
    eng = make_engine(root)
    plan = plan_of(Copy("/usr/local/lib/actvt/actvt.pyz", str(source), 0o755, host_source=True))
    [item] = eng.check(plan)
    assert item.status == engine.CHANGE and "copied from" in item.diff
    tracemalloc.start()
    try:
        eng.apply(eng.check(plan))
        assert [i.status for i in eng.check(plan)] == [engine.OK]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 2, f"peak {peak} bytes while copying {size}"  # whole: more than size
    assert (root / "usr/local/lib/actvt/actvt.pyz").read_bytes() == source.read_bytes()
    (root / "usr/local/lib/actvt/actvt.pyz").write_bytes(source.read_bytes()[:-1] + b"x")
    assert eng.check(plan)[0].why == "content"
