"""The install run's mTLS planner on a --root tree: every row of the reuse/regeneration matrix,
adoption of a CA made by the old guide's manual steps (docs/mtls.md), refusals that change nothing, modes and owners
(key files 0600 from the first byte), the index, the CRL, generate-client.sh and idempotent re-runs."""

import json
import os
import pwd
import stat
import subprocess

import pytest

from installer.engine import engine
from installer.concerns import mtls
from installer.core import paths, records
from installer.concerns import pki
from installer.commands.cli import main
from installer.core.errors import ActvtError, UsageError
from installer.core.facts import gather
from installer.core.paths import client_bundle as bundle_path, client_cert as cert_path, client_key as key_path
from installer.core.paths import Root
from installer.plans.registry import Context, build_plan, reads

from helpers import RecordingRunner, make_config, tree_digest

FIRST = "actvt-client-001"


@pytest.fixture(autouse=True)
def small_ca_keys(monkeypatch, request):
    """RSA 4096 CA keys are slow to make; the test that checks the size keeps them."""
    if not request.node.name.startswith("test_first_install"):
        monkeypatch.setattr(pki, "CA_RSA_BITS", 2048)


def host(root, path):
    return Root(str(root)).host(path)


def read(root, path) -> bytes:
    with open(host(root, path), "rb") as handle:
        return handle.read()


def mode(root, path) -> int:
    return stat.S_IMODE(os.stat(host(root, path)).st_mode)


def install(root, answers=None, sudo_user=None, manage_owner=False, **values):
    """Plan from the tree's facts and apply: (plan, checked items)."""
    cfg = make_config(enable_mtls="yes", **values)
    facts = gather(Root(str(root)), {"SUDO_USER": sudo_user} if sudo_user else {}, reads=reads(None))
    ctx = Context(version="1.0.0", now=mtls.iso(pki.now_utc()), answers=answers or {})
    plan = build_plan(cfg, facts, ctx)
    eng = engine.Engine(Root(str(root)), RecordingRunner(), manage_owner=manage_owner)
    items = eng.check(plan)
    eng.apply(items)
    return plan, items


def changed(items):
    return [item.action.path for item in items if item.changed]


def verify(root, name) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
                           host(root, paths.CA_CERT), host(root, cert_path(name))], capture_output=True, text=True)


def serial(root, name) -> int:
    return pki.load_cert(read(root, cert_path(name))).serial_number


def index(root) -> dict:
    return json.loads(read(root, paths.MTLS_INDEX))


# --- first install ---------------------------------------------------------------------------------


def test_first_install_makes_the_seed_files_with_safe_modes(tmp_path):
    plan, items = install(tmp_path)
    for path, want in ((paths.MTLS_DIR, 0o755), (paths.MTLS_CLIENTS_DIR, 0o755), (paths.CA_CERT, 0o644),
                       (paths.CA_KEY, 0o600), (cert_path(FIRST), 0o644), (key_path(FIRST), 0o600),
                       (bundle_path(FIRST), 0o600), (paths.GENERATE_CLIENT, 0o755), (paths.MTLS_CRL, 0o644),
                       (paths.MTLS_INDEX, 0o644)):
        assert mode(tmp_path, path) == want, path
    assert verify(tmp_path, FIRST).returncode == 0
    ca = pki.load_cert(read(tmp_path, paths.CA_CERT))
    assert ca.public_key().key_size == 4096 and pki.ca_problems(ca) == []
    assert read(tmp_path, paths.CA_KEY).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert read(tmp_path, key_path(FIRST)).startswith(b"-----BEGIN PRIVATE KEY-----")
    listing = subprocess.run(["tar", "-tzf", host(tmp_path, bundle_path(FIRST))], capture_output=True, text=True)
    assert listing.stdout.splitlines() == [f"clients/{FIRST}.crt", f"clients/{FIRST}.key"]
    entries = index(tmp_path)["certificates"]
    assert [(e["name"], e["status"], e["serial"]) for e in entries] == [(FIRST, "active", pki.serial_hex(serial(tmp_path, FIRST)))]
    assert entries[0]["fingerprint_sha256"] == pki.fingerprint(pki.load_cert(read(tmp_path, cert_path(FIRST))))
    crl = pki.read_crl(read(tmp_path, paths.MTLS_CRL), ca)
    assert crl.serials == frozenset() and crl.number == 1
    script = read(tmp_path, paths.GENERATE_CLIENT).decode()
    assert script.startswith("#!/bin/sh") and f'"${{ACTVT_INTERNAL_COMMAND:-{paths.COMMAND}}}"' in script
    assert "client issue" in script and "@" + "MTLS_DIR@" not in script
    # secrets are never diffed
    diffs = {item.action.path: item.diff for item in items if hasattr(item.action, "content")}
    for secret in (paths.CA_KEY, key_path(FIRST), bundle_path(FIRST)):
        assert "not shown" in diffs[secret] and "PRIVATE" not in diffs[secret]


