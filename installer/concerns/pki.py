"""The private CA and its client certificates, with ``cryptography`` only (no openssl subprocess).

Pure functions of their inputs (plus fresh randomness for keys and serials): nothing here reads or
writes a file. Written against cryptography 43 (the version the zipapp ships).

What a certificate contains is decided here and nowhere else:

- CA: RSA 4096, ``CN=Actvt-CA, O=Actvt, C=US``, SHA-256, basicConstraints CA:TRUE pathlen 0
  (critical), keyUsage keyCertSign + cRLSign (critical), subjectKeyIdentifier.
- client: RSA 2048 (or ECDSA P-256), ``CN=<name>, O=Actvt``, basicConstraints CA:FALSE (critical),
  keyUsage digitalSignature (critical), extendedKeyUsage clientAuth, subject and authority key
  identifiers, a random 159-bit serial. Made the way the user guide's openssl steps do: key, signing request, signature.
- private keys: PKCS#8 PEM without a password (``BEGIN PRIVATE KEY``).
"""

import dataclasses
import datetime
import gzip
import io
import re
import tarfile
from typing import List, Mapping, Optional, Tuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_RSA_BITS = 4096
CLIENT_RSA_BITS = 2048
KEY_TYPES = ("rsa", "ecdsa")
CA_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.COMMON_NAME, "Actvt-CA"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Actvt"),
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
])
ORGANIZATION = "Actvt"
#: The CA of the proxy's own identity (proxy mode: nginx -> Vector on 127.0.0.1); it signs nothing else.
LOOPBACK_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.COMMON_NAME, "Actvt-Loopback-CA"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Actvt"),
])


class PKIError(ValueError):
    """A PEM that cannot be read, or a key that does not belong to its certificate."""


def utc(value: datetime.datetime) -> datetime.datetime:
    """``value`` as an aware UTC time without microseconds (X.509 keeps whole seconds)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).replace(microsecond=0)


def now_utc() -> datetime.datetime:
    return utc(datetime.datetime.now(datetime.timezone.utc))


# --- keys -----------------------------------------------------------------------------------------


def new_key(key_type: str = "rsa", bits: int = CLIENT_RSA_BITS):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key type {key_type!r}: allowed: rsa or ecdsa")


def key_type_of(key) -> str:
    """rsa or ecdsa, of a private or a public key."""
    return "ecdsa" if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) else "rsa"


def key_pem(key) -> bytes:
    """PKCS#8 PEM without a password: ``-----BEGIN PRIVATE KEY-----``."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(data: bytes, what: str = "private key"):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is protected by a password" if isinstance(exc, TypeError) else "it is not a PEM private key"
        raise PKIError(f"cannot read {what}: {reason}") from None


def load_cert(data: bytes, what: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PKIError(f"cannot read {what}: it is not a PEM certificate") from None


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


def pem_blocks(data: bytes) -> List[Tuple[str, bytes]]:
    """The PEM blocks of ``data``: (label, the whole block), in order (text around them is ignored)."""
    return [(match.group(1).decode(), match.group(0) + b"\n") for match in _PEM_BLOCK.finditer(data)]


def load_certs(data: bytes, what: str = "file") -> List[x509.Certificate]:
    """Every certificate of a PEM bundle; PKIError when one cannot be read."""
    certs = []
    for label, block in pem_blocks(data):
        if label in ("CERTIFICATE", "TRUSTED CERTIFICATE"):
            certs.append(load_cert(block, what))
    return certs


def load_crls(data: bytes) -> List[x509.CertificateRevocationList]:
    """Every CRL of a PEM bundle (a CRL file may hold one per CA)."""
    return [load_crl(block) for label, block in pem_blocks(data) if label == "X509 CRL"]


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return cert.issuer == cert.subject and cert.version == x509.Version.v1


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, key) -> bool:
    """True when ``key`` is the private key of ``cert``."""
    return _spki(cert.public_key()) == _spki(key.public_key())


def _hash_for(key):
    """SHA-256, except for the EdDSA keys that take no separate hash."""
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints it (``AB:CD:…``)."""
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def serial_hex(cert_or_serial) -> str:
    """The serial as ``openssl x509 -serial`` prints it (upper-case hex, even length)."""
    number = cert_or_serial if isinstance(cert_or_serial, int) else cert_or_serial.serial_number
    text = format(number, "X")
    return text if len(text) % 2 == 0 else "0" + text


def key_id(cert: x509.Certificate) -> str:
    """The certificate's subject key identifier (hex): the same for a CA and its adopted copy."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def describe_key(cert: x509.Certificate) -> str:
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"ECDSA {public.curve.name}"
    return type(public).__name__


