"""``actvt client issue|list|show|revoke`` on a --root tree, and generate-client.sh run for real.

generate-client.sh calls ``${ACTVT_INTERNAL_COMMAND:-/usr/local/bin/actvt}`` and, when
``ACTVT_INTERNAL_ROOT`` is set, passes ``--root``: the tests point the first at a wrapper that runs
this checkout's ``installer.commands.cli``, the second at the test tree.
"""

import datetime
import io
import json
import os
import pty
import stat
import subprocess
import sys

import pytest

from installer.ui import prompt
from installer.concerns import mtls
from installer.core import paths
from installer.concerns import pki
from installer.commands.cli import main
from installer.core.paths import client_bundle as bundle_path, client_cert as cert_path, client_key as key_path
from installer.core.paths import Root

from helpers import tree_digest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST = "actvt-client-001"
SEED_LINES = [
    "Generating client certificate: {name}",
    "Certificate validity: {days} days",
    "→ Generating client private key (PKCS#8)...",
    "→ Creating certificate signing request...",
    "→ Signing certificate with CA...",
    "→ Creating distribution bundle...",
    "✓ Client certificate generated successfully",
    "✓ Certificate: /etc/vector/certs/mtls/clients/{name}.crt",
    "✓ Private key: /etc/vector/certs/mtls/clients/{name}.key",
    "✓ Bundle: /etc/vector/certs/mtls/{name}-bundle.tar.gz",
]
BAD_NAMES = ["x/O=Evil", "../x", "a b", "$(id)", "", "a" * 65, "abc\n"]


pytestmark = pytest.mark.usefixtures("small_ca_keys")


@pytest.fixture
def tree(tmp_path):
    """A --root tree after an install with mTLS."""
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes"}
    assert main(["--root", str(tmp_path)], env, stdout=io.StringIO()) == 0
    return tmp_path


def client(root, *argv, env=None):
    """(exit status, human output, stdout) of ``actvt client …`` with --root."""
    out = io.StringIO()
    status = main(["client", argv[0], "--root", str(root), *argv[1:]], env or {}, stdout=out)
    return status, out.getvalue(), out.getvalue()


def host(root, path):
    return Root(str(root)).host(path)


def read(root, path):
    with open(host(root, path), "rb") as handle:
        return handle.read()


def etc(root):
    return tree_digest(os.path.join(root, "etc"))


def verify(root, name, *extra):
    return subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", *extra, "-CAfile",
                           host(root, paths.CA_CERT), host(root, cert_path(name))], capture_output=True, text=True)


class Terminal:
    """Stands in for /dev/tty: records the question, answers ``answer``."""

    def __init__(self, answer):
        self.answer, self.asked = answer, ""

    def write(self, text):
        self.asked += text

    def flush(self):
        pass

    def readline(self):
        return self.answer + "\n"

    def close(self):
        pass


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr(prompt, "open_tty", lambda: None)


# --- issue ----------------------------------------------------------------------------------------


def test_issue_prints_the_seeds_lines_and_writes_the_seeds_files(tree, no_terminal):
    status, out, _ = client(tree, "issue", "actvt-client-002")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:10] == [line.format(name="actvt-client-002", days=365) for line in SEED_LINES]
    assert "  subject=CN = actvt-client-002, O = Actvt" in lines and "  issuer=CN = Actvt-CA, O = Actvt, C = US" in lines
    assert any(line.startswith("  notBefore=") for line in lines) and any(line.startswith("  notAfter=") for line in lines)
    assert "scp root@monitor.example.com:/etc/vector/certs/mtls/actvt-client-002-bundle.tar.gz ~/Downloads/" in out
    assert verify(tree, "actvt-client-002").returncode == 0
    for path, want in ((cert_path("actvt-client-002"), 0o644), (key_path("actvt-client-002"), 0o600),
                       (bundle_path("actvt-client-002"), 0o600)):
        assert stat.S_IMODE(os.stat(host(tree, path)).st_mode) == want
    listing = subprocess.run(["tar", "-tzf", host(tree, bundle_path("actvt-client-002"))], capture_output=True, text=True)
    assert listing.stdout.splitlines() == ["clients/actvt-client-002.crt", "clients/actvt-client-002.key"]
    entries = json.loads(read(tree, paths.MTLS_INDEX))["certificates"]
    assert [e["name"] for e in entries] == [FIRST, "actvt-client-002"]


