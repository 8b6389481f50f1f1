"""``actvt doctor``: what it finds on a --root tree (files, certificates, the concerns' own checks), the
connection it makes over 127.0.0.1 to a WebSocket server standing in for Vector, the exit status, the
JSON, and that it writes nothing and prints no secret.

The connection tests run a small TLS WebSocket server of their own on 127.0.0.1 (no network): it serves
a certificate for the domain signed by a test CA, asks for a client certificate of the tree's mTLS CA
when told to, and sends one metrics message after the upgrade.
"""

import datetime
import json
import os
import socket
import ssl
import struct
import threading
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from installer.commands import doctor, status
from installer.concerns import certbot, nginx, pki, vector
from installer.core import paths, records, websocket
from installer.core.concern import FAIL, PASS, SKIP, WARN
from installer.core.context import Context, Decisions
from installer.core.facts import ProbeResult
from installer.core.paths import Root

from helpers import DOMAIN, ENV, make_config, make_facts, run_cli, tree_digest

FIRST = "actvt-client-001"
METRIC = b'{"metric_type": "cpu_idle", "host": "actvt-server", "value": 97.5}'


pytestmark = pytest.mark.usefixtures("small_ca_keys")


def actvt(*argv, env=None):
    return run_cli(argv, env)


def host(root, path):
    return Root(str(root)).host(path)


