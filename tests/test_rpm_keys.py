"""rpm's trusted keys (issue 21, leftover 2): recorded `rpm -q gpg-pubkey` output -> keys by full
fingerprint; the installer imports the pinned keys itself and records only those rpm did not trust;
a failed run's rollback takes them back; uninstall removes exactly the recorded ones by their full
name; whole runs on --root trees with Rocky's and Fedora's os-release."""

import dataclasses
import json

import pytest

from installer.concerns import vector
from installer.core import rpmkeys
from installer.core.actions import Command, File, Packages, Plan
from installer.core.concern import UninstallOptions
from installer.core.errors import ApplyError
from installer.core.facts import OSInfo, ProbeResult, gather
from installer.core.paths import Root
from installer.engine import engine
from installer.plans import registry
from installer.plans.registry import Context, Decisions

from helpers import RecordingRunner, make_config, make_facts, serving
from helpers import run_cli as run
from test_repo_key import OTHER, OTHER_FPR, PINNED, PINNED_FPR, USER_OK

CTX = Context(version="1.0.0", now="2026-12-07T00:00:00Z")
STANDALONE = Decisions(mode="standalone", webserver="none")
ROCKY = OSInfo(id="rocky", version_id="9.4", id_like=("rhel", "centos", "fedora"), pretty_name="Rocky Linux 9.4")


def rpm_q(*keys):
    """What `rpm -q gpg-pubkey --qf '%{NAME}-%{VERSION}-%{RELEASE}\\n%{DESCRIPTION}\\n'` prints: rpm keeps the
    armored key, with its own Version header, as the description."""
    if not keys:
        return ProbeResult(1, "package gpg-pubkey is not installed\n")
    out = ""
    for name, armored in keys:
        out += name + "\n" + armored.decode().replace("\n\n", "\nVersion: rpm-4.18.2\n\n", 1)
    return ProbeResult(0, out)


PINNED_NAME, OTHER_NAME = "gpg-pubkey-31553bae-6b0f5ff4", "gpg-pubkey-8a6d12f9-6b0f5ff4"


def dnf_facts(trusted=None, files=None, packages=None):
    probes = dict(USER_OK)
    if trusted is not None:
        probes[rpmkeys.TRUSTED.name] = trusted
    return dataclasses.replace(make_facts(files=files, probes=probes, packages=packages or {}), os=ROCKY,
                               package_manager="dnf")


def config(url="http://127.0.0.1:9"):
    return make_config(vector_key_url=f"{url}/both.asc", vector_key_fingerprints=f"{PINNED_FPR},{OTHER_FPR}",
                       vector_yum_url="http://127.0.0.1:9/vector-rpm/")


def package_actions(cfg, facts):
    return [action for step in vector.plan_vector_package(cfg, facts, STANDALONE, CTX) for action in step.actions]


def test_the_probe_names_each_key_by_its_full_fingerprint():
    assert rpmkeys.parse_trusted(rpm_q((PINNED_NAME, PINNED), (OTHER_NAME, OTHER))) == {
        PINNED_FPR: (PINNED_NAME,), OTHER_FPR: (OTHER_NAME,)}
    # a key under two names (imported twice, or a subkey's own header): both are its
    assert rpmkeys.parse_trusted(rpm_q((PINNED_NAME, PINNED), ("gpg-pubkey-0000beef-6b0f5ff4", PINNED))) == {
        PINNED_FPR: (PINNED_NAME, "gpg-pubkey-0000beef-6b0f5ff4")}
    assert rpmkeys.parse_trusted(rpm_q()) == {}  # rpm trusts no key
    assert rpmkeys.parse_trusted(ProbeResult(1, "error: rpmdb open failed\n")) is None  # nothing known
    assert rpmkeys.short_name(PINNED_FPR) == "gpg-pubkey-31553bae"
    assert rpmkeys.TRUSTED.when(dnf_facts()) and not rpmkeys.TRUSTED.when(make_facts())  # not on apt hosts


