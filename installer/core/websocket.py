"""The one WebSocket client (``actvt doctor``): a TLS connection to one of this host's own addresses,
the upgrade, and the first message, as the Actvt app receives it. Standard library only, and only
what reading one message takes (RFC 6455, client side): no extensions, no sending of data.

``attempt`` goes as far as it can and records where it stopped: no TCP connection, a TLS handshake
refused, an HTTP answer other than 101 (nginx's 496 for a missing client certificate), a closed
stream, or the message. What that means for a check is the caller's to judge.

A client certificate and key are handed to ``ssl`` through anonymous memory files (``memfd``): the
key is never written to disk, not even to a temporary file.
"""

import base64
import contextlib
import dataclasses
import hashlib
import os
import socket
import ssl
import struct
from typing import Iterator, Optional, Tuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
MAX_MESSAGE = 1 << 20  # a metrics message is a few hundred bytes


class ProtocolError(Exception):
    """What the server sent is not a WebSocket stream."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """How far one connection got. ``stage``: where it stopped (``tcp``; ``trust``: the server's
    certificate failed the verification asked for; ``tls``; ``http``; ``message``) or ``done``;
    ``error``: why it stopped there (one line)."""

    stage: str
    error: str = ""
    peer_cert: Optional[bytes] = None  # DER of the certificate the server presented
    status: Optional[int] = None  # the HTTP status of the upgrade request
    message: Optional[str] = None  # the first text message
    body: bytes = b""  # the start of the body of an answer other than 101
    timed_out: bool = False  # stage tcp: no answer at all within the timeout (packets dropped on the way)

    @property
    def connected(self) -> bool:
        """The TCP connection was made (something listens)."""
        return self.stage != "tcp"


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("actvt-doctor", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def context(cert_pem: Optional[bytes] = None, key_pem: Optional[bytes] = None,
            verify: Optional[ssl.SSLContext] = None) -> ssl.SSLContext:
    """A client context: ``verify`` (e.g. ``core.http.tls_context``) when the server's certificate is
    to be verified, else one that takes any certificate (over loopback the check is of the service, not
    of trust); with a client certificate when given."""
    if verify is not None:
        ctx = verify
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_pem is not None and key_pem is not None:
        with _memory_file(cert_pem) as cert_path, _memory_file(key_pem) as key_path:
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class Reader:
    """Bytes from a socket, with what was read past the end of the HTTP answer kept for the frames."""

    def __init__(self, sock, buffered: bytes = b""):
        self.sock, self.buffer = sock, buffered

    def more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.more()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def frame(payload: bytes, opcode: int, mask: Optional[bytes] = None) -> bytes:
    """One final frame; a client's frames are masked (RFC 6455, section 5.3)."""
    mask = os.urandom(4) if mask is None else mask
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def read_frame(reader: Reader) -> Tuple[bool, int, bytes]:
    """(final, opcode, payload) of the next frame."""
    first, second = reader.exact(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", reader.exact(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", reader.exact(8))[0]
    if size > MAX_MESSAGE:
        raise ProtocolError(f"a frame of {size} bytes")
    mask = reader.exact(4) if second & 0x80 else None
    payload = reader.exact(size)
    if mask:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


def read_message(reader: Reader) -> str:
    """The next text message (pings answered, fragments joined); ProtocolError on a close frame."""
    parts = b""
    while True:
        final, opcode, payload = read_frame(reader)
        if opcode == PING:
            reader.sock.sendall(frame(payload, PONG))
            continue
        if opcode == PONG:
            continue
        if opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise ProtocolError(f"the server closed the stream (code {code})")
        if opcode not in (TEXT, BINARY, CONTINUATION):
            raise ProtocolError(f"unknown frame type {opcode}")
        parts += payload
        if len(parts) > MAX_MESSAGE:
            raise ProtocolError("a message over 1 MB")
        if final:
            return parts.decode("utf-8", errors="replace")


def upgrade_request(host: str, path: str, key: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: actvt-doctor\r\n\r\n").encode()


def read_response(reader: Reader) -> Tuple[int, dict]:
    """The status and headers (lower-case names) of the answer to the upgrade request."""
    while b"\r\n\r\n" not in reader.buffer:
        if len(reader.buffer) > 65536:
            raise ProtocolError("an answer without an end of its headers")
        reader.more()
    raw, reader.buffer = reader.buffer.split(b"\r\n\r\n", 1)
    head = raw.decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP answer: {head[0][:80]!r}")
    headers = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def read_body(reader: Reader, headers: dict, limit: int = 4096) -> bytes:
    """The start of an answer's body (its Content-Length, at most ``limit`` bytes; what came before
    the server closed)."""
    try:
        wanted = min(int(headers.get("content-length", limit)), limit)
    except ValueError:
        wanted = limit
    try:
        while len(reader.buffer) < wanted:
            reader.more()
    except (ssl.SSLError, OSError):
        pass
    return reader.buffer[:wanted]


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def attempt(address: str, port: int, server_name: str, path: str, ctx: ssl.SSLContext,
            timeout: float = 10) -> Attempt:
    """Connect to ``address:port`` (TLS with ``server_name`` as SNI and Host), ask for the WebSocket at
    ``path`` and read its first message."""
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        return Attempt("tcp", f"no answer within {timeout:g} s", timed_out=True)
    except OSError as exc:
        return Attempt("tcp", exc.strerror or str(exc))
    with raw:
        try:
            sock = ctx.wrap_socket(raw, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            return Attempt("trust", exc.verify_message or str(exc))
        except (ssl.SSLError, OSError) as exc:
            return Attempt("tls", _reason(exc))
        with sock:
            peer = sock.getpeercert(binary_form=True)
            key = base64.b64encode(os.urandom(16)).decode()
            reader = Reader(sock)
            try:
                sock.sendall(upgrade_request(server_name, path, key))
                status, headers = read_response(reader)
            except (ssl.SSLError, OSError, ProtocolError) as exc:
                # TLS 1.3: a server that wants a client certificate says so after the handshake
                return Attempt("tls", _reason(exc), peer)
            if status != 101:
                return Attempt("http", f"HTTP {status} instead of 101 Switching Protocols", peer, status,
                               body=read_body(reader, headers))
            if headers.get("sec-websocket-accept") != accept_value(key):
                return Attempt("http", "the upgrade's Sec-WebSocket-Accept does not match", peer, status)
            try:
                message = read_message(reader)
            except (ssl.SSLError, OSError, ProtocolError) as exc:
                return Attempt("message", _reason(exc), peer, status)
            with contextlib.suppress(OSError, ssl.SSLError):
                sock.sendall(frame(struct.pack("!H", 1000), CLOSE))
            return Attempt("done", "", peer, status, message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):
        return "the server closed the connection"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"TLS: {exc.reason.replace('_', ' ').lower()}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