def test_days_from_the_variable_and_the_option(tree, no_terminal):
    status, out, _ = client(tree, "issue", "two-years", env={"ACTVT_MTLS_CLIENT_DAYS": "730"})
    assert status == 0 and "Certificate validity: 730 days" in out
    cert = pki.load_cert(read(tree, cert_path("two-years")))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=730)
    status, out, _ = client(tree, "issue", "ninety", "--days", "90", env={"ACTVT_MTLS_CLIENT_DAYS": "730"})
    cert = pki.load_cert(read(tree, cert_path("ninety")))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=90)
    before = etc(tree)
    assert client(tree, "issue", "x", "--days", "0")[0] == 2
    assert client(tree, "issue", "x", env={"ACTVT_MTLS_CLIENT_DAYS": "ten"})[0] == 2
    assert etc(tree) == before


def test_ecdsa_option(tree, no_terminal):
    status, out, _ = client(tree, "issue", "ec", env={"ACTVT_MTLS_KEY_TYPE": "ecdsa"})
    assert status == 0 and "key=ECDSA secp256r1" in out
    assert read(tree, key_path("ec")).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert verify(tree, "ec").returncode == 0


def test_an_existing_name_is_replaced_only_when_confirmed_or_forced(tree, monkeypatch):
    before = etc(tree)
    monkeypatch.setattr(prompt, "open_tty", lambda: None)
    status, out, _ = client(tree, "issue", FIRST)
    assert status == 1 and "--force" in out and etc(tree) == before
    status, out, _ = client(tree, "issue", FIRST, "--yes")  # never prompt: the default is no
    assert status == 1 and etc(tree) == before
    no = Terminal("n")
    monkeypatch.setattr(prompt, "open_tty", lambda: no)
    status, out, _ = client(tree, "issue", FIRST)
    assert status == 1 and "[y/N]" in no.asked and "Aborted" in out and etc(tree) == before
    old = pki.load_cert(read(tree, cert_path(FIRST))).serial_number
    monkeypatch.setattr(prompt, "open_tty", lambda: Terminal("y"))
    assert client(tree, "issue", FIRST)[0] == 0
    new = pki.load_cert(read(tree, cert_path(FIRST))).serial_number
    assert new != old and verify(tree, FIRST).returncode == 0
    monkeypatch.setattr(prompt, "open_tty", lambda: None)
    assert client(tree, "issue", FIRST, "--force")[0] == 0
    assert pki.load_cert(read(tree, cert_path(FIRST))).serial_number != new
    statuses = [e["status"] for e in json.loads(read(tree, paths.MTLS_INDEX))["certificates"] if e["name"] == FIRST]
    assert statuses == ["replaced", "replaced", "active"]
    # the replaced files were backed up
    assert list((tree / "var/lib/actvt/backups").glob("*" + key_path(FIRST)))


@pytest.mark.parametrize("action", ["issue", "show", "revoke"])
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_exit_2_and_write_nothing(tree, capsys, action, bad):
    before = tree_digest(tree)
    status, out, _ = client(tree, action, "--yes", "--", bad)
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "client name" in err and "allowed: 1 to 64 characters" in err
    assert tree_digest(tree) == before


def test_without_a_ca_issue_refuses(tmp_path):
    status, out, _ = client(tmp_path, "issue", "c1")
    assert status == 1 and "no mTLS CA" in out and "ACTVT_ENABLE_MTLS=yes" in out
    assert not os.path.exists(host(tmp_path, paths.MTLS_DIR))


def test_dry_run_changes_nothing(tree, no_terminal):
    before = tree_digest(tree)
    status, out, _ = client(tree, "issue", "c1", "--dry-run")
    assert status == 0 and "would:" in out and "c1.key" in out
    assert tree_digest(tree) == before


