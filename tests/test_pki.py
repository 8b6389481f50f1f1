"""pki: what the CA and client certificates contain, checked with the old guide's own openssl commands (docs/mtls.md),
strict verification, adoption of a CA made by the old guide's manual steps (docs/mtls.md), CRLs, bundles, and a TLS
handshake with a strict default context."""

import datetime
import io
import socket
import ssl
import subprocess
import tarfile
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from installer.concerns import pki

NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)


def openssl(*args, check=True, cwd=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=check, cwd=cwd)


@pytest.fixture(scope="module")
def ca():
    key, cert = pki.make_ca(3650)
    return key, cert


@pytest.fixture
def ca_files(tmp_path, ca):
    key, cert = ca
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem(cert))
    (tmp_path / "ca.key").write_bytes(pki.key_pem(key))
    return tmp_path


def write_client(folder, name, key, cert):
    (folder / f"{name}.crt").write_bytes(pki.cert_pem(cert))
    (folder / f"{name}.key").write_bytes(pki.key_pem(key))
    return folder / f"{name}.crt"


def strict_verify(ca_path, cert_path, *extra):
    return openssl("verify", "-x509_strict", "-purpose", "sslclient", *extra, "-CAfile", str(ca_path),
                   str(cert_path), check=False)


# --- the CA ---------------------------------------------------------------------------------------


def test_ca_is_what_the_seed_documents_plus_the_extensions_verifiers_demand(ca_files, ca):
    key, cert = ca
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
    assert pki.key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert cert.subject == cert.issuer == pki.CA_SUBJECT
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=3650)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert pki.ca_problems(cert) == []
    shown = openssl("x509", "-in", str(ca_files / "ca.crt"), "-noout", "-subject", "-issuer", "-enddate").stdout
    assert "subject=CN = Actvt-CA, O = Actvt, C = US" in shown and "issuer=CN = Actvt-CA, O = Actvt, C = US" in shown
    text = openssl("pkey", "-in", str(ca_files / "ca.key"), "-noout", "-text").stdout
    assert "Private-Key: (4096 bit" in text
    # the CA verifies as a CA, strictly
    assert openssl("verify", "-x509_strict", "-CAfile", str(ca_files / "ca.crt"), str(ca_files / "ca.crt"),
                   check=False).returncode == 0


def test_key_match_and_unreadable_pems(ca):
    key, cert = ca
    assert pki.key_matches(cert, key)
    other = pki.new_key("rsa", 2048)
    assert not pki.key_matches(cert, other)
    with pytest.raises(pki.PKIError, match="does not belong"):
        pki.check_ca(pki.cert_pem(cert), pki.key_pem(other))
    with pytest.raises(pki.PKIError, match="not a PEM certificate"):
        pki.check_ca(b"garbage", pki.key_pem(key))
    with pytest.raises(pki.PKIError, match="not a PEM private key"):
        pki.check_ca(pki.cert_pem(cert), b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(pki.PKIError, match="password"):
        pki.load_key(locked)


# --- clients --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_client_certificate_passes_strict_verification_and_the_seed_checks(tmp_path, ca_files, ca, key_type):
    ca_key, ca_cert = ca
    key, cert = pki.issue_client(ca_cert, ca_key, "actvt-client-001", 365, key_type)
    path = write_client(tmp_path, "actvt-client-001", key, cert)
    result = strict_verify(ca_files / "ca.crt", path)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stderr
    assert openssl("verify", "-CAfile", str(ca_files / "ca.crt"), str(path)).stdout.strip().endswith("OK")
    shown = openssl("x509", "-in", str(path), "-noout", "-subject", "-dates", "-issuer").stdout.splitlines()
    assert shown[0] == "subject=CN = actvt-client-001, O = Actvt"
    assert shown[1].startswith("notBefore=") and shown[2].startswith("notAfter=")
    assert shown[3] == "issuer=CN = Actvt-CA, O = Actvt, C = US"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=365)
    assert pki.key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----\n")
    text = openssl("pkey", "-in", str(tmp_path / "actvt-client-001.key"), "-noout", "-text").stdout
    if key_type == "rsa":
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048 and "(2048 bit" in text
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1" and "prime256v1" in text
    exts = cert.extensions
    bc = exts.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = exts.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(exts.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert exts.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.signature_hash_algorithm.name == "sha256"


def test_serials_are_random_and_at_least_64_bits(ca):
    ca_key, ca_cert = ca
    serials = {pki.issue_client(ca_cert, ca_key, f"c{i}", 30, "ecdsa")[1].serial_number for i in range(20)}
    assert len(serials) == 20
    assert all(serial.bit_length() >= 64 for serial in serials)


def test_validity_days_and_a_name_cannot_add_a_subject_field(ca):
    ca_key, ca_cert = ca
    _, cert = pki.issue_client(ca_cert, ca_key, "x/O=Evil", 730, "ecdsa", now=NOW)
    assert cert.not_valid_before_utc == NOW and cert.not_valid_after_utc == NOW + datetime.timedelta(days=730)
    assert [attr.value for attr in cert.subject] == ["x/O=Evil", "Actvt"]
    assert len(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)) == 1


