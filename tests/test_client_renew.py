"""``actvt client renew NAME`` and ``--all-expiring DAYS``, on a --root tree and in a CA folder: a new
certificate with the same name and key type, the old one recorded as replaced and listed in the CRL
as superseded (as ``client issue --force`` does), and what each mode makes of the old one."""

import datetime
import json
import os
import subprocess

import pytest

from installer.concerns import pki
from installer.core import paths
from installer.core.paths import Root

from helpers import run_cli, tree_digest

ENV = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "NO_COLOR": "1"}
FIRST = "actvt-client-001"
SEED = ["Generating client certificate: {name}", "Certificate validity: {days} days",
        "→ Generating client private key (PKCS#8)...", "→ Creating certificate signing request...",
        "→ Signing certificate with CA...", "→ Creating distribution bundle...",
        "✓ Client certificate generated successfully"]


pytestmark = pytest.mark.usefixtures("small_ca_keys")


def actvt(*argv, env=None):
    return run_cli(argv, env, base=ENV)


def install(root, **env):
    root.mkdir(parents=True, exist_ok=True)
    assert actvt("--root", str(root), "--yes", env={"ACTVT_ENABLE_MTLS": "yes", **env})[0] == 0
    return root


@pytest.fixture
def tree(tmp_path):
    return install(tmp_path / "server")


def behind_nginx(root):
    with open(Root(str(root)).host(paths.STATE_FILE), "a") as handle:
        handle.write("mode=proxy\nwebserver=nginx\n")


def read(root, path, folder=False):
    where = paths.CaFolder(str(root)) if folder else Root(str(root))
    with open(where.host(path), "rb") as handle:
        return handle.read()


def entries(root, name, folder=False):
    return [item for item in json.loads(read(root, paths.MTLS_INDEX, folder))["certificates"] if item["name"] == name]


def superseded(root, folder=False):
    info = pki.read_crl(read(root, paths.MTLS_CRL, folder), pki.load_cert(read(root, paths.CA_CERT, folder)))
    return {serial: reason for serial, (_, reason) in info.entries.items()}


def verify(root, name, folder=False):
    where = paths.CaFolder(str(root)) if folder else Root(str(root))
    return subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", where.host(paths.CA_CERT),
                           where.host(paths.client_cert(name))], capture_output=True, text=True).returncode == 0


def test_renew_replaces_the_certificate_with_the_same_name_and_key_type(tree):
    assert actvt("client", "issue", "phone", "--root", str(tree), env={"ACTVT_MTLS_KEY_TYPE": "ecdsa"})[0] == 0
    old = pki.load_cert(read(tree, paths.client_cert("phone")))
    old_bundle = read(tree, paths.client_bundle("phone"))
    code, out = actvt("client", "renew", "phone", "--root", str(tree))  # the default key type is rsa: not taken
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:7] == [line.format(name="phone", days=365) for line in SEED]
    new = pki.load_cert(read(tree, paths.client_cert("phone")))
    assert new.serial_number != old.serial_number and pki.key_type_of(new.public_key()) == "ecdsa"
    assert verify(tree, "phone") and read(tree, paths.client_bundle("phone")) != old_bundle
    assert [item["status"] for item in entries(tree, "phone")] == ["replaced", "active"]
    assert superseded(tree) == {old.serial_number: pki.SUPERSEDED}
    # standalone: Vector reads no CRL, so the old certificate stays valid until its end, and it says so
    assert any(line.startswith("⚠ the previous certificate of phone stays valid until") for line in lines)
    assert "scp root@monitor.example.com:/etc/vector/certs/mtls/phone-bundle.tar.gz ~/Downloads/" in out


def test_behind_nginx_the_old_certificate_is_refused(tree):
    behind_nginx(tree)
    code, out = actvt("client", "renew", FIRST, "--root", str(tree), "--days", "90")
    assert code == 0, out
    assert "Certificate validity: 90 days" in out
    assert f"✓ The previous certificate of {FIRST} is in {paths.MTLS_CRL} (superseded): nginx refuses it" in out
    new = pki.load_cert(read(tree, paths.client_cert(FIRST)))
    assert new.not_valid_after_utc - new.not_valid_before_utc == datetime.timedelta(days=90)