def test_issue_adopts_a_ca_made_by_the_old_guide(tmp_path, no_terminal):
    import test_pki

    folder = tmp_path / paths.MTLS_DIR.lstrip("/")
    folder.mkdir(parents=True)
    test_pki.seed_manual_ca(folder)
    assert verify(tmp_path, FIRST).returncode != 0
    status, out, _ = client(tmp_path, "issue", "c2")
    assert status == 0 and "Re-signing the CA certificate" in out
    assert verify(tmp_path, FIRST).returncode == 0 and verify(tmp_path, "c2").returncode == 0


# --- list, show ------------------------------------------------------------------------------------


def test_list_shows_every_status(tree, no_terminal):
    client(tree, "issue", "soon", "--days", "10")
    client(tree, "issue", "gone")
    client(tree, "revoke", "gone", "--yes")
    # a certificate that expired: made by hand with this CA (the index learns of it from clients/)
    ca_key = pki.load_key(read(tree, paths.CA_KEY))
    ca_cert = pki.load_cert(read(tree, paths.CA_CERT))
    past = pki.now_utc() - datetime.timedelta(days=40)
    key, cert = pki.issue_client(ca_cert, ca_key, "old", 30, "ecdsa", now=past)
    with open(host(tree, cert_path("old")), "wb") as handle:
        handle.write(pki.cert_pem(cert))
    status, out, _ = client(tree, "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["NAME", "SERIAL", "NOT", "AFTER", "STATUS"]
    assert rows[FIRST].endswith("  valid") and rows["soon"].endswith("expires within 30 days")
    assert rows["gone"].endswith("revoked") and rows["old"].endswith("expired")
    out = io.StringIO()
    assert main(["client", "list", "--json", "--root", str(tree)], {}, stdout=out) == 0
    data = json.loads(out.getvalue())
    assert {row["name"]: row["display_status"] for row in data} == {
        FIRST: "valid", "soon": "expires within 30 days", "gone": "revoked", "old": "expired"}
    assert all({"serial", "fingerprint_sha256", "not_after", "revoked_at"} <= set(row) for row in data)


def test_list_warns_about_clients_deleted_but_not_revoked(tree, no_terminal):
    client(tree, "issue", "deleted")
    for path in (cert_path("deleted"), key_path("deleted"), bundle_path("deleted")):
        os.unlink(host(tree, path))  # what the old guide said to do to revoke (docs/mtls.md)
    status, out, _ = client(tree, "list")
    assert status == 0 and "deleted: its files were deleted but it is not revoked" in out
    assert client(tree, "revoke", "deleted", "--yes")[0] == 0
    assert "not revoked" not in client(tree, "list")[1]


def test_show(tree, no_terminal):
    status, out, _ = client(tree, "show", FIRST)
    assert status == 0 and "status: valid" in out and "subject=CN = actvt-client-001, O = Actvt" in out
    assert f"file: {bundle_path(FIRST)}" in out
    stdout = io.StringIO()
    assert main(["client", "show", FIRST, "--json", "--root", str(tree)], {}, stdout=stdout) == 0
    assert json.loads(stdout.getvalue())["certificate"]["name"] == FIRST
    assert client(tree, "show", "nobody-here")[0] == 1


# --- revoke ---------------------------------------------------------------------------------------


def behind_nginx(tree):
    """The state of a proxy-mode install: nginx checks the CRL, so revoke keeps the CA."""
    with open(host(tree, paths.STATE_FILE), "a") as handle:
        handle.write("mode=proxy\nwebserver=nginx\n")


def test_revoke_records_removes_and_updates_the_crl(tree, no_terminal):
    behind_nginx(tree)
    client(tree, "issue", "laptop")
    client(tree, "issue", "laptop", "--force")  # the holder may still have the first one too
    ca = pki.load_cert(read(tree, paths.CA_CERT))
    superseded = pki.read_crl(read(tree, paths.MTLS_CRL), ca)
    crt = read(tree, cert_path("laptop"))
    (tree / "laptop.crt").write_bytes(crt)
    status, out, _ = client(tree, "revoke", "laptop", "--yes")
    assert status == 0 and out.count("✓ Revoked laptop") == 2
    for path in (cert_path("laptop"), key_path("laptop"), bundle_path("laptop")):
        assert not os.path.exists(host(tree, path))
    entries = [e for e in json.loads(read(tree, paths.MTLS_INDEX))["certificates"] if e["name"] == "laptop"]
    assert [e["status"] for e in entries] == ["revoked", "revoked"] and all(e["revoked_at"] for e in entries)
    info = pki.read_crl(read(tree, paths.MTLS_CRL), ca)
    # the replaced one was in the CRL already (superseded, CRL 2); the revocation signs CRL 3
    assert superseded.serials == {int(entries[0]["serial"], 16)} and superseded.number == 2
    assert list(superseded.entries.values())[0][1] == pki.SUPERSEDED
    assert info.serials == {int(e["serial"], 16) for e in entries} and info.number == 3
    # openssl, given the CRL as nginx's ssl_crl would, refuses the revoked certificate
    result = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check", "-CRLfile", host(tree, paths.MTLS_CRL),
                             "-CAfile", host(tree, paths.CA_CERT), str(tree / "laptop.crt")], capture_output=True, text=True)
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr)
    assert verify(tree, FIRST, "-crl_check", "-CRLfile", host(tree, paths.MTLS_CRL)).returncode == 0
    assert pki.serial_hex(pki.load_cert(crt)) not in mtls.active_serials(json.loads(read(tree, paths.MTLS_INDEX)), pki.key_id(ca))
    # issuing a revoked name again works
    assert client(tree, "issue", "laptop")[0] == 0 and verify(tree, "laptop").returncode == 0
    assert client(tree, "revoke", "laptop", "--yes")[0] == 0
    assert client(tree, "revoke", "laptop", "--yes")[0] == 1  # nothing left to revoke