# --- the CA ---------------------------------------------------------------------------------------


def _ca_extensions(public_key, ski: Optional[x509.SubjectKeyIdentifier] = None):
    return [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (ski or x509.SubjectKeyIdentifier.from_public_key(public_key), False),
    ]


def make_ca(days: int, now: Optional[datetime.datetime] = None, key=None,
            subject: x509.Name = CA_SUBJECT) -> Tuple[object, x509.Certificate]:
    """A new self-signed CA valid ``days`` days from ``now``: (private key, certificate)."""
    now = utc(now or now_utc())
    key = key or new_key("rsa", CA_RSA_BITS)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days)))
    for extension, critical in _ca_extensions(key.public_key()):
        builder = builder.add_extension(extension, critical=critical)
    return key, builder.sign(key, _hash_for(key))


def ca_problems(cert: x509.Certificate) -> List[str]:
    """What a CA certificate lacks for strict verifiers (``openssl verify -x509_strict``, Python 3.13)."""
    problems = []
    exts = cert.extensions
    try:
        bc = exts.get_extension_for_class(x509.BasicConstraints)
        if not (bc.value.ca and bc.critical):
            problems.append("basicConstraints is not a critical CA:TRUE")
    except x509.ExtensionNotFound:
        problems.append("no basicConstraints")
    try:
        ku = exts.get_extension_for_class(x509.KeyUsage)
        if not (ku.value.key_cert_sign and ku.value.crl_sign and ku.critical):
            problems.append("keyUsage lacks a critical keyCertSign and cRLSign")
    except x509.ExtensionNotFound:
        problems.append("no keyUsage")
    try:
        exts.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        problems.append("no subjectKeyIdentifier")
    if cert.version != x509.Version.v3:
        problems.append("not an X.509 v3 certificate")
    return problems


def adopt_ca(cert: x509.Certificate, key) -> x509.Certificate:
    """Re-sign an existing CA with its own key, keeping subject, serial, validity, subject key
    identifier and any other extension, and adding what ``ca_problems`` found missing. Every
    certificate the old one signed verifies under the new one (same name, same key)."""
    if not key_matches(cert, key):
        raise PKIError("the CA key does not belong to the CA certificate")
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = None
    ours = _ca_extensions(key.public_key(), ski)
    replaced = {type(extension) for extension, _ in ours}
    builder = (x509.CertificateBuilder()
               .subject_name(cert.subject).issuer_name(cert.subject)
               .public_key(key.public_key())
               .serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for extension, critical in ours:
        builder = builder.add_extension(extension, critical=critical)
    for extension in cert.extensions:
        if type(extension.value) not in replaced and not isinstance(extension.value, x509.UnrecognizedExtension):
            builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, _hash_for(key))


def check_ca(cert_data: bytes, key_data: bytes):
    """(certificate, key) of an existing CA, or PKIError saying what is wrong with it."""
    cert = load_cert(cert_data, "the CA certificate")
    key = load_key(key_data, "the CA key")
    if not key_matches(cert, key):
        raise PKIError("the CA key does not belong to the CA certificate")
    return cert, key


# --- clients --------------------------------------------------------------------------------------


def client_subject(name: str) -> x509.Name:
    """``CN=<name>, O=Actvt``, built from attributes: a name cannot add a field."""
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
    ])


def make_csr(key, name: str) -> x509.CertificateSigningRequest:
    return x509.CertificateSigningRequestBuilder().subject_name(client_subject(name)).sign(key, _hash_for(key))


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())


def sign_csr(csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key, days: int,
             now: Optional[datetime.datetime] = None) -> x509.Certificate:
    """A client certificate for the request's subject and key, signed by the CA."""
    if not csr.is_signature_valid:
        raise PKIError("the certificate signing request's signature is not valid")
    now = utc(now or now_utc())
    public = csr.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(csr.subject).issuer_name(ca_cert.subject)
               .public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(client_not_after(ca_cert, days, now))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(_authority_key_id(ca_cert), critical=False))
    return builder.sign(ca_key, _hash_for(ca_key))


def client_not_after(ca_cert: x509.Certificate, days: int, now: datetime.datetime) -> datetime.datetime:
    """``now`` + ``days``, but never after the CA itself expires: a client certificate cannot be
    verified longer than the CA that signed it."""
    return min(utc(now) + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)