def test_a_rerun_changes_nothing(tmp_path):
    install(tmp_path, mtls_client_days="30")
    before = tree_digest(tmp_path / "etc")
    plan, items = install(tmp_path, mtls_client_days="30")
    assert changed(items) == [] and tree_digest(tmp_path / "etc") == before


def test_mtls_off_plans_nothing_and_leaves_material_alone(tmp_path):
    install(tmp_path)
    before = tree_digest(tmp_path / "etc")
    cfg = make_config(enable_mtls="no")
    facts = gather(Root(str(tmp_path)), {}, reads=reads(None))
    plan = build_plan(cfg, facts, Context(version="1.0.0", now=mtls.iso(pki.now_utc())))
    assert not [a for a in plan.actions if getattr(a, "path", "").startswith(paths.MTLS_DIR)]
    assert mtls.plan_mtls(cfg, facts, None, None) == []
    assert tree_digest(tmp_path / "etc") == before


# --- the reuse / regeneration matrix ---------------------------------------------------------------


def extra_client(root, name="actvt-client-002"):
    """A second client, as generate-client.sh would have made it."""
    assert main(["client", "issue", name, "--root", str(root)], {}, stdout=open(os.devnull, "w")) == 0
    return name


@pytest.mark.parametrize("reuse,regen", [("yes", "no"), ("yes", "yes"), ("no", "no"), ("no", "yes")])
def test_matrix(tmp_path, reuse, regen):
    install(tmp_path)
    second = extra_client(tmp_path)
    ca_before = read(tmp_path, paths.CA_CERT), read(tmp_path, paths.CA_KEY)
    serials = {name: serial(tmp_path, name) for name in (FIRST, second)}
    plan, items = install(tmp_path, reuse_mtls_ca=reuse, regen_client_cert=regen)
    ca_after = read(tmp_path, paths.CA_CERT), read(tmp_path, paths.CA_KEY)
    new = {name: serial(tmp_path, name) != serials[name] for name in (FIRST, second)}
    if reuse == "yes":
        assert ca_after == ca_before
        assert new == {FIRST: regen == "yes", second: False}
    else:
        assert ca_after[0] != ca_before[0] and ca_after[1] != ca_before[1]
        assert new == {FIRST: True, second: True}  # every client re-issued under the new CA
        title = [step.title for step in plan.steps if "client" in step.title][0]
        assert "re-issuing 2 under the new CA" in title
    for name in (FIRST, second):
        assert verify(tmp_path, name).returncode == 0, name
        members = pki.bundle_members(read(tmp_path, bundle_path(name)))
        assert members[f"clients/{name}.crt"] == read(tmp_path, cert_path(name))
        assert members[f"clients/{name}.key"] == read(tmp_path, key_path(name))
    # every replaced file was backed up first
    backups = tmp_path / "var/lib/actvt/backups"
    replaced = [path for path in changed(items) if path.startswith(paths.MTLS_DIR) and path != paths.MTLS_CRL]
    for path in replaced:
        if path in (paths.CA_CERT, paths.CA_KEY, cert_path(FIRST), key_path(FIRST)):
            assert list(backups.glob("*" + path)), path
    # index: the re-issued ones are recorded, the old ones replaced
    entries = index(tmp_path)["certificates"]
    for name in (FIRST, second):
        states = [e["status"] for e in entries if e["name"] == name]
        assert states[-1] == "active" and states.count("active") == 1
        assert len(states) == (2 if new[name] else 1)
    # the summary lists the bundles to hand out again
    lines = mtls.summary_lines(make_config(enable_mtls="yes"), None, changed(items))
    handed = [name for name in (FIRST, second) if any(f"/{name}-bundle.tar.gz" in line for line in lines)]
    assert handed == [name for name in (FIRST, second) if new[name]] or (not any(new.values()) and handed == [FIRST])