def write(root, path, data, mode=0o644):
    target = host(root, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(data)
    os.chmod(target, mode)


def read(root, path):
    with open(host(root, path), "rb") as handle:
        return handle.read()


# --- a certificate for the domain, as Let's Encrypt would give it -----------------------------------


class WebPKI:
    """A test CA (standing in for Let's Encrypt) and the certificates it signs for a name."""

    def __init__(self, tmp_path):
        self.key, self.cert = pki.make_ca(30, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test R3")]))
        self.bundle = tmp_path / "web-roots.pem"
        self.bundle.write_bytes(pki.cert_pem(self.cert))

    def server(self, name=DOMAIN, days=90, ago=0):
        key = pki.new_key("ecdsa")
        start = pki.now_utc() - datetime.timedelta(days=ago)
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .sign(self.key, pki._hash_for(self.key)))
        return pki.cert_pem(cert), pki.key_pem(key)


@pytest.fixture
def web(tmp_path):
    return WebPKI(tmp_path)


def plant_certificate(root, pem, key):
    """What certbot and the installer's copy leave: the lineage and Vector's copies."""
    for path, data, mode in ((paths.fullchain(DOMAIN), pem, 0o644), (paths.privkey(DOMAIN), key, 0o600),
                             (paths.SERVER_CERT, pem, 0o644), (paths.SERVER_KEY, key, 0o640)):
        write(root, path, data, mode)


def installed(tmp_path, web, env=None, name="server"):
    """A --root tree after an install (mTLS unless told otherwise), with its certificate in place."""
    root = tmp_path / name
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    code, out = actvt("--root", str(root), "--yes", env={"ACTVT_ENABLE_MTLS": "yes", **(env or {})})
    assert code == 0, out
    plant_certificate(root, *web.server())
    return root


def run_doctor(root, *extra, env=None):
    return actvt("doctor", "--root", str(root), *extra, env=env)


def checks(root, env=None):
    code, out = run_doctor(root, "--json", env=env)
    return code, json.loads(out)["checks"]


def named(found, check):
    return [item for item in found if item["check"] == check]


# --- a WebSocket server standing in for Vector (and nginx) ------------------------------------------


class WsServer:
    """TLS on 127.0.0.1: the certificate ``cert``; with ``client_ca``, a client certificate of that CA
    is required; after the upgrade: a ping, then ``message`` (its frame in the same packet as the 101
    answer, as a server may send it), or the HTTP ``answer`` when it is not 101."""

    def __init__(self, cert, key, client_ca=None, answer=101, message=METRIC, crl=None, port=0):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with websocket._memory_file(cert) as cert_path, websocket._memory_file(key) as key_path:
            self.context.load_cert_chain(cert_path, key_path)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cadata=client_ca.decode())
        if crl is not None:  # as nginx's ssl_crl does: a revoked client certificate is refused
            self.context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            with websocket._memory_file(crl) as crl_path:
                self.context.load_verify_locations(crl_path)
        self.answer, self.message, self.pongs = answer, message, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            tls = self.context.wrap_socket(conn, server_side=True)
            request = b""
            while b"\r\n\r\n" not in request:
                request += tls.recv(4096)
            if self.answer != 101:
                tls.sendall(b"HTTP/1.1 %d Nope\r\ncontent-length: 7\r\n\r\n" % self.answer)
                time.sleep(0.2)  # the body in a packet of its own
                tls.sendall(b"No page")
                return
            headers = dict(line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line)
            accept = websocket.accept_value(headers["Sec-WebSocket-Key"]).encode()
            tls.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + bytes([0x89, 4]) + b"ping")
            self.pongs.append(websocket.read_frame(websocket.Reader(tls)))
            tls.sendall(bytes([0x81, 126]) + struct.pack("!H", len(self.message)) + self.message
                        if len(self.message) > 125 else bytes([0x81, len(self.message)]) + self.message)
        except (OSError, ssl.SSLError, KeyError, ValueError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def servers():
    made = []

    def make(*args, **kw):
        server = WsServer(*args, **kw)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the WebSocket client ----------------------------------------------------------------------------


def test_the_client_reads_the_first_message_after_a_ping_and_a_long_frame(web, servers):
    cert, key = web.server()
    server = servers(cert, key, message=METRIC * 3)
    result = websocket.attempt("127.0.0.1", server.port, DOMAIN, "/", websocket.context())
    assert result.stage == "done" and result.status == 101 and result.message == (METRIC * 3).decode()
    assert pki.fingerprint(x509.load_der_x509_certificate(result.peer_cert)) == pki.fingerprint(pki.load_cert(cert))
    final, opcode, payload = server.pongs[0]
    assert (final, opcode, payload) == (True, websocket.PONG, b"ping")  # answered, masked as RFC 6455 wants


def test_the_client_says_where_it_stopped(web, servers, tmp_path):
    cert, key = web.server()
    assert websocket.attempt("127.0.0.1", closed_port(), DOMAIN, "/", websocket.context()).stage == "tcp"
    refused = servers(cert, key, answer=496)
    result = websocket.attempt("127.0.0.1", refused.port, DOMAIN, "/actvt", websocket.context())
    assert (result.stage, result.status) == ("http", 496)
    ca_key, ca_cert = pki.make_ca(30)
    wants_client = servers(cert, key, client_ca=pki.cert_pem(ca_cert))
    result = websocket.attempt("127.0.0.1", wants_client.port, DOMAIN, "/", websocket.context())
    assert result.stage == "tls" and result.error  # the handshake, or the first read after it (TLS 1.3)
    client_key, client_cert = pki.issue_client(ca_cert, ca_key, "laptop", 30, "ecdsa")
    result = websocket.attempt("127.0.0.1", wants_client.port, DOMAIN, "/",
                               websocket.context(pki.cert_pem(client_cert), pki.key_pem(client_key)))
    assert result.stage == "done"
    # verified as certbot and apt verify: trusted with the test root, for this name only
    from installer.core.http import tls_context

    trusted = tls_context({"SSL_CERT_FILE": str(web.bundle)})
    assert websocket.attempt("127.0.0.1", refused.port, DOMAIN, "/", websocket.context(verify=trusted)).stage == "http"
    result = websocket.attempt("127.0.0.1", refused.port, "other.example.com", "/",
                               websocket.context(verify=tls_context({"SSL_CERT_FILE": str(web.bundle)})))
    assert result.stage == "trust" and "mismatch" in result.error.lower()
    assert websocket.attempt("127.0.0.1", refused.port, DOMAIN, "/",
                             websocket.context(verify=tls_context({}))).stage == "trust"


# --- on a --root tree ---------------------------------------------------------------------------------


def test_not_installed(tmp_path):
    code, out = run_doctor(tmp_path)
    assert code == 3 and "not installed" in out
    code, out = run_doctor(tmp_path, "--json")
    assert code == 3 and json.loads(out) == {"installed": False}


def test_a_healthy_tree_passes_and_doctor_writes_nothing(tmp_path, web):
    root = installed(tmp_path, web)
    before = tree_digest(root)
    code, out = run_doctor(root)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"actvt doctor: {DOMAIN}, standalone, mTLS with this server's CA (wss://{DOMAIN}:4096)"
    assert "  ✓ Files: " in out and "(owners not compared under --root)" in out
    assert f"  ✓ deploy hook {paths.DEPLOY_HOOK} is in place" in lines
    assert f"  ✓ {paths.SERVER_CERT} is certbot's current certificate" in lines
    assert "  ✓ Clients: 1 valid, none expires within 30 days" in lines
    assert "  - Connection: not tried (--root)" in lines and "  - vector validate: not run (runuser not found, or --root)" in lines
    assert "  - Firewall: not checked (--root, or no command could be run)" in lines
    assert lines[-1].endswith("0 failed, 6 not checked") and "0 warning(s)" in lines[-1]
    code, out = run_doctor(root, "--json")
    report = json.loads(out)
    assert code == 0 and report["failed"] == 0 and report["mtls"] == "own-ca" and report["mode"] == "standalone"
    assert {item["level"] for item in report["checks"]} == {PASS, SKIP}
    assert all(set(item) == {"check", "level", "text", "fix"} for item in report["checks"])
    assert tree_digest(root) == before  # read-only: not one byte, no log, no lock


def test_a_key_readable_by_everyone_is_named_with_its_chmod(tmp_path, web):
    root = installed(tmp_path, web)
    os.chmod(host(root, paths.CA_KEY), 0o644)
    code, found = checks(root)
    assert code == 1
    [wrong] = [item for item in named(found, "files") if item["level"] == FAIL]
    assert wrong["text"] == (f"Files: {paths.CA_KEY} is 0644; the installer makes it 0600 (a private key readable "
                             "by more users than it should be)")
    assert wrong["fix"] == f"sudo chmod 0600 {paths.CA_KEY}"
    os.chmod(host(root, paths.CA_KEY), 0o600)
    assert run_doctor(root)[0] == 0


def test_owners_are_compared_on_the_host(tmp_path, web, monkeypatch):
    """As root on the host doctor compares owners too (under --root the tree's names mean nothing)."""
    root = installed(tmp_path, web)
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file another owner")
    monkeypatch.setattr(records, "SERVICE_USER", "nobody")  # the bash installer's vector:vector key (no vector here)
    os.chown(host(root, paths.CA_KEY), 65534, 65534)
    install = status.read_install(Root(str(root)), ENV)

    def wrong():
        found = doctor.file_findings(install, Root(str(root)), status.context(), owners=True)
        return {item.text.split()[1]: item for item in found if item.level == FAIL}

    found = wrong()
    assert found[paths.CA_KEY].fix == f"sudo chown root:root {paths.CA_KEY}"
    assert found[paths.CA_KEY].text.startswith(f"Files: {paths.CA_KEY} is 0600 ")
    assert found[paths.CA_KEY].text.split()[4] in ("nobody:nogroup;", "65534:65534;")
    # the tree's copies of the certificate are root:root (this test host has no vector group); Vector reads them
    # as group vector
    assert found[paths.SERVER_KEY].text == (f"Files: {paths.SERVER_KEY} is 0640 root:root; the installer makes it "
                                            "0640 root:vector")
    assert found[paths.SERVER_KEY].fix == f"sudo chown root:vector {paths.SERVER_KEY}"
    # a client bundle belongs to whoever ran sudo to make it: its owner is not held against it
    os.chown(host(root, paths.CA_KEY), 0, 0)
    os.chown(host(root, paths.client_bundle(FIRST)), 65534, 0)
    assert set(wrong()) == {paths.SERVER_CERT, paths.SERVER_KEY}


def hand_made_client(root, name, days, ago):
    """A client certificate of the tree's CA that started ``ago`` days ago (the index learns of it)."""
    ca_key, ca_cert = pki.load_key(read(root, paths.CA_KEY)), pki.load_cert(read(root, paths.CA_CERT))
    key, cert = pki.issue_client(ca_cert, ca_key, name, days, "ecdsa", now=pki.now_utc() - datetime.timedelta(days=ago))
    write(root, paths.client_cert(name), pki.cert_pem(cert))
    write(root, paths.client_key(name), pki.key_pem(key), 0o600)


def test_expired_and_expiring_clients_are_listed_with_renew(tmp_path, web):
    root = installed(tmp_path, web)
    hand_made_client(root, "old", 30, ago=40)
    hand_made_client(root, "soon", 30, ago=20)
    code, found = checks(root)
    assert code == 1  # an expired client fails, one that expires soon warns
    clients = {item["text"].split(":")[0]: item for item in named(found, "mtls.client")}
    assert set(clients) == {"client old", "client soon"}
    assert clients["client old"]["level"] == FAIL and "expired on" in clients["client old"]["text"]
    assert clients["client old"]["fix"].startswith("sudo actvt client renew old")
    assert clients["client soon"]["level"] == WARN and clients["client soon"]["fix"] == "sudo actvt client renew soon"
    # status warns the same way
    code, out = actvt("status", "--root", str(root))
    assert "  ✗ client old: expired on" in out and "  ⚠ client soon: expires" in out
    assert "      fix: sudo actvt client renew soon" in out
    code, out = actvt("status", "--root", str(root), "--json")
    assert {item["check"] for item in json.loads(out)["warnings"]} == {"mtls.client"}
    # renewing both makes doctor pass again
    assert actvt("client", "renew", "old", "--root", str(root))[0] == 0
    assert actvt("client", "renew", "--all-expiring", "30", "--root", str(root))[0] == 0
    code, found = checks(root)
    assert code == 0 and [item["level"] for item in named(found, "mtls.client")] == [PASS]


def test_a_ca_that_ends_within_30_days_is_warned_of(tmp_path, web):
    root = installed(tmp_path, web, env={"ACTVT_MTLS_CA_DAYS": "20"})
    code, found = checks(root)
    assert code == 0
    [ca] = named(found, "mtls.ca")
    assert ca["level"] == WARN and ca["text"].startswith("mTLS CA: expires")
    assert ca["fix"].startswith("sudo ACTVT_REUSE_MTLS_CA=no actvt install")
    assert named(found, "mtls.crl")[0]["level"] == WARN  # signed to last as long as the CA
    assert {item["text"].split(":")[0] for item in named(found, "mtls.client")} == {f"client {FIRST}"}  # cut to the CA
    code, out = actvt("status", "--root", str(root))
    assert "  ⚠ mTLS CA: expires" in out and "      fix: sudo ACTVT_REUSE_MTLS_CA=no actvt install" in out


def test_the_server_certificate_copy_and_its_end(tmp_path, web):
    root = installed(tmp_path, web)
    stale, _ = web.server()
    write(root, paths.SERVER_CERT, stale)  # certbot renewed, the copy for Vector did not follow
    code, found = checks(root)
    assert code == 1 and named(found, "certbot.lineage")[0]["level"] == FAIL
    assert named(found, "certbot.lineage")[0]["fix"] == "sudo actvt install"
    plant_certificate(root, *web.server(days=90, ago=75))  # 15 days left of 90: renewals have failed for days
    code, found = checks(root)
    [end] = named(found, "certificate.server")
    assert code == 0 and end["level"] == WARN and end["fix"] == f"sudo certbot renew --cert-name {DOMAIN}"
    plant_certificate(root, *web.server(days=90, ago=91))
    code, found = checks(root)
    assert code == 1 and named(found, "certificate.server")[0]["level"] == FAIL


def test_without_mtls_there_is_nothing_of_it(tmp_path, web):
    root = installed(tmp_path, web, env={"ACTVT_ENABLE_MTLS": "no"})
    code, out = run_doctor(root)
    assert code == 0, out
    assert out.splitlines()[0] == f"actvt doctor: {DOMAIN}, standalone, no mTLS (wss://{DOMAIN}:4096)"
    assert "mTLS" not in "\n".join(out.splitlines()[1:]) and "client" not in out


def test_a_trust_only_server_says_what_is_not_checked(tmp_path, web):
    folder = tmp_path / "fleet"
    assert actvt("ca", "init", "--dir", str(folder))[0] == 0
    root = tmp_path / "member"
    (root / "etc/actvt").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "etc/actvt/fleet-ca.pem").write_bytes((folder / "trust.pem").read_bytes())
    assert actvt("--root", str(root), "--yes", env={"ACTVT_MTLS_CA_FILE": "/etc/actvt/fleet-ca.pem"})[0] == 0
    plant_certificate(root, *web.server())
    code, out = run_doctor(root)
    assert code == 0, out
    assert "mTLS with a CA kept elsewhere" in out.splitlines()[0]
    assert "This server trusts /etc/actvt/fleet-ca.pem and holds no CA or client key" in out
    assert "  ✓ mTLS CA (trusted, kept elsewhere): expires" in out and "Clients:" not in out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    code, _ = actvt("doctor", "--root", str(tmp_path / "missing"))
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--root" in err and "allowed: an existing directory" in err


