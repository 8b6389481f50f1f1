"""Many servers, one CA (issue 12): a CA folder kept off the servers (`actvt ca`, `actvt client
--ca-dir`), servers that only trust it (ACTVT_MTLS_CA_FILE, ACTVT_MTLS_CRL_FILE), and a rollover.

What the user observes: the files and their modes, the exit status and its one line, and whether a
bundle verifies (openssl, as nginx and Vector verify) against what the servers trust.
"""

import datetime
import json
import os
import stat
import subprocess
import tarfile

import pytest

from installer.concerns import pki
from installer.core import paths

from helpers import run_cli, tree_digest

ENV = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "NO_COLOR": "1"}


pytestmark = pytest.mark.usefixtures("small_ca_keys")


def actvt(*argv, env=None):
    return run_cli(argv, env, base=ENV)


@pytest.fixture
def fleet(tmp_path):
    folder = tmp_path / "fleet"
    assert actvt("ca", "init", "--dir", str(folder))[0] == 0
    for name in ("laptop", "phone"):
        assert actvt("client", "issue", name, "--ca-dir", str(folder))[0] == 0
    return folder


def server(tmp_path, name, fleet, env=None, crl=False):
    """A --root server tree that trusts the fleet: the trust file (and CRL) copied where Ansible puts them."""
    root = tmp_path / name
    (root / "etc/actvt").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "etc/actvt/fleet-ca.pem").write_bytes((fleet / "trust.pem").read_bytes())
    (root / "etc/actvt/fleet-crl.pem").write_bytes((fleet / "crl.pem").read_bytes())
    variables = {"ACTVT_MTLS_CA_FILE": "/etc/actvt/fleet-ca.pem"}
    if crl:
        variables["ACTVT_MTLS_CRL_FILE"] = "/etc/actvt/fleet-crl.pem"
    variables.update(env or {})
    return root, variables


def push(fleet, root):
    for source, target in (("trust.pem", "fleet-ca.pem"), ("crl.pem", "fleet-crl.pem")):
        (root / "etc/actvt" / target).write_bytes((fleet / source).read_bytes())


def bundle_cert(fleet, name, into):
    """The client certificate of NAME's bundle, as its holder extracts it."""
    with tarfile.open(fleet / f"{name}-bundle.tar.gz") as tar:
        data = tar.extractfile(f"clients/{name}.crt").read()
    path = into / f"{name}.crt"
    path.write_bytes(data)
    return path


def verifies(cert, trusted, crl=None):
    argv = ["openssl", "verify", "-CAfile", str(trusted)]
    if crl:
        argv += ["-crl_check", "-CRLfile", str(crl)]
    return subprocess.run(argv + [str(cert)], capture_output=True).returncode == 0


def test_ca_init_makes_a_private_folder_with_the_trust_file(fleet, capsys):
    assert stat.S_IMODE(os.stat(fleet).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(fleet / "ca.key").st_mode) == 0o600
    assert (fleet / "trust.pem").read_bytes() == (fleet / "ca.crt").read_bytes()
    assert stat.S_IMODE(os.stat(fleet / "laptop-bundle.tar.gz").st_mode) == 0o600
    rows = json.loads(actvt("client", "list", "--ca-dir", str(fleet), "--json")[1])
    assert sorted(row["name"] for row in rows) == ["laptop", "phone"]
    capsys.readouterr()
    status, _ = actvt("ca", "init", "--dir", str(fleet))
    assert status == 2 and "exists and is not an empty folder" in capsys.readouterr().err  # never over a CA
    status, _ = actvt("ca", "init", "--dir", str(fleet.parent / "missing" / "ca"))
    assert status == 2 and "missing does not exist" in capsys.readouterr().err
    assert not (fleet.parent / "missing").exists()