def test_revoke_asks_first(tree, monkeypatch):
    monkeypatch.setattr(prompt, "open_tty", lambda: None)
    before = etc(tree)
    status, out, _ = client(tree, "revoke", FIRST)
    assert status == 1 and "--yes" in out and etc(tree) == before
    monkeypatch.setattr(prompt, "open_tty", lambda: Terminal("n"))
    assert client(tree, "revoke", FIRST)[0] == 1 and etc(tree) == before
    monkeypatch.setattr(prompt, "open_tty", lambda: Terminal("y"))
    assert client(tree, "revoke", FIRST)[0] == 0 and not os.path.exists(host(tree, cert_path(FIRST)))


def test_the_first_client_is_revoked_plainly_behind_nginx(tmp_path, no_terminal):
    """nginx presents its own identity to Vector, so the first user is a user like the others."""
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes",
           "ACTVT_INSTALL_MODE": "proxy"}
    assert main(["--root", str(tmp_path)], env, stdout=io.StringIO()) == 0
    proxy = read(tmp_path, paths.PROXY_CERT)
    status, out, _ = client(tmp_path, "revoke", FIRST, "--yes")
    assert status == 0 and f"✓ Revoked {FIRST}" in out
    assert main(["--root", str(tmp_path)], env, stdout=io.StringIO()) == 0  # a re-run keeps nginx working
    assert read(tmp_path, paths.PROXY_CERT) == proxy and not os.path.exists(host(tmp_path, cert_path(FIRST)))


@pytest.fixture
def planned(monkeypatch):
    """Every item the engine checks from now on (what a command planned, run or listed)."""
    from installer.engine import engine

    seen = []
    real_check = engine.Engine.check

    def check(self, plan):
        items = real_check(self, plan)
        seen.extend(items)
        return items

    monkeypatch.setattr(engine.Engine, "check", check)
    return seen


def test_in_proxy_mode_nginx_is_tested_and_reloaded_after_the_crl_changes(tree, no_terminal, planned):
    from installer.engine import engine

    behind_nginx(tree)
    client(tree, "issue", "other")
    assert client(tree, "revoke", "other", "--yes")[0] == 0
    commands = [(item.action.argv, item.status) for item in planned if hasattr(item.action, "argv")]
    assert commands[-2:] == [(("nginx", "-t"), engine.SKIP), (("systemctl", "try-reload-or-restart", "nginx"), engine.SKIP)]
    revoke_commands = [item.action for item in planned[-2:]]
    assert all(paths.MTLS_CRL in action.when_changed for action in revoke_commands)