# --- the connection, over 127.0.0.1 -------------------------------------------------------------------


def connect(root, port, web, env=None):
    """Doctor's findings with the connection tried against 127.0.0.1:port, trusting the test CA."""
    environ = {**ENV, "ACTVT_VECTOR_PORT": str(port), "SSL_CERT_FILE": str(web.bundle), **(env or {})}
    return {item["check"]: item for item in doctor.report(Root(str(root)), environ, address="127.0.0.1")["checks"]}


def test_a_healthy_mtls_connection(tmp_path, web, servers):
    root = installed(tmp_path, web)
    server = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY), client_ca=read(root, paths.CA_CERT))
    before = tree_digest(root)
    found = connect(root, server.port, web)
    assert found["port"]["text"] == f"Port {server.port}: Vector answers on 127.0.0.1:{server.port}"
    assert found["certificate.served"] == {
        "check": "certificate.served", "level": PASS, "fix": "",
        "text": f"Served certificate on wss://127.0.0.1:{server.port}/: the one in {paths.SERVER_CERT}, valid for "
                f"{DOMAIN}, trusted (issued by Test R3)"}
    assert found["metrics"]["level"] == PASS and found["metrics"]["text"] == (
        f"Metrics with {FIRST}'s certificate: a metrics message arrives on wss://127.0.0.1:{server.port}/ (cpu_idle)")
    assert found["mtls.refused"]["level"] == PASS and "refuses the handshake" in found["mtls.refused"]["text"]
    assert tree_digest(root) == before
    # the client certificate doctor used is one that is current: a revoked first client is not tried,
    # even with its files put back (standalone, the revocation made a new CA, which did not sign them)
    assert actvt("client", "issue", "spare", "--root", str(root))[0] == 0
    kept = {path: read(root, path) for path in (paths.client_cert(FIRST), paths.client_key(FIRST))}
    assert actvt("client", "revoke", FIRST, "--yes", "--root", str(root))[0] == 0  # standalone: a new CA
    for path, data in kept.items():
        write(root, path, data, 0o600)
    server = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY), client_ca=read(root, paths.CA_CERT))
    assert connect(root, server.port, web)["metrics"]["text"].startswith("Metrics with spare's certificate")


