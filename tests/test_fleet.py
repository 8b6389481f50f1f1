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


def hand_made(fleet, name, ca="", days=30, now=None):
    """A client certificate signed by hand with the key in FLEET/CA (as with openssl), in clients/ but
    not in index.json: what a rotation, which re-issues the clients of the index, does not re-issue."""
    ca_cert = pki.load_cert((fleet / ca / "ca.crt").read_bytes())
    ca_key = pki.load_key((fleet / ca / "ca.key").read_bytes())
    key, cert = pki.issue_client(ca_cert, ca_key, name, days, "ecdsa", now)
    (fleet / "clients" / f"{name}.crt").write_bytes(pki.cert_pem(cert))
    (fleet / "clients" / f"{name}.key").write_bytes(pki.key_pem(key))
    os.chmod(fleet / "clients" / f"{name}.key", 0o600)
    return cert


def test_finish_refuses_while_a_live_client_holds_only_a_certificate_of_the_old_ca(tmp_path, fleet, capsys):
    """issue 20, item 3: finishing would cut tablet off (its certificate is the old CA's, the rotation
    did not re-issue it): refused, naming it, exit 1, not a byte written; renewed, the finish goes."""
    tablet = hand_made(fleet, "tablet")
    past = pki.now_utc() - datetime.timedelta(days=40)
    hand_made(fleet, "watch", days=30, now=past)  # expired: not live, nothing to cut off
    status, out = actvt("ca", "rotate", "--dir", str(fleet))
    assert status == 0 and "phone:" in out and "tablet:" not in out
    shown = json.loads(actvt("ca", "show", "--dir", str(fleet), "--json")[1])["clients"]
    assert {(client["name"], client["ca"]) for client in shown if client["name"] == "tablet"} == {("tablet", "previous")}
    capsys.readouterr()
    before = tree_digest(fleet)
    status, out = actvt("ca", "finish", "--dir", str(fleet))
    err = capsys.readouterr().err
    assert status == 1, out + err
    expires = tablet.not_valid_after_utc.isoformat().replace("+00:00", "Z")
    assert (f"tablet (expires {expires}) still holds only a certificate of the old CA: re-issue it with "
            f"`actvt client renew tablet --ca-dir {fleet}`, revoke it, or pass --force; the rollover is not finished, "
            "nothing was changed") in (out + err).splitlines()[-1]  # one line, the last
    assert "phone" not in out + err and "watch" not in out + err and "laptop" not in out + err
    assert tree_digest(fleet) == before
    status, out = actvt("ca", "finish", "--dir", str(fleet), "--json")
    assert status == 1 and tree_digest(fleet) == before
    result = json.loads(out)
    assert result["finished"] is False and [item["name"] for item in result["old_ca_only"]] == ["tablet"]
    assert result["old_ca_only"][0]["serial"] == pki.serial_hex(tablet)
    status, out = actvt("ca", "finish", "--dir", str(fleet), "--dry-run")
    assert status == 1 and tree_digest(fleet) == before
    # the suggested way out: renewed under the new CA, tablet is no longer cut off
    assert actvt("client", "renew", "tablet", "--ca-dir", str(fleet))[0] == 0
    renewed = bundle_cert(fleet, "tablet", tmp_path)
    new_ca = fleet / "ca.crt"
    assert verifies(renewed, new_ca) and not verifies(renewed, fleet / "previous/ca.crt")
    status, out = actvt("ca", "finish", "--dir", str(fleet), "--json")
    assert status == 0, out
    assert json.loads(out)["cut_off"] == []
    assert (fleet / "trust.pem").read_bytes() == new_ca.read_bytes()


def test_finish_with_force_cuts_them_off_and_says_who(tmp_path, fleet, capsys):
    hand_made(fleet, "tablet")
    assert actvt("ca", "rotate", "--dir", str(fleet))[0] == 0
    capsys.readouterr()
    status, out = actvt("ca", "finish", "--dir", str(fleet), "--force", "--dry-run")
    assert status == 0 and "tablet" in out and "finishing cuts it off (--force)" in out
    assert (fleet / "previous").exists()
    status, out = actvt("ca", "finish", "--dir", str(fleet), "--force", "--json")
    err = capsys.readouterr().err
    assert status == 0, err
    assert "⚠ tablet (expires " in err and "holds only a certificate of the old CA: finishing cuts it off (--force)" in err
    assert [item["name"] for item in json.loads(out)["cut_off"]] == ["tablet"]
    assert (fleet / "trust.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
    assert not verifies(fleet / "clients/tablet.crt", fleet / "trust.pem")
    assert not (fleet / "previous").exists()


def test_old_ca_only_is_the_live_certificates_of_the_previous_ca_no_new_one_covers():
    from installer.concerns import mtls

    now = pki.now_utc()
    ca, previous = (mtls.CA(None, None, b"", b"", "kept") for _ in range(2))
    ids = {"new": "n" * 8, "old": "o" * 8}

    def item(name, which, status, days):
        return {"name": name, "ca": ids[which], "status": status,
                "not_after": mtls.iso(now + datetime.timedelta(days=days))}

    index = {"certificates": [
        item("phone", "old", mtls.ROTATED, 10), item("phone", "new", mtls.ACTIVE, 10),  # re-issued
        item("tablet", "old", mtls.ACTIVE, 10),  # never re-issued: cut off
        item("laptop", "old", mtls.REVOKED, 10), item("watch", "old", mtls.ACTIVE, -1),  # revoked, expired
        item("kiosk", "old", mtls.ROTATED, 10), item("kiosk", "new", mtls.ACTIVE, -1),  # its new one lapsed
    ]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mtls.CA, "id", property(lambda self: ids["new"] if self is ca else ids["old"]))
        assert [entry["name"] for entry in mtls.old_ca_only(index, ca, previous, now)] == ["kiosk", "tablet"]


def test_the_refusal_names_every_client_it_would_cut_off_on_one_line():
    from installer.concerns import mtls

    clients = [{"name": "kiosk", "not_after": "2027-01-01T00:00:00Z"}, {"name": "tablet", "not_after": "2027-02-01T00:00:00Z"}]
    assert str(mtls.OldCAOnly(clients, "/srv/ca")) == (
        "2 live clients still hold only a certificate of the old CA (kiosk, expires 2027-01-01T00:00:00Z, tablet, "
        "expires 2027-02-01T00:00:00Z): re-issue each with `actvt client renew NAME --ca-dir /srv/ca`, revoke it, or "
        "pass --force; the rollover is not finished, nothing was changed")