def test_a_trust_only_server_holds_no_ca_key_and_issues_no_client(tmp_path, fleet):
    root, variables = server(tmp_path, "a", fleet)
    status, out = actvt("--root", str(root), env=variables)
    assert status == 0, out
    assert (root / "etc/vector/certs/mtls/ca.crt").read_bytes() == (fleet / "ca.crt").read_bytes()
    assert not (root / "etc/vector/certs/mtls/ca.key").exists()
    assert not (root / "etc/vector/certs/mtls/generate-client.sh").exists()
    assert "ca_file = \"/etc/vector/certs/mtls/ca.crt\"" in (root / "etc/vector/vector.toml").read_text()
    assert verifies(bundle_cert(fleet, "laptop", tmp_path), root / "etc/vector/certs/mtls/ca.crt")
    status, out = actvt("client", "issue", "tablet", "--root", str(root))
    assert status == 1 and "trusts a CA kept elsewhere" in out and "--ca-dir" in out
    # the same file again: nothing changes; a plain re-run keeps trusting it (recorded in install.state)
    assert json.loads(actvt("--root", str(root), "--json", env=variables)[1])["changed"] == 0
    assert json.loads(actvt("--root", str(root), "--json")[1])["changed"] == 0
    assert "mtls_ca_file=/etc/actvt/fleet-ca.pem" in (root / "var/lib/actvt/install.state").read_text()


def test_a_servers_own_ca_can_be_another_servers_trust_file(tmp_path):
    one = tmp_path / "one"
    (one / "etc").mkdir(parents=True)
    (one / "etc/os-release").write_text("ID=debian\n")
    assert actvt("--root", str(one), env={"ACTVT_ENABLE_MTLS": "yes"})[0] == 0
    two = tmp_path / "two"
    (two / "etc/actvt").mkdir(parents=True)
    (two / "etc/os-release").write_text("ID=debian\n")
    (two / "etc/actvt/ca.pem").write_bytes((one / "etc/vector/certs/mtls/ca.crt").read_bytes())
    assert actvt("--root", str(two), env={"ACTVT_MTLS_CA_FILE": "/etc/actvt/ca.pem"})[0] == 0
    assert verifies(one / "etc/vector/certs/mtls/clients/actvt-client-001.crt", two / "etc/vector/certs/mtls/ca.crt")


def expired_ca(now):
    key, cert = pki.make_ca(1, now - datetime.timedelta(days=5), key=pki.new_key("ecdsa"))
    return pki.cert_pem(cert)


@pytest.mark.parametrize("case,expected", [
    ("missing", "ACTVT_MTLS_CA_FILE: /etc/actvt/fleet-ca.pem does not exist"),
    ("no certificate", "holds no PEM certificate"),
    ("a key in it", "holds a private key"),
    ("expired", "expired on"),
    ("not a CA", "is not a CA certificate"),
    ("CRL of another CA", "ACTVT_MTLS_CRL_FILE: /etc/actvt/fleet-crl.pem: a CRL of"),
    ("no CRL of a trusted CA", "has no CRL of"),
])
def test_a_trust_file_that_cannot_be_used_is_exit_2_and_nothing_changed(tmp_path, fleet, capsys, case, expected):
    root, variables = server(tmp_path, "bad", fleet, crl=True)
    ca_file, crl_file = root / "etc/actvt/fleet-ca.pem", root / "etc/actvt/fleet-crl.pem"
    now = pki.now_utc()
    if case == "missing":
        ca_file.unlink()
    elif case == "no certificate":
        ca_file.write_text("just text\n")
    elif case == "a key in it":
        ca_file.write_bytes(ca_file.read_bytes() + (fleet / "ca.key").read_bytes())
    elif case == "expired":
        ca_file.write_bytes(expired_ca(now))
    elif case == "not a CA":
        ca_file.write_bytes((fleet / "clients/laptop.crt").read_bytes())
    elif case == "CRL of another CA":
        other_key, other = pki.make_ca(30, now, key=pki.new_key("ecdsa"))
        crl_file.write_bytes(pki.crl_pem(pki.make_crl(other, other_key, {}, 1, now)))
    elif case == "no CRL of a trusted CA":
        other_key, other = pki.make_ca(30, now, key=pki.new_key("ecdsa"))
        ca_file.write_bytes(ca_file.read_bytes() + pki.cert_pem(other))
    before = tree_digest(root)
    status, _ = actvt("--root", str(root), env=variables)
    err = capsys.readouterr().err
    assert status == 2 and expected in err and err.count("\n") == 1, err
    assert tree_digest(root) == before