def test_a_revoked_client_whose_files_are_back_is_not_tried_behind_nginx(tmp_path, web, servers):
    """Behind nginx a revocation keeps the CA (the CRL denies the client), so a revoked certificate put
    back in clients/ is still signed by it: only the index's status says not to use it. nginx, stood in
    for on 127.0.0.1:443 with the CRL, would refuse it and doctor would report a failure that is not one."""
    proxy = {"ACTVT_INSTALL_MODE": "proxy"}
    root = installed(tmp_path, web, env=proxy)
    assert actvt("client", "issue", "spare", "--root", str(root))[0] == 0
    kept = {path: read(root, path) for path in (paths.client_cert(FIRST), paths.client_key(FIRST))}
    ca = read(root, paths.CA_CERT)
    code, out = actvt("client", "revoke", FIRST, "--yes", "--root", str(root), env=proxy)
    assert code == 0 and "nginx refuses them" in out, out
    assert read(root, paths.CA_CERT) == ca and not os.path.exists(host(root, paths.client_cert(FIRST)))
    for path, data in kept.items():
        write(root, path, data, 0o600)
    crl = read(root, paths.MTLS_CRL)
    try:
        servers(*web.server(), client_ca=ca, crl=crl, port=443)  # in nginx's place
    except OSError as exc:  # not root, or 443 taken
        pytest.skip(f"cannot listen on 127.0.0.1:443 for nginx's place ({exc})")
    found = connect(root, closed_port(), web, env=proxy)
    assert found["metrics"]["level"] == PASS, found["metrics"]
    assert found["metrics"]["text"] == ("Metrics with spare's certificate: a metrics message arrives on "
                                        "https://127.0.0.1:443/actvt (cpu_idle)")
    # the front really refuses the revoked certificate that doctor did not pick
    refused = websocket.attempt("127.0.0.1", 443, DOMAIN, "/actvt", websocket.context(*kept.values()))
    assert refused.stage == "tls" and refused.message is None, refused