def test_the_signing_request_is_checked(ca):
    ca_key, ca_cert = ca
    key = pki.new_key("ecdsa")
    csr = pki.make_csr(key, "c1")
    assert csr.is_signature_valid and csr.subject == pki.client_subject("c1")
    cert = pki.sign_csr(csr, ca_cert, ca_key, 10)
    assert pki.issued_by(cert, ca_cert) and pki.key_matches(cert, key)
    other_key, other_ca = pki.make_ca(10, key=pki.new_key("ecdsa"))
    assert not pki.issued_by(cert, other_ca)


# --- adoption of a CA made by the old guide's manual steps (docs/mtls.md) ---------------------------------------------


def seed_manual_ca(folder):
    """Step 1 and Step 2 of the old guide, as written (paths relative to ``folder``)."""
    (folder / "clients").mkdir()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096", "-out", "ca.key", cwd=folder)
    openssl("req", "-new", "-x509", "-sha256", "-days", "3650", "-key", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=Actvt-CA/O=Actvt/C=US", cwd=folder)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
            "clients/actvt-client-001.key", cwd=folder)
    openssl("req", "-new", "-key", "clients/actvt-client-001.key", "-out", "clients/actvt-client-001.csr",
            "-subj", "/CN=actvt-client-001/O=Actvt", cwd=folder)
    (folder / "ext.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-days", "365", "-sha256", "-in", "clients/actvt-client-001.csr", "-CA", "ca.crt",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", "clients/actvt-client-001.crt", "-extfile", "ext.cnf",
            cwd=folder)
    (folder / "clients/actvt-client-001.csr").unlink()


@pytest.fixture(scope="module")
def seed_tree(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed")
    seed_manual_ca(folder)
    return folder


def test_the_seed_ca_fails_strict_verification_and_adoption_fixes_it(tmp_path, seed_tree):
    client = seed_tree / "clients/actvt-client-001.crt"
    before = strict_verify(seed_tree / "ca.crt", client)
    assert before.returncode != 0 and "key usage" in (before.stdout + before.stderr).lower()
    old = pki.load_cert((seed_tree / "ca.crt").read_bytes())
    key = pki.load_key((seed_tree / "ca.key").read_bytes())
    assert "no keyUsage" in pki.ca_problems(old)
    adopted = pki.adopt_ca(old, key)
    assert pki.ca_problems(adopted) == []
    assert adopted.subject == old.subject and adopted.serial_number == old.serial_number
    assert adopted.not_valid_after_utc == old.not_valid_after_utc and pki.key_matches(adopted, key)
    assert pki.key_id(adopted) == pki.key_id(old)
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem(adopted))
    after = strict_verify(tmp_path / "ca.crt", client)
    assert after.returncode == 0, after.stdout + after.stderr
    # and new clients signed with the same key verify too
    _, cert = pki.issue_client(adopted, key, "actvt-client-002", 365, "ecdsa")
    (tmp_path / "new.crt").write_bytes(pki.cert_pem(cert))
    assert strict_verify(tmp_path / "ca.crt", tmp_path / "new.crt").returncode == 0
    # the old guide's own client still passes the old guide's plain check against the adopted CA
    assert openssl("verify", "-CAfile", str(tmp_path / "ca.crt"), str(client)).returncode == 0