def issue_client(ca_cert: x509.Certificate, ca_key, name: str, days: int, key_type: str = "rsa",
                 now: Optional[datetime.datetime] = None, key=None):
    """Key, request, signature: (private key, certificate) for client ``name``."""
    key = key or new_key(key_type)
    return key, sign_csr(make_csr(key, name), ca_cert, ca_key, days, now)


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """True when ``ca_cert`` (its name and key) signed ``cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- revocation -----------------------------------------------------------------------------------


#: Why a serial is in the CRL: revoked by the user, or superseded by a new certificate of the same name.
REVOKED_REASON = x509.ReasonFlags.unspecified
SUPERSEDED = x509.ReasonFlags.superseded


def make_crl(ca_cert: x509.Certificate, ca_key, revoked: Mapping[int, Tuple[datetime.datetime, x509.ReasonFlags]],
             number: int, now: Optional[datetime.datetime] = None) -> x509.CertificateRevocationList:
    """A CRL signed by the CA listing ``revoked`` (serial -> (revocation time, reason)). Its next update
    is the CA's expiry: nginx refuses every client once a CRL is out of date, and nothing renews it on a timer."""
    now = utc(now or now_utc())
    next_update = max(ca_cert.not_valid_after_utc, now + datetime.timedelta(days=1))
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(now).next_update(next_update)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(_authority_key_id(ca_cert), critical=False))
    for serial, (when, reason) in sorted(revoked.items()):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(utc(when))
        if reason != x509.ReasonFlags.unspecified:  # RFC 5280 5.3.1: unspecified is left out
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca_key, _hash_for(ca_key))


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


@dataclasses.dataclass(frozen=True)
class CRLInfo:
    number: int
    entries: Mapping[int, Tuple[datetime.datetime, x509.ReasonFlags]]  # serial -> (time, reason)
    next_update: datetime.datetime

    @property
    def serials(self) -> frozenset:
        return frozenset(self.entries)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError:
        raise PKIError("it is not a PEM CRL") from None


def read_crl(data: bytes, ca_cert: x509.Certificate) -> Optional[CRLInfo]:
    """What a CRL lists, when it is signed by ``ca_cert``; None when another CA signed it. PKIError
    when it is not a readable CRL."""
    crl = load_crl(data)
    try:
        if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):
            return None
    except (ValueError, TypeError):
        return None
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    entries = {}
    for item in crl:
        try:
            reason = item.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = x509.ReasonFlags.unspecified
        entries[item.serial_number] = (utc(item.revocation_date_utc), reason)
    return CRLInfo(number, entries, crl.next_update_utc or ca_cert.not_valid_after_utc)


# --- the bundle -----------------------------------------------------------------------------------


def bundle_bytes(name: str, certificate: bytes, key: bytes, mtime: int = 0) -> bytes:
    """``<name>-bundle.tar.gz``: exactly ``clients/<name>.crt`` (0644) and ``clients/<name>.key``
    (0600). The same inputs give the same bytes (fixed owners, times and gzip header)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data, mode in ((f"clients/{name}.crt", certificate, 0o644), (f"clients/{name}.key", key, 0o600)):
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def bundle_members(data: bytes) -> Optional[dict]:
    """member name -> content of a bundle, or None when it is not a readable tar.gz."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {}
            for info in tar.getmembers():
                handle = tar.extractfile(info) if info.isfile() else None
                members[info.name] = handle.read() if handle else None
            return members
    except (tarfile.TarError, OSError, EOFError):
        return None


def bundle_holds(data: bytes, name: str, certificate: bytes, key: bytes) -> bool:
    """True when an existing bundle holds exactly this certificate and key (whatever its bytes)."""
    return bundle_members(data) == {f"clients/{name}.crt": certificate, f"clients/{name}.key": key}


# --- display --------------------------------------------------------------------------------------


def openssl_name(name: x509.Name) -> str:
    """A name as ``openssl x509 -noout -subject`` prints it: ``CN = actvt-client-001, O = Actvt``."""
    return ", ".join(f"{attr.rfc4514_attribute_name} = {attr.value}" for attr in name)


def openssl_date(value: datetime.datetime) -> str:
    """A time as ``openssl x509 -noout -dates`` prints it: ``Nov  6 21:54:00 2026 GMT``."""
    value = utc(value)
    return f"{value:%b} {value.day:2d} {value:%H:%M:%S %Y} GMT"