def test_mtls_not_enforced_is_a_failure(tmp_path, web, servers):
    root = installed(tmp_path, web)
    server = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY))  # asks for no client certificate
    found = connect(root, server.port, web)
    assert found["metrics"]["level"] == PASS
    assert found["mtls.refused"]["level"] == FAIL and "Vector does not ask for client certificates" in \
        found["mtls.refused"]["text"]
    assert found["mtls.refused"]["fix"] == "sudo actvt install  (rewrites vector.toml)"


def test_nothing_listening_stops_the_connection_checks(tmp_path, web):
    root = installed(tmp_path, web)
    port = closed_port()
    found = connect(root, port, web)
    assert found["port"]["level"] == FAIL and f"nothing answers on 127.0.0.1:{port}" in found["port"]["text"]
    assert found["connection"]["level"] == SKIP and "metrics" not in found


def test_a_wrong_or_untrusted_certificate(tmp_path, web, servers):
    root = installed(tmp_path, web)
    other = servers(*web.server("other.example.net"), client_ca=read(root, paths.CA_CERT))
    found = connect(root, other.port, web)
    assert found["certificate.served"]["level"] == FAIL
    assert f"is not valid for {DOMAIN} (it names other.example.net)" in found["certificate.served"]["text"]
    stale = servers(*web.server(), client_ca=read(root, paths.CA_CERT))  # Vector not restarted after a renewal
    found = connect(root, stale.port, web)
    assert found["certificate.served"]["text"].endswith("(Vector was not restarted after a renewal, or the file "
                                                        "changed since)")
    assert found["certificate.served"]["fix"] == "sudo systemctl restart vector"
    server = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY), client_ca=read(root, paths.CA_CERT))
    found = connect(root, server.port, web, env={"SSL_CERT_FILE": str(tmp_path / "no-such-file")})
    assert found["certificate.served"]["level"] == FAIL and "not trusted by this system's CA store" in \
        found["certificate.served"]["text"]