def test_the_keys_rpm_did_not_trust_are_imported_before_the_package_and_recorded():
    cfg = config()
    actions = package_actions(cfg, dnf_facts(rpm_q()))
    kinds = [type(action).__name__ for action in actions]
    assert kinds.index("Command") < kinds.index("Packages"), kinds  # before dnf could import them itself
    [record] = [a for a in actions if isinstance(a, File) and a.path == rpmkeys.RECORD]
    assert record.mode == 0o600 and rpmkeys.record_lines(record.content) == [PINNED_FPR, OTHER_FPR]
    [imported] = [a for a in actions if isinstance(a, Command) and a.argv[:2] == ("rpm", "--import")]
    assert imported.argv == ("rpm", "--import", vector.keyring_path(cfg, "dnf"))
    assert imported.on_rollback == (("rpm", "-e", "gpg-pubkey-31553bae"), ("rpm", "-e", "gpg-pubkey-8a6d12f9"))


def test_a_key_the_user_trusted_before_is_never_recorded():
    actions = package_actions(config(), dnf_facts(rpm_q((PINNED_NAME, PINNED))))
    [record] = [a for a in actions if isinstance(a, File) and a.path == rpmkeys.RECORD]
    assert rpmkeys.record_lines(record.content) == [OTHER_FPR]
    [imported] = [a for a in actions if isinstance(a, Command) and a.argv[:2] == ("rpm", "--import")]
    assert imported.on_rollback == (("rpm", "-e", "gpg-pubkey-8a6d12f9"),)
    # all trusted: nothing to import, nothing recorded
    actions = package_actions(config(), dnf_facts(rpm_q((PINNED_NAME, PINNED), (OTHER_NAME, OTHER))))
    assert not [a for a in actions if isinstance(a, Command) and a.argv[0] == "rpm"]
    assert not [a for a in actions if isinstance(a, File) and a.path == rpmkeys.RECORD]


def test_a_users_key_with_the_same_short_id_is_never_a_rollback_target():
    impostor = "0" * 32 + PINNED_FPR[-8:]
    assert rpmkeys.rollback_argvs([PINNED_FPR, OTHER_FPR], {impostor: (PINNED_NAME,)}) == (
        ("rpm", "-e", "gpg-pubkey-8a6d12f9"),)


def test_a_rerun_where_rpm_trusts_the_keyrings_keys_changes_nothing():
    cfg = config()
    keyring = vector.keyring_path(cfg, "dnf")
    files = {keyring: PINNED + OTHER, vector.YUM_REPO: vector.yum_repo_text(cfg, "dnf"),
             rpmkeys.RECORD: rpmkeys.record_text([PINNED_FPR, OTHER_FPR])}
    trusted = rpm_q((PINNED_NAME, PINNED), (OTHER_NAME, OTHER))
    assert package_actions(cfg, dnf_facts(trusted, files=files, packages={"vector": "0.50.0-1"})) == []
    # a key removed from rpm since (by hand): imported again, the record keeps its lines once
    actions = package_actions(cfg, dnf_facts(rpm_q((PINNED_NAME, PINNED)), files=files,
                                             packages={"vector": "0.50.0-1"}))
    [record] = [a for a in actions if isinstance(a, File)]
    assert rpmkeys.record_lines(record.content) == [PINNED_FPR, OTHER_FPR]
    assert [a.argv for a in actions if isinstance(a, Command)][0][:2] == ("rpm", "--import")


def test_uninstall_removes_exactly_the_recorded_keys_by_their_full_name():
    record = rpmkeys.record_text([PINNED_FPR, OTHER_FPR])
    options = UninstallOptions(purge=False, remove_vector=False)
    # OTHER is no longer trusted (removed by hand): nothing to remove for it
    facts = dnf_facts(rpm_q((PINNED_NAME, PINNED)), files={rpmkeys.RECORD: record})
    [step] = vector.uninstall_keys({}, facts, options)
    commands = [a.argv for a in step.actions if isinstance(a, Command)]
    assert commands == [("rpm", "-e", PINNED_NAME)]
    assert all(a.may_fail for a in step.actions if isinstance(a, Command))
    assert vector.uninstall_keys({}, dnf_facts(rpm_q()), options) == []  # no record: nothing
    assert rpmkeys.TRUSTED in registry.uninstall_probes()  # uninstall runs the probe (its full names)


