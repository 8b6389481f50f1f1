"""Another package manager is running (issue 14, item 1): the engine waits for the locks a package
command takes, says in one line who holds them and for how long it waits, fails clearly after the
bound, and runs a command again that failed because the lock was taken meanwhile. The holder is a
real process holding a real fcntl lock, as apt and unattended-upgrades take it."""

import dataclasses
import os
import subprocess
import sys
import time

import pytest

from installer.concerns import packages, vector
from installer.core import config, packaging
from installer.core.actions import Command, Packages, Plan, Step
from installer.core.concern import UninstallOptions
from installer.core.errors import ApplyError, ConfigError
from installer.core.paths import Root
from installer.engine import engine, pkglock
from installer.plans.registry import Context, Decisions

from helpers import RecordingRunner, make_config, make_facts

HOLD = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)  # F_SETLKW on the whole file, as apt's GetLock takes it
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def holder(tmp_path):
    """holder(path, seconds): a process named like unattended-upgrades holding ``path``'s lock."""
    script = tmp_path / "unattended-upgrade"  # the kernel names it after its file: "unattended-upgr"
    script.write_text(f"#!{sys.executable}\n{HOLD}")
    script.chmod(0o755)
    started = []

    def hold(path, seconds):
        child = subprocess.Popen([str(script), str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "held\n"
        started.append(child)
        return child

    yield hold
    for child in started:
        child.kill()
        child.wait()


@pytest.fixture
def host(tmp_path, monkeypatch):
    """The engine acting as on a host, with every server path under tmp_path (the lock files too)."""
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    monkeypatch.setattr(Root, "host", lambda self, p: str(tmp_path / p.lstrip("/")))
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    return tmp_path


def make_engine(root, timeout, runner=None):
    notices = []
    eng = engine.Engine(Root(str(root)), runner or RecordingRunner(), manage_owner=False, lock_timeout=timeout,
                        notify=notices.append)
    return eng, notices


def run_plan(eng, *actions):
    return eng.apply(eng.check(Plan((Step("Installing Vector", actions),))))


FRONTEND = "var/lib/dpkg/lock-frontend"


def test_the_holder_is_named_from_the_kernel(host, holder):
    child = holder(host / FRONTEND, 30)
    found = pkglock.holder(packaging.DPKG_FRONTEND, str(host / FRONTEND))
    assert (found.pid, found.name) == (child.pid, "unattended-upgr")
    assert found.describe() == f"unattended-upgr (pid {child.pid}) holds /var/lib/dpkg/lock-frontend"
    child.kill()
    child.wait()
    assert pkglock.holder(packaging.DPKG_FRONTEND, str(host / FRONTEND)) is None  # released with its process
    assert pkglock.holder(packaging.DPKG_FRONTEND, str(host / "no/such/lock")) is None


def test_a_dnf_pid_file_names_a_living_process_only(tmp_path):
    lock = packaging.Lock("/var/lib/dnf/rpmdb_lock.pid", packaging.PIDFILE)
    path = tmp_path / "rpmdb_lock.pid"
    sleeper = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 10
    while pkglock._comm(sleeper.pid) != "sleep" and time.monotonic() < deadline:  # until it has exec()ed
        time.sleep(0.01)
    try:
        path.write_text(str(sleeper.pid))
        assert pkglock.holder(lock, str(path)) == pkglock.Holder(lock.path, sleeper.pid, "sleep")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert pkglock.holder(lock, str(path)) is None  # left by a process that is gone


def test_the_install_waits_for_the_lock_and_says_so_once(host, holder):
    child = holder(host / FRONTEND, 1.5)
    eng, notices = make_engine(host, timeout=30)
    started = time.monotonic()
    run_plan(eng, Packages("apt", ("vector=0.50.0-1",)))
    waited = time.monotonic() - started
    assert 1.0 < waited < 10
    assert notices == [f"another package manager is running: unattended-upgr (pid {child.pid}) holds "
                       "/var/lib/dpkg/lock-frontend; waiting for it, at most 30 s (ACTVT_PACKAGE_LOCK_TIMEOUT)"]
    [install] = [argv for argv in eng.runner.calls if argv[0] == "apt-get"]
    assert install[:3] == ("apt-get", "-o", "DPkg::Lock::Timeout=30")  # apt's own wait for the moment after ours
    assert child.poll() is not None, "apt ran only after the holder let go"


def test_after_the_bound_it_fails_clearly_and_runs_nothing(host, holder):
    child = holder(host / FRONTEND, 30)
    eng, notices = make_engine(host, timeout=1)
    with pytest.raises(ApplyError) as info:
        run_plan(eng, Packages("apt", ("vector=0.50.0-1",)))
    message = str(info.value)
    assert message.splitlines()[0] == (
        f"another package manager still holds its lock after 1 s: unattended-upgr (pid {child.pid}) holds "
        "/var/lib/dpkg/lock-frontend (not run: install packages (apt): vector=0.50.0-1). Let it finish (or give "
        "it more time with ACTVT_PACKAGE_LOCK_TIMEOUT) and run the installer again")
    assert message.splitlines()[-1] == "nothing else was changed; running the installer again is safe"
    assert len(notices) == 1
    assert not [argv for argv in eng.runner.calls if argv[0] == "apt-get"]


def test_a_bound_of_zero_does_not_wait(host, holder):
    holder(host / FRONTEND, 30)
    eng, _ = make_engine(host, timeout=0)
    started = time.monotonic()
    with pytest.raises(ApplyError):
        run_plan(eng, Command(("dpkg", "--configure", "-a"), locks=packaging.DPKG))
    assert time.monotonic() - started < 2


def test_a_command_that_lost_the_race_for_the_lock_runs_again(host, holder):
    """Free when looked at, taken before apt got it (apt-daily starting): apt fails at once; the engine
    waits for the new holder and runs it again."""
    children = []

    class Racing(RecordingRunner):
        def run(self, argv, **kwargs):
            result = super().run(argv, **kwargs)
            if tuple(argv[:2]) == ("apt-get", "update") and len(self.calls) == 1:
                children.append(holder(host / "var/lib/apt/lists/lock", 1))
                return subprocess.CompletedProcess(argv, 100, "", "E: Could not get lock /var/lib/apt/lists/lock")
            return result

    (host / "var/lib/apt/lists").mkdir(parents=True)
    eng, notices = make_engine(host, timeout=30, runner=Racing())
    run_plan(eng, Command(("apt-get", "update", "-q"), locks=packaging.APT_LISTS))
    assert eng.runner.calls == [("apt-get", "update", "-q"), ("apt-get", "update", "-q")]
    assert len(notices) == 1 and f"(pid {children[0].pid}) holds /var/lib/apt/lists/lock" in notices[0]


def test_a_command_failing_for_its_own_reason_is_not_run_again(host):
    eng, notices = make_engine(host, timeout=30, runner=RecordingRunner(fail_on=("apt-get update",)))
    with pytest.raises(ApplyError) as info:
        run_plan(eng, Command(("apt-get", "update", "-q"), locks=packaging.APT_LISTS))
    assert "apt-get update -q failed (exit 1): simulated" in str(info.value)
    assert eng.runner.calls == [("apt-get", "update", "-q")] and notices == []


# --- what the planners ask for -------------------------------------------------------------------

CTX = Context(version="1.0.0", now="2026-11-26T00:00:00Z")
STANDALONE = Decisions(mode="standalone", webserver="none")


def test_every_package_command_names_its_locks():
    cfg = make_config(package_lock_timeout="45", reinstall_vector="yes")
    facts = make_facts(files={"/var/lib/dpkg/updates/0001": b""}, packages={"vector": "0.49.0-1"})
    [repair] = packages.plan_dpkg_repair(cfg, facts, STANDALONE, CTX)[0].actions
    assert repair.locks == packaging.DPKG  # dpkg alone: apt's option does not cover it
    steps = vector.plan_vector_package(cfg, facts, STANDALONE, CTX)
    commands = {action.argv[-1]: action for action in steps[0].actions if isinstance(action, Command)}
    assert commands["-q"].locks == packaging.APT_LISTS
    assert commands["vector=0.50.0-1"].locks == packaging.APT_INSTALL
    assert commands["vector=0.50.0-1"].argv[1:3] == ("-o", "DPkg::Lock::Timeout=45")
    options = UninstallOptions(remove_vector=True, package_lock_timeout=45)
    [remove] = vector.uninstall_package({}, facts, options)[0].actions
    assert remove.argv[:4] == ("apt-get", "-o", "DPkg::Lock::Timeout=45", "remove")
    assert remove.locks == packaging.APT_INSTALL
    dnf_host = dataclasses.replace(make_facts(packages={"vector": "0.49.0-1"}), package_manager="dnf")
    rpm = vector.plan_vector_package(cfg, dnf_host, STANDALONE, CTX)
    assert [a.locks for a in rpm[0].actions if isinstance(a, Command) and a.argv[0] == "dnf"] == [packaging.RPM]


def test_the_bound_is_a_validated_variable():
    assert config.parse_one({}, "ACTVT_PACKAGE_LOCK_TIMEOUT") == 600
    assert config.parse_one({"ACTVT_PACKAGE_LOCK_TIMEOUT": "0"}, "ACTVT_PACKAGE_LOCK_TIMEOUT") == 0
    with pytest.raises(ConfigError) as info:
        config.parse_one({"ACTVT_PACKAGE_LOCK_TIMEOUT": "10m"}, "ACTVT_PACKAGE_LOCK_TIMEOUT")
    assert info.value.problems == ["ACTVT_PACKAGE_LOCK_TIMEOUT: '10m' is not a whole number of seconds in range; "
                                   "allowed: a whole number of seconds from 0 (do not wait) to 86400"]


def test_uninstall_refuses_a_bad_bound_before_anything(tmp_path, capsys):
    from installer.commands import cli

    status = cli.main(["uninstall", "--root", str(tmp_path)], {"ACTVT_PACKAGE_LOCK_TIMEOUT": "soon"})
    assert status == 2 and os.listdir(tmp_path) == []
    assert "ACTVT_PACKAGE_LOCK_TIMEOUT: 'soon' is not a whole number of seconds" in capsys.readouterr().err