def test_prompted_answers_are_used_when_the_variables_are_not_set(tmp_path):
    install(tmp_path)
    ca_before = read(tmp_path, paths.CA_CERT)
    first = serial(tmp_path, FIRST)
    install(tmp_path, answers={"ACTVT_REUSE_MTLS_CA": True, "ACTVT_REGEN_CLIENT_CERT": True})
    assert read(tmp_path, paths.CA_CERT) == ca_before and serial(tmp_path, FIRST) != first
    install(tmp_path, answers={"ACTVT_REUSE_MTLS_CA": False})
    assert read(tmp_path, paths.CA_CERT) != ca_before


def test_a_missing_first_client_is_issued_again_and_other_clients_are_kept(tmp_path):
    install(tmp_path)
    second = extra_client(tmp_path)
    kept = read(tmp_path, cert_path(second))
    os.unlink(host(tmp_path, cert_path(FIRST)))
    install(tmp_path)
    assert verify(tmp_path, FIRST).returncode == 0 and read(tmp_path, cert_path(second)) == kept


def test_another_clients_broken_files_are_left_alone(tmp_path):
    install(tmp_path)
    second = extra_client(tmp_path)
    with open(host(tmp_path, cert_path(second)), "wb") as handle:
        handle.write(b"broken")
    os.unlink(host(tmp_path, bundle_path(second)))
    plan, items = install(tmp_path)
    assert read(tmp_path, cert_path(second)) == b"broken" and verify(tmp_path, FIRST).returncode == 0
    assert not os.path.exists(host(tmp_path, bundle_path(second)))


def test_a_new_first_client_name_adds_a_client(tmp_path):
    install(tmp_path)
    install(tmp_path, mtls_client_cn="laptop.alice")
    assert verify(tmp_path, "laptop.alice").returncode == 0 and verify(tmp_path, FIRST).returncode == 0


# --- refusals: nothing changed ----------------------------------------------------------------------