def test_adoption_refuses_a_foreign_key(seed_tree):
    old = pki.load_cert((seed_tree / "ca.crt").read_bytes())
    with pytest.raises(pki.PKIError):
        pki.adopt_ca(old, pki.new_key("ecdsa"))


# --- revocation -----------------------------------------------------------------------------------


def test_crl_is_signed_by_the_ca_and_makes_openssl_refuse_the_revoked_client(tmp_path, ca_files, ca):
    ca_key, ca_cert = ca
    k1, revoked = pki.issue_client(ca_cert, ca_key, "gone", 365, "ecdsa")
    k2, kept = pki.issue_client(ca_cert, ca_key, "kept", 365, "ecdsa")
    crl = pki.make_crl(ca_cert, ca_key, {revoked.serial_number: (NOW, pki.REVOKED_REASON)}, number=3)
    (tmp_path / "crl.pem").write_bytes(pki.crl_pem(crl))
    info = pki.read_crl(pki.crl_pem(crl), ca_cert)
    assert info.number == 3 and info.serials == {revoked.serial_number}
    assert info.next_update == ca_cert.not_valid_after_utc
    text = openssl("crl", "-in", str(tmp_path / "crl.pem"), "-noout", "-text").stdout
    assert pki.serial_hex(revoked) in text.replace(":", "")
    for cert, ok in ((revoked, False), (kept, True)):
        path = tmp_path / "c.crt"
        path.write_bytes(pki.cert_pem(cert))
        result = strict_verify(ca_files / "ca.crt", path, "-crl_check", "-CRLfile", str(tmp_path / "crl.pem"))
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
    other_key, other_ca = pki.make_ca(10, key=pki.new_key("ecdsa"))
    assert pki.read_crl(pki.crl_pem(crl), other_ca) is None
    with pytest.raises(pki.PKIError):
        pki.read_crl(b"nonsense", ca_cert)


# --- the bundle -----------------------------------------------------------------------------------


def test_bundle_holds_exactly_the_two_files_and_is_deterministic(tmp_path, ca):
    ca_key, ca_cert = ca
    key, cert = pki.issue_client(ca_cert, ca_key, "actvt-client-001", 365, "ecdsa")
    crt_pem, key_data = pki.cert_pem(cert), pki.key_pem(key)
    one = pki.bundle_bytes("actvt-client-001", crt_pem, key_data, 1700000000)
    assert one == pki.bundle_bytes("actvt-client-001", crt_pem, key_data, 1700000000)
    (tmp_path / "b.tar.gz").write_bytes(one)
    listing = subprocess.run(["tar", "-tzf", str(tmp_path / "b.tar.gz")], capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines() == ["clients/actvt-client-001.crt", "clients/actvt-client-001.key"]
    with tarfile.open(fileobj=io.BytesIO(one), mode="r:gz") as tar:
        modes = {info.name: info.mode for info in tar.getmembers()}
        assert tar.extractfile("clients/actvt-client-001.key").read() == key_data
    assert modes == {"clients/actvt-client-001.crt": 0o644, "clients/actvt-client-001.key": 0o600}
    assert pki.bundle_holds(one, "actvt-client-001", crt_pem, key_data)
    assert not pki.bundle_holds(one, "actvt-client-001", crt_pem, pki.key_pem(pki.new_key("ecdsa")))
    assert not pki.bundle_holds(b"not a tarball", "actvt-client-001", crt_pem, key_data)


# --- a TLS handshake with a strict context --------------------------------------------------------


def _server_cert(tmp_path):
    """A server certificate for localhost from a throwaway CA (stands in for Let's Encrypt)."""
    key, root = pki.make_ca(10, key=pki.new_key("ecdsa"))
    server_key = pki.new_key("ecdsa")
    now = pki.now_utc()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(root.subject).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "server-root.crt").write_bytes(pki.cert_pem(root))
    (tmp_path / "server.crt").write_bytes(pki.cert_pem(cert))
    (tmp_path / "server.key").write_bytes(pki.key_pem(server_key))