def test_behind_nginx_the_fleet_crl_is_installed_and_denies(tmp_path, fleet):
    root, variables = server(tmp_path, "proxy", fleet, env={"ACTVT_INSTALL_MODE": "proxy"}, crl=True)
    assert actvt("--root", str(root), env=variables)[0] == 0
    site = (root / "etc/nginx/sites-available/actvt-vector").read_text()
    assert "ssl_crl" in site and "/etc/vector/certs/proxy/nginx.crt" in site  # the proxy's own identity upstream
    laptop = bundle_cert(fleet, "laptop", tmp_path)
    trusted, crl = root / "etc/vector/certs/mtls/ca.crt", root / "etc/vector/certs/mtls/crl.pem"
    assert verifies(laptop, trusted, crl)
    assert actvt("client", "revoke", "laptop", "--ca-dir", str(fleet), "--yes")[0] == 0
    push(fleet, root)
    summary = json.loads(actvt("--root", str(root), "--json", env=variables)[1])
    assert [a["target"] for a in summary["actions"] if a["status"] == "changed"] == [paths.MTLS_CRL]
    assert not verifies(laptop, trusted, crl) and verifies(bundle_cert(fleet, "phone", tmp_path), trusted, crl)
    # without a CRL file, nginx gets no ssl_crl (it would refuse every client of a CA without its CRL)
    bare, variables = server(tmp_path, "bare", fleet, env={"ACTVT_INSTALL_MODE": "proxy"})
    assert actvt("--root", str(bare), env=variables)[0] == 0
    assert "ssl_crl" not in (bare / "etc/nginx/sites-available/actvt-vector").read_text()


def test_a_rollover_trusts_both_cas_then_only_the_new_one(tmp_path, fleet):
    standalone, variables = server(tmp_path, "s", fleet)
    assert actvt("--root", str(standalone), env=variables)[0] == 0
    (tmp_path / "before").mkdir()
    old_phone = bundle_cert(fleet, "phone", tmp_path / "before")
    assert actvt("client", "revoke", "laptop", "--ca-dir", str(fleet), "--yes")[0] == 0
    status, out = actvt("ca", "rotate", "--dir", str(fleet))
    assert status == 0 and "phone:" in out and "laptop:" not in out  # a revoked client is not re-issued
    assert (fleet / "trust.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert (fleet / "crl.pem").read_bytes().count(b"BEGIN X509 CRL") == 2  # nginx needs one per trusted CA
    push(fleet, standalone)
    summary = json.loads(actvt("--root", str(standalone), "--json", env=variables)[1])
    assert paths.CA_CERT in [a["target"] for a in summary["actions"] if a["status"] == "changed"]
    trusted = standalone / "etc/vector/certs/mtls/ca.crt"
    new_phone = bundle_cert(fleet, "phone", tmp_path)
    assert verifies(old_phone, trusted) and verifies(new_phone, trusted)  # mid-rollover: both connect
    status, out = actvt("ca", "rotate", "--dir", str(fleet))
    assert status == 1 and "a rollover is in progress" in out
    assert actvt("ca", "finish", "--dir", str(fleet))[0] == 0
    push(fleet, standalone)
    assert actvt("--root", str(standalone), env=variables)[0] == 0
    assert not verifies(old_phone, trusted) and verifies(new_phone, trusted)
    assert (fleet / "trust.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
    assert not (fleet / "previous").exists()