def test_a_message_that_is_not_metrics(tmp_path, web, servers):
    root = installed(tmp_path, web)
    server = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY), client_ca=read(root, paths.CA_CERT),
                     message=b"hello")
    found = connect(root, server.port, web)
    assert found["metrics"]["level"] == FAIL and "is not a metrics message: 'hello'" in found["metrics"]["text"]


def test_behind_nginx_the_refusal_is_a_496():
    """nginx sends its own 496 (``return 496``) as a 400 with its page: that, and only that, passes."""
    where = "https://127.0.0.1:443/actvt"
    page = b"<html><head><title>400 No required SSL certificate was sent</title></head>"
    ok = doctor.refused_finding(websocket.Attempt("http", "HTTP 400", status=400, body=page), nginx.FRONT, where)
    assert ok.level == PASS and ok.text == (f"Without a client certificate: {where} answers 496 (nginx sends it as "
                                            "400 'No required SSL certificate was sent'), as it should")
    bad_request = doctor.refused_finding(websocket.Attempt("http", "HTTP 400", status=400, body=b"400 Bad Request"),
                                         nginx.FRONT, where)
    assert bad_request.level == FAIL and "answers HTTP 400, not 496" in bad_request.text
    open_door = doctor.refused_finding(websocket.Attempt("done", status=101, message="{}"), nginx.FRONT, where)
    assert open_door.level == FAIL and "answers HTTP 101, not 496" in open_door.text
    assert open_door.fix == "sudo actvt install  (rewrites the nginx site)"


def test_the_body_of_a_refusal_is_read(web, servers):
    cert, key = web.server()
    server = servers(cert, key, answer=400)
    result = websocket.attempt("127.0.0.1", server.port, DOMAIN, "/actvt", websocket.context())
    assert (result.stage, result.status, result.body) == ("http", 400, b"No page")


