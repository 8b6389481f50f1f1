"""OpenPGP public keys, as far as a package repository's keyring needs them (RFC 4880, RFC 9580):
read armored or binary keys, split them into certificates, name each by its fingerprint, and write
them back (binary for apt's ``signed-by``, armored for dnf's and yum's ``gpgkey``).

No signature is checked here: gpgv and sqv (apt) and rpm check the self-signatures and subkey
bindings when they use the keyring. What this module decides is which primary keys get into it.
Hand-written because nothing at hand reads a fingerprint: a minimal Debian has gpgv (or sqv) for apt,
which verifies but does not list keys, not gpg; and Python's OpenPGP libraries would add more to the
zipapp than these packet headers and two hashes.
"""

import base64
import binascii
import dataclasses
import hashlib
import re
from typing import Iterator, List, Tuple

PUBLIC_KEY, PUBLIC_SUBKEY, SECRET_KEY, SECRET_SUBKEY, TRUST, MARKER = 6, 14, 5, 7, 12, 10
_ARMOR = re.compile(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S)


class NotAKey(ValueError):
    """The data is not (only) OpenPGP public keys; the message says why."""


@dataclasses.dataclass(frozen=True)
class Certificate:
    """One public key with its user IDs, signatures and subkeys (binary packets)."""

    fingerprint: str  # upper-case hex of the primary key
    data: bytes


def normalise(fingerprint: str) -> str:
    return "".join(fingerprint.split()).upper()


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(data: bytes) -> bytes:
    """The binary packets of ``data``: ASCII-armored public key blocks (one or more), or binary as is."""
    if data[:1] and data[0] & 0x80:
        return data
    blocks = _ARMOR.findall(data)
    if not blocks:
        raise NotAKey("neither an armored public key block nor binary OpenPGP data")
    out = b""
    for block in blocks:
        head, sep, body = block.replace(b"\r\n", b"\n").partition(b"\n\n")
        if not sep:  # no armor headers: RFC 9580 allows their blank line to be the only one
            body = head
        lines = [line.strip() for line in body.split(b"\n") if line.strip()]
        checksum = None
        if lines and lines[-1].startswith(b"=") and len(lines[-1]) == 5:
            checksum = lines.pop()[1:]
        try:
            packets = base64.b64decode(b"".join(lines), validate=True)
            expected = base64.b64decode(checksum) if checksum else None
        except (binascii.Error, ValueError):
            raise NotAKey("its armor is not valid base64") from None
        if expected is not None and int.from_bytes(expected, "big") != _crc24(packets):
            raise NotAKey("its armor checksum does not match (damaged in transit?)")
        out += packets
    return out


def packets(data: bytes) -> Iterator[Tuple[int, bytes, bytes]]:
    """(tag, the whole packet, its body) for each packet of binary ``data``."""
    at = 0
    while at < len(data):
        start, first = at, data[at]
        if not first & 0x80:
            raise NotAKey(f"byte {at} does not start an OpenPGP packet")
        if first & 0x40:  # new format
            tag, at = first & 0x3F, at + 1
            if at >= len(data):
                raise NotAKey("it ends inside a packet header")
            octet = data[at]
            if octet < 192:
                length, at = octet, at + 1
            elif octet < 224:
                if at + 1 >= len(data):
                    raise NotAKey("it ends inside a packet header")
                length, at = ((octet - 192) << 8) + data[at + 1] + 192, at + 2
            elif octet == 255:
                length, at = int.from_bytes(data[at + 1:at + 5], "big"), at + 5
            else:
                raise NotAKey("a key packet uses partial body lengths")
        else:  # old format
            tag, kind, at = (first >> 2) & 0x0F, first & 0x03, at + 1
            if kind == 3:
                raise NotAKey("a key packet has an indeterminate length")
            size = (1, 2, 4)[kind]
            length, at = int.from_bytes(data[at:at + size], "big"), at + size
        if at + length > len(data):
            raise NotAKey("it ends inside a packet (truncated)")
        yield tag, data[start:at + length], data[at:at + length]
        at += length


def fingerprint(body: bytes) -> str:
    """The fingerprint of a public key packet's body: v4 SHA-1, v5 and v6 SHA-256 (RFC 9580 5.5.4)."""
    version = body[:1]
    if version == b"\x04":
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body)
    elif version in (b"\x05", b"\x06"):
        digest = hashlib.sha256((b"\x9a" if version == b"\x05" else b"\x9b") + len(body).to_bytes(4, "big") + body)
    else:
        raise NotAKey(f"a key of version {version[0] if version else '?'} (only 4, 5 and 6 are read)")
    return digest.hexdigest().upper()


def certificates(data: bytes) -> List[Certificate]:
    """The public keys in ``data`` (armored or binary), in order; gpg's trust packets are dropped."""
    found: List[Tuple[str, bytes]] = []
    for tag, whole, body in packets(dearmor(data)):
        if tag in (SECRET_KEY, SECRET_SUBKEY):
            raise NotAKey("it holds a private key")
        if tag == PUBLIC_KEY:
            found.append((fingerprint(body), whole))
        elif tag in (TRUST, MARKER):
            continue
        elif not found:
            raise NotAKey(f"it starts with a packet of type {tag}, not a public key")
        else:
            found[-1] = (found[-1][0], found[-1][1] + whole)
    if not found:
        raise NotAKey("it holds no public key")
    return [Certificate(fpr, blob) for fpr, blob in found]


def armor(data: bytes) -> bytes:
    """``data`` as one ASCII-armored public key block (with its CRC-24)."""
    text = base64.b64encode(data)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big"))
    return (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + b"\n".join(lines) + b"\n=" + crc
            + b"\n-----END PGP PUBLIC KEY BLOCK-----\n")