def handshake(tmp_path, client_ca: bytes, client_crt: bytes, client_key: bytes, crl: bytes = None) -> bool:
    """A TLS server that requires a client certificate signed by ``client_ca`` and verifies it the
    way Python 3.13's default context does (VERIFY_X509_STRICT); the client uses the default context."""
    if not (tmp_path / "server.crt").exists():
        _server_cert(tmp_path)
    (tmp_path / "client-ca.crt").write_bytes(client_ca + (crl or b""))
    (tmp_path / "client.crt").write_bytes(client_crt)
    (tmp_path / "client.key").write_bytes(client_key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "client-ca.crt"))
    server_ctx.load_cert_chain(str(tmp_path / "server.crt"), str(tmp_path / "server.key"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT | getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    if crl:
        server_ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "server-root.crt"))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome = {}

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                outcome["peer"] = tls.getpeercert()
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome["error"] = exc
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                data = tls.recv(2)  # TLS 1.3: the server's verdict on our certificate arrives here
    except (ssl.SSLError, OSError):
        data = b""
    thread.join(10)
    LAST.clear()
    LAST.update(outcome, data=data)
    return data == b"ok" and "peer" in outcome


LAST = {}  # what the last handshake saw, for assertion messages


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_tls_handshake_with_a_strict_default_context(tmp_path, ca, key_type):
    ca_key, ca_cert = ca
    key, cert = pki.issue_client(ca_cert, ca_key, "actvt-client-001", 365, key_type)
    assert handshake(tmp_path, pki.cert_pem(ca_cert), pki.cert_pem(cert), pki.key_pem(key)), LAST
    # a certificate from another CA is refused
    other_key, other_ca = pki.make_ca(10, key=pki.new_key("ecdsa"))
    okey, ocert = pki.issue_client(other_ca, other_key, "intruder", 365, "ecdsa")
    assert not handshake(tmp_path, pki.cert_pem(ca_cert), pki.cert_pem(ocert), pki.key_pem(okey))


def test_tls_handshake_seed_client_refused_by_strict_check_until_the_ca_is_adopted(tmp_path, seed_tree):
    crt = (seed_tree / "clients/actvt-client-001.crt").read_bytes()
    key = (seed_tree / "clients/actvt-client-001.key").read_bytes()
    old = (seed_tree / "ca.crt").read_bytes()
    assert not handshake(tmp_path, old, crt, key)
    adopted = pki.adopt_ca(pki.load_cert(old), pki.load_key((seed_tree / "ca.key").read_bytes()))
    assert handshake(tmp_path, pki.cert_pem(adopted), crt, key), LAST


def test_tls_handshake_refuses_a_revoked_client_when_the_crl_is_loaded(tmp_path, ca):
    ca_key, ca_cert = ca
    key, cert = pki.issue_client(ca_cert, ca_key, "gone", 365, "ecdsa")
    crl = pki.crl_pem(pki.make_crl(ca_cert, ca_key, {cert.serial_number: (pki.now_utc(), pki.REVOKED_REASON)}, 1))
    empty = pki.crl_pem(pki.make_crl(ca_cert, ca_key, {}, 2))
    assert handshake(tmp_path, pki.cert_pem(ca_cert), pki.cert_pem(cert), pki.key_pem(key), crl=empty), LAST
    assert not handshake(tmp_path, pki.cert_pem(ca_cert), pki.cert_pem(cert), pki.key_pem(key), crl=crl)


def test_display_helpers(ca):
    _, cert = ca
    assert pki.openssl_name(cert.subject) == "CN = Actvt-CA, O = Actvt, C = US"
    assert pki.openssl_date(datetime.datetime(2026, 3, 5, 1, 2, 3)) == "Mar  5 01:02:03 2026 GMT"
    assert pki.serial_hex(0xABC) == "0ABC"
    assert len(pki.fingerprint(cert).split(":")) == 32