def test_an_address_of_this_host():
    assert doctor.is_local("127.0.0.1") and not doctor.is_local("192.0.2.10")  # TEST-NET-1: on no interface


@pytest.mark.parametrize("addresses,level,words", [
    ((), FAIL, "does not resolve from this server"),
    (("192.0.2.10",), PASS, "resolves to 192.0.2.10, an address of this host"),
    (("127.0.1.1",), WARN, "resolves to 127.0.1.1 only (this host's own /etc/hosts)"),
    (("192.0.2.10", "198.51.100.7"), WARN, "resolves to 198.51.100.7, which is not an address of this host's"),
    (None, SKIP, "not looked up"),
])
def test_dns(addresses, level, words, monkeypatch):
    monkeypatch.setattr(doctor, "is_local", lambda address: address == "192.0.2.10")  # as if it were this host's
    found = doctor.dns_finding(DOMAIN, addresses)
    assert found.level == level and words in found.text
    assert bool(found.fix) == (level in (FAIL, WARN))


# --- what the concerns check of themselves -----------------------------------------------------------


def judge(concern, probes=(), files=None, mode="standalone", **config):
    facts = make_facts(files=files or {}, probes=dict(probes))
    decisions = Decisions(mode=mode, webserver="nginx" if mode == "proxy" else "none")
    return concern.CONCERN.checks.judge(make_config(**config), facts, decisions, Context("1", "2026-01-01T00:00:00Z"))


def test_vector_validate_as_the_vector_user():
    assert vector.CONCERN.checks.probes[0].argv == ("runuser", "-u", "vector", "--", "vector", "validate",
                                                    paths.VECTOR_CONFIG)
    [ok] = judge(vector, {"vector_validate": ProbeResult(0, "√ Loaded\n√ Component configuration\n")})
    assert ok.level == PASS
    [bad] = judge(vector, {"vector_validate": ProbeResult(78, "Failed to load [\"/etc/vector/vector.toml\"]\n"
                                                          "\x1b[31mx\x1b[0m Could not open key file: Permission denied\n")})
    assert bad.level == FAIL and bad.text.endswith("| x Could not open key file: Permission denied")
    assert bad.fix.startswith("sudo actvt install")
    assert judge(vector)[0].level == SKIP


def test_nginx_t_in_proxy_mode_names_the_file_to_correct():
    assert judge(nginx, mode="standalone") == []
    failed = 'nginx: [emerg] unknown directive "oops" in {}:1\nnginx: configuration file /etc/nginx/nginx.conf test failed\n'
    [other] = judge(nginx, {"nginx_T": ProbeResult(1, failed.format("/etc/nginx/conf.d/mine.conf"))}, mode="proxy")
    assert other.level == FAIL and other.fix == ("correct /etc/nginx/conf.d/mine.conf, then: sudo nginx -t && sudo "
                                                 "systemctl reload nginx")
    [ours] = judge(nginx, {"nginx_T": ProbeResult(1, failed.format(paths.NGINX_SITE))}, mode="proxy")
    assert ours.fix == "sudo actvt install  (rewrites it)"
    assert judge(nginx, {"nginx_T": ProbeResult(0, "# configuration file /etc/nginx/nginx.conf:\n")},
                 mode="proxy")[0].level == PASS


def test_certbot_timer_and_hook():
    hook = certbot.hook_text(DOMAIN)
    found = judge(certbot, {"certbot_timer": ProbeResult(3, "inactive\ninactive\ninactive\n")},
                  files={paths.DEPLOY_HOOK: hook})
    timer = [item for item in found if item.check == "certbot.timer"][0]
    assert timer.level == FAIL and timer.fix == "sudo systemctl enable --now certbot.timer"
    found = judge(certbot, {"certbot_timer": ProbeResult(0, "inactive\nactive\ninactive\n")},
                  files={paths.DEPLOY_HOOK: hook + b"# edited\n"})
    by = {item.check: item for item in found}
    assert by["certbot.timer"].text == "certbot's renewal timer certbot-renew.timer is active"
    assert by["certbot.hook"].level == WARN and by["certbot.hook"].fix == "sudo actvt install"
    assert {item.check: item.level for item in judge(certbot)}["certbot.hook"] == FAIL