def test_standalone_revoke_replaces_the_ca_and_reissues_the_others(tree, no_terminal, planned):
    """Vector reads no CRL: the revoked client's certificate must stop verifying against the CA
    Vector loads, while the others get new certificates (same expiry, same key type) and bundles."""
    client(tree, "issue", "laptop")
    client(tree, "issue", "phone", "--days", "30", env={"ACTVT_MTLS_KEY_TYPE": "ecdsa"})
    (tree / "laptop.crt").write_bytes(read(tree, cert_path("laptop")))
    (tree / "first.crt").write_bytes(read(tree, cert_path(FIRST)))
    old_ca, old_phone = read(tree, paths.CA_CERT), pki.load_cert(read(tree, cert_path("phone")))
    old_bundle = read(tree, bundle_path(FIRST))
    planned.clear()  # only what the revoke plans
    stdout = io.StringIO()
    status = main(["client", "revoke", "laptop", "--yes", "--json", "--root", str(tree)], {}, stdout=stdout)
    assert status == 0
    report = json.loads(stdout.getvalue())
    assert report["ca_replaced"] is True and report["reissued"] == [FIRST, "phone"]
    assert [e["name"] for e in report["revoked"]] == ["laptop"]
    new_ca = read(tree, paths.CA_CERT)
    assert new_ca != old_ca and pki.check_ca(new_ca, read(tree, paths.CA_KEY))
    assert list((tree / "var/lib/actvt/backups").glob("*" + paths.CA_KEY))  # the old CA is kept
    for path in (cert_path("laptop"), key_path("laptop"), bundle_path("laptop")):
        assert not os.path.exists(host(tree, path))
    # against the CA Vector will load: the revoked and the old certificates fail, the re-issued pass
    for old in ("laptop.crt", "first.crt"):
        result = subprocess.run(["openssl", "verify", "-CAfile", host(tree, paths.CA_CERT), str(tree / old)],
                                capture_output=True, text=True)
        assert result.returncode != 0, result
    assert verify(tree, FIRST).returncode == 0 and verify(tree, "phone").returncode == 0
    new_phone = pki.load_cert(read(tree, cert_path("phone")))
    assert pki.key_type_of(new_phone.public_key()) == "ecdsa"
    assert abs((new_phone.not_valid_after_utc - old_phone.not_valid_after_utc).total_seconds()) < 86400 + 60
    assert read(tree, bundle_path(FIRST)) != old_bundle
    assert stat.S_IMODE(os.stat(host(tree, bundle_path(FIRST))).st_mode) == 0o600
    # Vector is restarted because the CA changed (listed, not run, under --root)
    services = [item for item in planned if type(item.action).__name__ == "Service"]
    assert len(services) == 1 and paths.CA_CERT in services[0].action.restart_when_changed
    # the list still shows the revoked client, and the new CA's clients as valid
    status, out, _ = client(tree, "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["laptop"].endswith("revoked") and rows[FIRST].endswith("valid")
    assert rows["phone"].endswith("expires within 30 days")


def test_standalone_revoke_says_what_it_does_and_asks_first(tree, monkeypatch):
    client(tree, "issue", "laptop")
    before = etc(tree)
    terminal = Terminal("n")
    monkeypatch.setattr(prompt, "open_tty", lambda: terminal)
    assert client(tree, "revoke", "laptop")[0] == 1 and etc(tree) == before
    assert "replaces the mTLS CA" in terminal.asked and FIRST in terminal.asked
    monkeypatch.setattr(prompt, "open_tty", lambda: None)
    status, out, _ = client(tree, "revoke", "laptop")
    assert status == 1 and "--yes" in out and etc(tree) == before
    status, out, _ = client(tree, "revoke", "laptop", "--yes")
    assert status == 0 and "Hand these bundles out again" in out and f"{FIRST}: scp " in out


def test_a_later_install_keeps_revocations(tree, no_terminal):
    client(tree, "issue", "gone")
    client(tree, "revoke", "gone", "--yes")
    crl = read(tree, paths.MTLS_CRL)
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes"}
    out = io.StringIO()
    assert main(["--root", str(tree)], env, stdout=out) == 0
    assert "Nothing to change" in out.getvalue() and read(tree, paths.MTLS_CRL) == crl


# --- generate-client.sh, for real -----------------------------------------------------------------


@pytest.fixture
def script(tree, tmp_path_factory):
    """(argv prefix, environment) to run the installed generate-client.sh against ``tree``."""
    bin_dir = tmp_path_factory.mktemp("bin")
    wrapper = bin_dir / "actvt"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m installer.commands.cli \"$@\"\n")
    wrapper.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACTVT_")}
    env.update(ACTVT_INTERNAL_COMMAND=str(wrapper), ACTVT_INTERNAL_ROOT=str(tree))
    return [host(tree, paths.GENERATE_CLIENT)], env