def test_all_expiring_renews_only_live_ones_within_the_window(tree):
    ca_key, ca_cert = pki.load_key(read(tree, paths.CA_KEY)), pki.load_cert(read(tree, paths.CA_CERT))
    now = pki.now_utc()
    for name, days, ago in (("soon", 30, 20), ("lapsed", 30, 40)):  # 10 days left; expired 10 days ago
        key, cert = pki.issue_client(ca_cert, ca_key, name, days, "ecdsa", now=now - datetime.timedelta(days=ago))
        for path, data in ((paths.client_cert(name), pki.cert_pem(cert)), (paths.client_key(name), pki.key_pem(key))):
            with open(Root(str(tree)).host(path), "wb") as handle:
                handle.write(data)
    for name, days in (("later", "60"), ("mid", "45")):
        assert actvt("client", "issue", name, "--days", days, "--root", str(tree))[0] == 0
    code, out = actvt("client", "renew", "--all-expiring", "30", "--json", "--root", str(tree))
    assert code == 0
    report = json.loads(out)
    assert [item["name"] for item in report["renewed"]] == ["soon"]
    assert [(item["name"], item["status"]) for item in report["replaced"]] == [("soon", "replaced")]
    assert pki.key_type_of(pki.load_cert(read(tree, paths.client_cert("soon"))).public_key()) == "ecdsa"
    statuses = {name: [item["status"] for item in entries(tree, name)] for name in ("soon", "later", "mid", FIRST)}
    assert statuses == {"soon": ["replaced", "active"], "later": ["active"], "mid": ["active"], FIRST: ["active"]}
    code, out = actvt("client", "renew", "--all-expiring", "30", "--root", str(tree))
    assert code == 0 and "No live client certificate expires within 30 days: nothing to renew." in out
    assert "lapsed: its certificate has expired; --all-expiring renews only live ones" in out
    code, out = actvt("client", "renew", "--all-expiring", "90", "--root", str(tree))
    assert code == 0 and "Hand these bundles out (they replace the earlier ones):" in out
    assert "  later: scp root@monitor.example.com:" in out and "  mid: scp root@monitor.example.com:" in out
    assert f"  {FIRST}:" not in out and "  soon:" not in out  # 365 days left
    code, out = actvt("client", "renew", "lapsed", "--root", str(tree))  # by name: renewed though expired
    assert code == 0 and verify(tree, "lapsed")


@pytest.mark.parametrize("argv,words", [
    ((), "give NAME or --all-expiring DAYS; allowed: exactly one of them"),
    ((FIRST, "--all-expiring", "30"), "give NAME or --all-expiring DAYS; allowed: exactly one of them"),
    (("--all-expiring", "soon"), "--all-expiring: "),
    ((FIRST, "--days", "0"), "--days: "),
    (("a/b",), "client name: "),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tree, capsys, argv, words):
    before = tree_digest(tree)
    code, _ = actvt("client", "renew", *argv, "--root", str(tree))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err
    assert tree_digest(tree) == before


def test_nothing_to_renew(tree):
    behind_nginx(tree)
    assert actvt("client", "issue", "gone", "--root", str(tree))[0] == 0
    assert actvt("client", "revoke", "gone", "--yes", "--root", str(tree))[0] == 0
    before = tree_digest(tree)
    code, out = actvt("client", "renew", "gone", "--root", str(tree))
    assert code == 1 and "gone was revoked: renewing does not bring it back" in out and "client issue gone" in out
    code, out = actvt("client", "renew", "nobody", "--root", str(tree))
    assert code == 1 and "no valid certificate named nobody to renew" in out
    assert tree_digest(tree) == before


def test_dry_run_changes_nothing(tree):
    before = tree_digest(tree)
    code, out = actvt("client", "renew", FIRST, "--dry-run", "--root", str(tree))
    assert code == 0 and "Dry run: nothing was changed." in out and tree_digest(tree) == before


def test_in_a_ca_folder(tmp_path):
    folder = tmp_path / "fleet"
    assert actvt("ca", "init", "--dir", str(folder))[0] == 0
    assert actvt("client", "issue", "alice", "--ca-dir", str(folder))[0] == 0
    old = pki.load_cert(read(folder, paths.client_cert("alice"), folder=True))
    trust = (folder / "trust.pem").read_bytes()
    code, out = actvt("client", "renew", "alice", "--ca-dir", str(folder))
    assert code == 0, out
    assert (f"✓ The previous certificate of alice is in {folder}/crl.pem (superseded): servers behind nginx refuse it "
            "once they have this CRL; standalone servers until a CA rotation") in out
    assert f"  {folder}/alice-bundle.tar.gz" in out
    assert superseded(folder, folder=True) == {old.serial_number: pki.SUPERSEDED}
    assert [item["status"] for item in entries(folder, "alice", folder=True)] == ["replaced", "active"]
    assert verify(folder, "alice", folder=True) and (folder / "trust.pem").read_bytes() == trust
    assert oct(os.stat(folder / "alice-bundle.tar.gz").st_mode & 0o777) == "0o600"


def test_a_trust_only_server_renews_nowhere_but_the_ca_folder(tmp_path):
    folder = tmp_path / "fleet"
    assert actvt("ca", "init", "--dir", str(folder))[0] == 0
    root = tmp_path / "member"
    (root / "etc/actvt").mkdir(parents=True)
    (root / "etc/actvt/fleet-ca.pem").write_bytes((folder / "trust.pem").read_bytes())
    install(root, ACTVT_MTLS_CA_FILE="/etc/actvt/fleet-ca.pem")
    code, out = actvt("client", "renew", "alice", "--root", str(root))
    assert code == 1 and "trusts a CA kept elsewhere" in out and "--ca-dir" in out