def break_ca(root, how):
    ca_key, ca_crt = host(root, paths.CA_KEY), host(root, paths.CA_CERT)
    if how == "mismatched key":
        with open(ca_key, "wb") as handle:
            handle.write(pki.key_pem(pki.new_key("rsa", 2048)))
    elif how == "unreadable certificate":
        with open(ca_crt, "wb") as handle:
            handle.write(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif how == "unreadable key":
        with open(ca_key, "wb") as handle:
            handle.write(b"garbage")
    elif how == "missing key":
        os.unlink(ca_key)
    elif how == "expired":
        key = pki.load_key(read(root, paths.CA_KEY))
        _, cert = pki.make_ca(1, now=pki.now_utc().replace(year=2001), key=key)
        with open(ca_crt, "wb") as handle:
            handle.write(pki.cert_pem(cert))


@pytest.mark.parametrize("how,message", [
    ("mismatched key", "does not belong"), ("unreadable certificate", "not a PEM certificate"),
    ("unreadable key", "not a PEM private key"), ("missing key", "ca.key is missing"), ("expired", "expired"),
])
def test_a_broken_ca_stops_the_run_and_changes_nothing(tmp_path, how, message):
    install(tmp_path)
    break_ca(tmp_path, how)
    before = tree_digest(tmp_path)
    with pytest.raises(ActvtError, match=message) as caught:
        install(tmp_path, regen_client_cert="yes")
    assert "nothing was changed" in str(caught.value) and "ACTVT_REUSE_MTLS_CA=no" in str(caught.value)
    assert tree_digest(tmp_path) == before
    # the way out the message names works: a new CA, every client re-issued
    install(tmp_path, reuse_mtls_ca="no")
    assert verify(tmp_path, FIRST).returncode == 0


def test_the_cli_reports_a_broken_ca_in_one_line_with_exit_1(tmp_path, capsys):
    install(tmp_path)
    break_ca(tmp_path, "mismatched key")
    before = tree_digest(tmp_path / "etc")
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes"}
    import io
    out = io.StringIO()
    assert main(["--root", str(tmp_path)], env, stdout=out) == 1
    assert "the CA key does not belong to the CA certificate" in out.getvalue()
    assert tree_digest(tmp_path / "etc") == before


def test_an_unreadable_index_stops_the_run(tmp_path):
    install(tmp_path)
    with open(host(tmp_path, paths.MTLS_INDEX), "w") as handle:
        handle.write("{not json")
    with pytest.raises(ActvtError, match="index.json is damaged \\(not JSON"):
        install(tmp_path)


@pytest.mark.parametrize("bad", ["x/O=Evil", "../x", "a b", "$(id)", "a" * 65])
def test_bad_first_client_names_exit_2_and_write_nothing(tmp_path, bad, capsys):
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes",
           "ACTVT_MTLS_CLIENT_CN": bad}
    assert main(["--root", str(tmp_path)], env) == 2
    assert "ACTVT_MTLS_CLIENT_CN" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_first_client_name_with_a_trailing_newline_is_refused(tmp_path):
    with pytest.raises(UsageError, match="ACTVT_MTLS_CLIENT_CN"):
        install(tmp_path, mtls_client_cn="abc\n")
    assert os.listdir(tmp_path) == []


# --- the old guide's material: adoption ------------------------------------------------------------------


def seed_install(root):
    """The old script's result, made with the old guide's manual commands (docs/mtls.md) (vector:vector, bundle 0644)."""
    import test_pki

    mtls_dir = tmp = root / paths.MTLS_DIR.lstrip("/")
    mtls_dir.mkdir(parents=True)
    test_pki.seed_manual_ca(tmp)
    (tmp / "ext.cnf").unlink()
    subprocess.run(["tar", "-czf", f"{FIRST}-bundle.tar.gz", f"clients/{FIRST}.crt", f"clients/{FIRST}.key"],
                   cwd=tmp, check=True)
    os.chmod(tmp / f"{FIRST}-bundle.tar.gz", 0o644)
    os.chmod(tmp / "ca.key", 0o644)


def test_a_ca_made_by_the_old_guides_manual_steps_is_adopted(tmp_path):
    seed_install(tmp_path)
    old_ca = read(tmp_path, paths.CA_CERT)
    old_key = read(tmp_path, paths.CA_KEY)
    client = read(tmp_path, cert_path(FIRST))
    assert verify(tmp_path, FIRST).returncode != 0  # the old guide's CA fails strict verification
    plan, items = install(tmp_path)
    assert read(tmp_path, paths.CA_CERT) != old_ca and read(tmp_path, paths.CA_KEY) == old_key
    assert read(tmp_path, cert_path(FIRST)) == client  # the client keeps working: same certificate
    assert verify(tmp_path, FIRST).returncode == 0  # and now passes strict verification
    assert mode(tmp_path, paths.CA_KEY) == 0o600 and mode(tmp_path, bundle_path(FIRST)) == 0o600
    backup = list((tmp_path / "var/lib/actvt/backups").glob("*" + paths.CA_CERT))
    assert len(backup) == 1 and backup[0].read_bytes() == old_ca
    reason = next(item.action.reason for item in items if getattr(item.action, "path", "") == paths.CA_CERT)
    assert "no keyUsage" in reason
    entries = index(tmp_path)["certificates"]
    assert [(e["name"], e["serial"]) for e in entries] == [(FIRST, pki.serial_hex(serial(tmp_path, FIRST)))]
    # the adopted CA signs the next clients, and a re-run changes nothing
    extra_client(tmp_path)
    assert verify(tmp_path, "actvt-client-002").returncode == 0
    assert changed(install(tmp_path)[1]) == []