def run_script(script, *args, extra=None, stdin=subprocess.DEVNULL, prefix=()):
    argv, env = script
    env = {**env, **(extra or {})}
    return subprocess.run([*prefix, *argv, *args], env=env, stdin=stdin, capture_output=True, text=True, timeout=120,
                          cwd="/")


@pytest.mark.skipif(os.geteuid() != 0, reason="generate-client.sh refuses to run unless root")
def test_generate_client_sh(tree, script):
    usage = run_script(script)
    assert usage.returncode == 1 and usage.stderr.startswith("Usage: ") and "<client-name>" in usage.stderr
    done = run_script(script, "actvt-client-002", extra={"ACTVT_MTLS_CLIENT_DAYS": "730"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:10] == [line.format(name="actvt-client-002", days=730) for line in SEED_LINES]
    assert "  subject=CN = actvt-client-002, O = Actvt" in lines
    assert any(line.startswith("  notBefore=") for line in lines) and any(line.startswith("  notAfter=") for line in lines)
    cert = pki.load_cert(read(tree, cert_path("actvt-client-002")))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=730)
    assert verify(tree, "actvt-client-002").returncode == 0
    # an existing name: refused without a terminal, replaced with --force or after "y" on a terminal
    before = etc(tree)
    again = run_script(script, "actvt-client-002")
    assert again.returncode == 1 and "--force" in again.stdout + again.stderr and etc(tree) == before
    master, slave = pty.openpty()
    try:
        os.write(master, b"y\n")
        confirmed = run_script(script, "actvt-client-002", stdin=slave)
    finally:
        os.close(master)
        os.close(slave)
    assert confirmed.returncode == 0 and "[y/N]" in confirmed.stdout and "generated successfully" in confirmed.stdout
    assert run_script(script, "actvt-client-002", "--force").returncode == 0
    for bad in ("x/O=Evil", "../x", "$(id)"):
        refused = run_script(script, bad)
        assert refused.returncode == 2 and "client name" in refused.stderr
    assert not any(name.startswith("x") or name.startswith("$") for name in os.listdir(host(tree, paths.MTLS_CLIENTS_DIR)))


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"), reason="needs root and setpriv")
def test_generate_client_sh_refuses_non_root(tree, script):
    argv, env = script
    with open(argv[0], "rb") as source:  # the tree is not readable by nobody: feed the script on stdin
        text = source.read()
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s", "--", "c3"],
                            input=text, env=env, capture_output=True, timeout=60)
    assert result.returncode == 1 and b"must be run as root" in result.stderr
    assert not os.path.exists(host(tree, cert_path("c3")))


@pytest.mark.skipif(os.geteuid() != 0, reason="generate-client.sh refuses to run unless root")
def test_generate_client_sh_refuses_without_a_ca(tree, script):
    os.unlink(host(tree, paths.CA_KEY))
    result = run_script(script, "c4")
    assert result.returncode == 1 and "CA certificate or key not found" in result.stderr
    assert not os.path.exists(host(tree, cert_path("c4")))