def test_a_failed_run_takes_the_imported_keys_back(tmp_path, monkeypatch):
    """Applied on a tree as on a host (the keyring downloaded from 127.0.0.1, commands through a
    recording runner): dnf fails after the import, the rollback removes the keys and the record."""
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    monkeypatch.setattr(Root, "host", lambda self, p: str(tmp_path / p.lstrip("/")))
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    (tmp_path / "etc/pki/rpm-gpg").mkdir(parents=True)
    (tmp_path / "var/lib/actvt").mkdir(parents=True, mode=0o700)
    with serving({"/both.asc": PINNED + OTHER}) as url:
        cfg = config(url)
        steps = vector.plan_vector_package(cfg, dnf_facts(rpm_q()), STANDALONE, CTX)
        runner = RecordingRunner(fail_on=("dnf",))
        eng = engine.Engine(Root(str(tmp_path)), runner, manage_owner=False)
        items = eng.check(Plan(tuple(steps)))
        with pytest.raises(ApplyError):
            eng.apply(items)
    ran = [argv for argv in runner.calls if argv[0] == "rpm"]
    assert ("rpm", "--import", vector.keyring_path(cfg, "dnf")) in ran
    assert sorted(ran[-2:]) == [("rpm", "-e", "gpg-pubkey-31553bae"), ("rpm", "-e", "gpg-pubkey-8a6d12f9")], ran
    assert not (tmp_path / rpmkeys.RECORD.lstrip("/")).exists()


def make_root(tmp_path, os_release):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(os_release)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/dnf").write_text("")
    return tmp_path


RHEL_ENV = {"ACTVT_VECTOR_KEY_URL": "http://127.0.0.1:9/key.asc", "ACTVT_VECTOR_KEY_FINGERPRINTS": PINNED_FPR}
ROCKY_RELEASE = 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4"\n'
FEDORA_RELEASE = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41 (Server Edition)"\n'


@pytest.mark.parametrize("release", [ROCKY_RELEASE, FEDORA_RELEASE], ids=["rocky9", "fedora41"])
def test_install_and_uninstall_on_a_tree_of_the_family(tmp_path, release):
    root = make_root(tmp_path, release)
    status, out = run(["--root", str(root), "--dry-run"], RHEL_ENV)
    assert status == 0, out
    assert "run rpm --import /etc/pki/rpm-gpg/actvt-vector-" in out, out
    assert "install packages (dnf): vector=" in out, out
    record = root / rpmkeys.RECORD.lstrip("/")
    assert not record.exists()

    status, out = run(["--root", str(root), "--json"], RHEL_ENV)
    assert status == 0, out
    assert rpmkeys.record_lines(record.read_bytes()) == [PINNED_FPR]
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert rpmkeys.RECORD in json.loads((root / "var/lib/actvt/manifest.json").read_text())["paths"]

    status, out = run(["uninstall", "--dry-run", "--root", str(root)])
    assert status == 0 and "run rpm -e gpg-pubkey-31553bae" in out, out
    status, out = run(["uninstall", "--root", str(root)])
    assert status == 0 and not record.exists(), out


def test_an_apt_host_plans_no_rpm_key(tmp_path):
    facts = make_facts(probes=USER_OK)
    actions = package_actions(make_config(), facts)
    assert not [a for a in actions if isinstance(a, Command) and a.argv[0] == "rpm"]
    assert [a for a in actions if isinstance(a, Packages)]


def test_uninstall_gathers_the_concerns_uninstall_probes(tmp_path, monkeypatch):
    """The full names come from a probe run at uninstall time: `actvt uninstall` asks gather for it."""
    from installer.commands import uninstall

    root = make_root(tmp_path, ROCKY_RELEASE)
    assert run(["--root", str(root)], RHEL_ENV)[0] == 0
    asked = []
    real = uninstall.host_facts.gather

    def gather_spy(*args, **kwargs):
        asked.extend(kwargs.get("probes", ()))
        return real(*args, **kwargs)

    monkeypatch.setattr(uninstall.host_facts, "gather", gather_spy)
    status, out = run(["uninstall", "--dry-run", "--root", str(root)])
    assert status == 0, out
    assert rpmkeys.TRUSTED in asked