# --- modes and owners ----------------------------------------------------------------------------------


def test_key_files_are_0600_from_the_first_byte(tmp_path, monkeypatch):
    """Every write of a key or bundle goes to a file that is already 0600 (with umask 000)."""
    seen = []
    real_fdopen = os.fdopen

    class Watch:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            fd = self.handle.fileno()
            seen.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_IMODE(os.fstat(fd).st_mode)))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        return Watch(real_fdopen(fd, *args, **kwargs))

    monkeypatch.setattr(os, "fdopen", fdopen)
    old = os.umask(0)
    try:
        install(tmp_path)
        install(tmp_path, reuse_mtls_ca="no")
    finally:
        os.umask(old)
    secret = [(path, m) for path, m in seen if ".key." in os.path.basename(path) or "-bundle.tar.gz." in path]
    assert len(secret) >= 6
    assert all(m == 0o600 for _, m in secret), secret


@pytest.mark.skipif(os.geteuid() != 0, reason="owners can be set only as root")
def test_owners_bundle_belongs_to_the_sudo_user_and_keys_to_root(tmp_path, monkeypatch):
    user = "nobody"
    install(tmp_path, sudo_user=user, manage_owner=True)
    owner = lambda path: pwd.getpwuid(os.stat(host(tmp_path, path)).st_uid).pw_name  # noqa: E731
    assert owner(bundle_path(FIRST)) == user and mode(tmp_path, bundle_path(FIRST)) == 0o600
    for path in (paths.CA_KEY, paths.CA_CERT, key_path(FIRST), cert_path(FIRST), paths.MTLS_INDEX):
        assert owner(path) == "root", path
    lines = mtls.summary_lines(make_config(enable_mtls="yes"), user, [bundle_path(FIRST)])
    assert f"scp {user}@monitor.example.com:{bundle_path(FIRST)} ~/Downloads/" in "\n".join(lines)
    # the old script's vector:vector CA key is given back to root (nobody stands for vector: this host has none)
    monkeypatch.setattr(records, "SERVICE_USER", "nobody")
    os.chown(host(tmp_path, paths.CA_KEY), 65534, 65534)
    install(tmp_path, sudo_user=user, manage_owner=True)
    assert owner(paths.CA_KEY) == "root"


def test_summary_without_changes_still_says_how_to_download(tmp_path):
    lines = mtls.summary_lines(make_config(enable_mtls="yes"), None, [])
    assert f"scp root@monitor.example.com:{bundle_path(FIRST)} ~/Downloads/" in "\n".join(lines)
    assert mtls.summary_lines(make_config(enable_mtls="no"), None, []) == []


def test_the_proxys_own_identity_is_kept_and_made_again_before_it_expires():
    """Behind nginx, Vector trusts only the proxy's own CA; its identity is never a user's."""
    import datetime

    from installer.concerns import vector

    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    made = {a.path: a.content for a in mtls.proxy_identity({}, now) if hasattr(a, "content")}
    again = {a.path: a.content for a in mtls.proxy_identity(made, now + datetime.timedelta(days=300))
             if hasattr(a, "content")}
    assert again == made  # kept while valid
    ca = pki.load_cert(made[paths.PROXY_CA_CERT])
    cert = pki.load_cert(made[paths.PROXY_CERT])
    assert pki.issued_by(cert, ca) and cert.subject.rfc4514_string() == "O=Actvt,CN=actvt-proxy"
    late = ca.not_valid_after_utc - datetime.timedelta(days=10)
    renewed = {a.path: a.content for a in mtls.proxy_identity(made, late) if hasattr(a, "content")}
    assert renewed[paths.PROXY_CA_CERT] != made[paths.PROXY_CA_CERT]  # made again within 30 days of its end
    cfg = make_config(enable_mtls="yes", install_mode="proxy")
    assert paths.PROXY_CA_CERT in vector.restart_inputs(cfg, "proxy")  # Vector loads its ca_file at start
    assert paths.CA_CERT in vector.restart_inputs(cfg, "standalone")
