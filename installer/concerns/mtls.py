"""mTLS on the server: the CA, the client certificates, their index and CRL, generate-client.sh.

``plan_mtls`` is the install run's planner; ``actvt client`` (``clients.py``) builds its plans from
the same pieces (``resolve_ca``, ``client_files``, ``index_file``, ``crl_file``), so each file is
described in one place. Certificates themselves are made by ``pki``.

Files (all root:root unless said):

- ``ca.crt`` 0644, ``ca.key`` 0600 (root: Vector never needs the key);
- ``clients/<name>.crt`` 0644, ``clients/<name>.key`` 0600;
- ``<name>-bundle.tar.gz`` 0600, owned by the user who ran sudo (SUDO_USER) so that they can
  download it, else root;
- ``index.json`` 0644: every certificate issued (name, serial, SHA-256 fingerprint, dates,
  status active / replaced / revoked, revocation time), ``crl.pem`` 0644: the CA-signed CRL of the
  revoked ones (for nginx's ``ssl_crl``); ``active_serials`` gives the allowlist form;
- directories 0755; ``generate-client.sh`` 0755, a wrapper around ``actvt client issue``.

When ``ACTVT_ENABLE_MTLS`` is off nothing is planned: existing material is left alone.

A CA written half-way (a run killed between ``ca.key`` and ``ca.crt``) is repaired only when it is
provably that run's own unfinished work: before a new CA is written, ``.ca-pending.json`` records
the SHA-256 of the new key's public part and of the new certificate; the key is written, then the
certificate, then the record is removed. A lone half (or a key that does not match the certificate
beside it) that matches the record never had a complete CA, so no client can hold a certificate of
it: the next run makes the CA again, as the interrupted run meant to. Any other incomplete or
mismatched CA is someone's CA whose clients may be in use: the run stops and says how to restore
it, and never replaces it by itself.

Revocation and replacement: ``crl.pem`` lists every certificate of this CA that is revoked
(``client revoke``) or superseded (re-issued under the same name: ``ACTVT_REGEN_CLIENT_CERT=yes``,
``client issue NAME --force``), so nginx refuses the old one; a serial an existing CRL lists is never
dropped from it. A revoked name is never issued again by a re-run (only ``client issue NAME`` or
another ``ACTVT_MTLS_CLIENT_CN`` does that), and no client certificate outlives its CA.
"""

import dataclasses
import datetime
import json
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from installer import __version__
from installer.core import paths
from installer.concerns import pki
from installer.core.actions import Absent, Directory, File, Step
from installer.core.concern import Concern, Phase, Planner, Undo, Uninstaller
from installer.core.context import answer
from installer.core.errors import ActvtError
from installer.core.facts import read_file
from installer.core.fs import Tree, walk_files
from installer.core.render import render_file

CA_FOLDERS = (paths.MTLS_DIR, paths.MTLS_CLIENTS_DIR, paths.PREVIOUS_DIR)  # a server's, or a CA folder's
READS = CA_FOLDERS + (paths.PROXY_DIR,)
PROXY_NAME = "actvt-proxy"  # the common name of the proxy's own identity
PROXY_DAYS = 3650
RENEW_DAYS = 30  # the proxy's identity is made again this long before it expires
ACTIVE, REPLACED, REVOKED = "active", "replaced", "revoked"
ROTATED = "rotated"  # re-issued under a new CA by a rotation: valid until the rollover is finished
EXPIRING_DAYS = 30


class MTLSError(ActvtError):
    """The CA or the index cannot be used as it is; nothing was changed."""


# --- what is on the server -----------------------------------------------------------------------


def existing_clients(files: Mapping[str, bytes]) -> List[str]:
    """Names that have a certificate in ``clients/`` (only well-formed names)."""
    from installer.core.config import Invalid, parse_client_name

    prefix = paths.MTLS_CLIENTS_DIR + "/"
    names = []
    for path in files:
        if path.startswith(prefix) and path.endswith(".crt") and "/" not in path[len(prefix):]:
            try:
                names.append(parse_client_name(path[len(prefix):-4]))
            except Invalid:
                continue
    return sorted(names)


def read_files(root) -> Dict[str, bytes]:
    """The mTLS files under ``root`` (what ``facts.gather`` reads for ``READS``), without the rest
    of the host facts: ``actvt client`` needs only these."""
    tree = Tree(root)
    files: Dict[str, bytes] = {}
    for folder in CA_FOLDERS:
        for path in walk_files(tree, folder):
            content = read_file(root, path)
            if content is not None:
                files[path] = content
    return files


def iso(value: datetime.datetime) -> str:
    return pki.utc(value).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime.datetime:
    return pki.utc(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))


# --- the CA ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CA:
    cert: object
    key: object
    cert_pem: bytes
    key_pem: bytes
    state: str  # "kept", "adopted" or "new"
    note: str = ""  # why it is new or what adoption added

    @property
    def id(self) -> str:
        return pki.key_id(self.cert)


def new_ca(days: int, now: datetime.datetime, note: str) -> CA:
    key, cert = pki.make_ca(days, now)
    return CA(cert, key, pki.cert_pem(cert), pki.key_pem(key), "new", note)


def _spki_sha256(public_key) -> str:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def pending_record(ca: CA) -> bytes:
    return (json.dumps({"key_spki_sha256": _spki_sha256(ca.cert.public_key()),
                        "cert_sha256": pki.fingerprint(ca.cert)}, indent=1) + "\n").encode()


def unfinished_ca(files: Mapping[str, bytes]) -> Optional[str]:
    """What is left of a CA an interrupted run was writing, when that is provable (see the module's
    docstring): a description, or None."""
    record = files.get(paths.CA_PENDING)
    cert_data, key_data = files.get(paths.CA_CERT), files.get(paths.CA_KEY)
    if record is None or (cert_data is None and key_data is None):
        return None
    try:
        pending = json.loads(record.decode("utf-8"))
        key_hash, cert_hash = pending["key_spki_sha256"], pending["cert_sha256"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return None
    key = cert = None
    try:
        key = pki.load_key(key_data) if key_data is not None else None
        cert = pki.load_cert(cert_data) if cert_data is not None else None
    except pki.PKIError:
        return None
    complete = key is not None and cert is not None and pki.key_matches(cert, key)
    if complete:
        return None  # the record outlived a CA that was written whole: nothing to repair
    if key is not None and _spki_sha256(key.public_key()) == key_hash:
        return f"{paths.CA_KEY} of a CA whose certificate was never written"
    if cert is not None and pki.fingerprint(cert) == cert_hash:
        return f"{paths.CA_CERT} of a CA whose key was never written"
    return None


def load_ca(files: Mapping[str, bytes], now: datetime.datetime) -> Optional[CA]:
    """The existing CA (adopted when it lacks the extensions strict verifiers need), or None when
    there is none. Stops with MTLSError when it cannot be used."""
    cert_data, key_data = files.get(paths.CA_CERT), files.get(paths.CA_KEY)
    if cert_data is None and key_data is None:
        return None
    unfinished = unfinished_ca(files)
    if unfinished:
        raise MTLSError(f"mTLS CA: an interrupted run left {unfinished}; run the installer again to finish it "
                        "(nothing was changed)")
    if cert_data is None or key_data is None:
        missing = paths.CA_CERT if cert_data is None else paths.CA_KEY
        raise MTLSError(f"mTLS CA: {missing} is missing; restore it (see /var/lib/actvt/backups), or set "
                        "ACTVT_REUSE_MTLS_CA=no to make a new CA (client certificates are then re-issued); "
                        "nothing was changed")
    try:
        cert, key = pki.check_ca(cert_data, key_data)
    except pki.PKIError as exc:
        raise MTLSError(f"mTLS CA in {paths.MTLS_DIR}: {exc}; restore the right files, or set "
                        "ACTVT_REUSE_MTLS_CA=no to make a new CA; nothing was changed") from None
    if cert.not_valid_after_utc <= now:
        raise MTLSError(f"mTLS CA: {paths.CA_CERT} expired on {iso(cert.not_valid_after_utc)}; set "
                        "ACTVT_REUSE_MTLS_CA=no to make a new CA; nothing was changed")
    problems = pki.ca_problems(cert)
    if problems and cert.issuer == cert.subject:
        adopted = pki.adopt_ca(cert, key)
        return CA(adopted, key, pki.cert_pem(adopted), key_data, "adopted",
                  "re-signed with the same key to add what strict verifiers need (" + "; ".join(problems) + ")")
    return CA(cert, key, cert_data, key_data, "kept")


def resolve_ca(files: Mapping[str, bytes], reuse: bool, days: int, now: datetime.datetime) -> CA:
    """The reuse/regeneration matrix: keep (or adopt) the CA, or make a new one; finish a CA an
    interrupted run left half-written."""
    if not reuse and (paths.CA_CERT in files or paths.CA_KEY in files):
        return new_ca(days, now, "ACTVT_REUSE_MTLS_CA=no: a new CA replaces the old one (backed up)")
    unfinished = unfinished_ca(files)
    if unfinished:
        return new_ca(days, now, f"made again: an interrupted run left {unfinished}")
    existing = load_ca(files, now)
    return existing or new_ca(days, now, "first mTLS setup")


def ca_files(ca: CA, folder_mode: int = 0o755) -> Tuple:
    """The CA's folders and files. A new CA is written key first, between a record of what is being
    written and its removal, so that a run killed half-way can be told apart from a damaged CA."""
    reason = {"new": ca.note, "adopted": ca.note}.get(ca.state, "the mTLS CA")
    pair = (
        File(paths.CA_KEY, ca.key_pem, 0o600, sensitive=True, reason="CA private key (root only)"),
        # ca.crt stays root:root 0644 (world-readable, so Vector and nginx can read it)
        File(paths.CA_CERT, ca.cert_pem, 0o644, reason=reason),
    )
    if ca.state == "new":
        pair = (File(paths.CA_PENDING, pending_record(ca), 0o600, reason="a new CA is being written"),) + pair
    return (
        Directory(paths.MTLS_DIR, folder_mode, reason="mTLS CA and client bundles"),
        Directory(paths.MTLS_CLIENTS_DIR, 0o755, reason="client certificates"),
    ) + pair + (Absent(paths.CA_PENDING, reason="the CA is complete"),)


# --- clients --------------------------------------------------------------------------------------


def client_files(name: str, cert_pem: bytes, key_pem: Optional[bytes], files: Mapping[str, bytes],
                 owner: str, reason: str) -> Tuple:
    """A client's certificate, key and bundle. An existing bundle that already holds this
    certificate and key is kept byte for byte; without a key on the server, the bundle (if any)
    only gets its mode and owner fixed."""
    actions = [File(paths.client_cert(name), cert_pem, 0o644, reason=reason)]
    existing_bundle = files.get(paths.client_bundle(name))
    try:
        start = pki.load_cert(cert_pem).not_valid_before_utc
    except pki.PKIError:
        start = None  # an unreadable certificate: no new bundle for it
    if key_pem is not None:
        actions.append(File(paths.client_key(name), key_pem, 0o600, sensitive=True, reason=reason))
    if key_pem is not None and start is not None and not (
            existing_bundle is not None and pki.bundle_holds(existing_bundle, name, cert_pem, key_pem)):
        # the certificate's start as the members' time: the same files give the same bytes
        bundle = pki.bundle_bytes(name, cert_pem, key_pem, int(start.timestamp()))
    else:
        bundle = existing_bundle
    if bundle is not None:
        actions.append(File(paths.client_bundle(name), bundle, 0o600, owner=owner, group="root", sensitive=True,
                            reason=f"{reason}: bundle to download (holds the private key)"))
    return tuple(actions)


def issue(index: dict, name: str, ca: CA, days: int, key_type: str, now: datetime.datetime,
          files: Mapping[str, bytes], owner: str, reason: str, key=None, supersede: str = REPLACED):
    """The one place a client certificate is issued (install run, ``actvt client issue``, CA
    rotation): a new key (or ``key``), signed by ``ca``, recorded in ``index``. Returns
    (certificate, its files: certificate, key and bundle)."""
    key, cert = pki.issue_client(ca.cert, ca.key, name, days, key_type, now, key=key)
    record_issue(index, name, cert, ca, supersede)
    return cert, client_files(name, pki.cert_pem(cert), pki.key_pem(key), files, owner, reason)


def rotate_ca(files: Mapping[str, bytes], index: dict, revoked: str, ca_days: int, now: datetime.datetime,
              owner: str) -> Tuple[CA, Tuple, List[str]]:
    """Revocation where nothing checks a CRL (standalone mode: Vector cannot): a new CA replaces
    the old one, so every certificate the old CA signed stops working, and each other client that
    has a certificate on the server is re-issued under the new CA (new key, same key type, same
    expiry). Expired certificates are not re-issued. Returns (new CA, its files and the re-issued
    clients' files, the re-issued names)."""
    ca = new_ca(ca_days, now, f"a new CA: {revoked} was revoked and Vector cannot check revocation "
                              "(the old CA is backed up)")
    actions = list(ca_files(ca))
    reissued = []
    for name in existing_clients(files):
        if name == revoked:
            continue
        try:
            old = pki.load_cert(files[paths.client_cert(name)])
        except pki.PKIError:
            continue
        left = (old.not_valid_after_utc - now).total_seconds()
        if left <= 0:
            continue
        days = max(1, int(-(-left // 86400)))
        _, made = issue(index, name, ca, days, pki.key_type_of(old.public_key()), now, files, owner,
                        f"client {name}: re-issued under the new CA (hand its bundle out again)")
        actions.extend(made)
        reissued.append(name)
    return ca, tuple(actions), reissued


def usable(files: Mapping[str, bytes], name: str, ca: CA) -> bool:
    """The client's certificate was signed by this CA and its key (when kept here) belongs to it."""
    try:
        cert = pki.load_cert(files[paths.client_cert(name)])
        key_data = files.get(paths.client_key(name))
        if key_data is not None and not pki.key_matches(cert, pki.load_key(key_data)):
            return False
    except (KeyError, pki.PKIError):
        return False
    return pki.issued_by(cert, ca.cert)


# --- the index ------------------------------------------------------------------------------------


def load_index(files: Mapping[str, bytes]) -> dict:
    """``index.json``, each entry checked; MTLSError naming the file (and the entry) when damaged."""
    from installer.core.records import damaged

    data = files.get(paths.MTLS_INDEX)
    if data is None:
        return {"version": 1, "crl_number": 0, "certificates": []}
    hint = (" (or move it away: it is then rebuilt from clients/, without earlier revocations, which stay in "
            "crl.pem)")
    try:
        index = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(paths.MTLS_INDEX, f"not JSON: {exc}", hint) from None
    if not isinstance(index, dict) or not isinstance(index.get("certificates"), list):
        raise damaged(paths.MTLS_INDEX, "it has no certificate list", hint)
    if not isinstance(index.setdefault("crl_number", 0), int):
        raise damaged(paths.MTLS_INDEX, "crl_number is not a number", hint)
    for number, item in enumerate(index["certificates"], start=1):
        problem = _entry_problem(item)
        if problem:
            raise damaged(paths.MTLS_INDEX, f"certificate entry {number}: {problem}", hint)
    return index


def _entry_problem(item) -> Optional[str]:
    from installer.core.config import Invalid, parse_client_name

    if not isinstance(item, dict):
        return "not an object"
    for key in ("name", "serial", "fingerprint_sha256", "not_before", "not_after", "ca", "status"):
        if not isinstance(item.get(key), str):
            return f"{key} is missing or not text"
    try:
        parse_client_name(item["name"])
    except Invalid:
        return "name is not a client name"
    try:
        int(item["serial"], 16)
        for key in ("not_before", "not_after"):
            parse_time(item[key])
        if item.get("replaced_at") is not None:
            parse_time(item["replaced_at"])
    except (ValueError, TypeError):
        return "serial or a date cannot be read"
    if item["status"] not in (ACTIVE, REPLACED, REVOKED, ROTATED):
        return f"status is not {ACTIVE}, {REPLACED}, {ROTATED} or {REVOKED}"
    if item["status"] == REVOKED:
        try:
            parse_time(item["revoked_at"])
        except (KeyError, ValueError, TypeError, AttributeError):
            return "a revoked certificate without a readable revoked_at"
    return None


def index_bytes(index: dict) -> bytes:
    return (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()


def entry(name: str, cert, ca: CA) -> dict:
    return {
        "name": name,
        "serial": pki.serial_hex(cert),
        "fingerprint_sha256": pki.fingerprint(cert),
        "not_before": iso(cert.not_valid_before_utc),
        "not_after": iso(cert.not_valid_after_utc),
        "key": pki.describe_key(cert),
        "ca": ca.id,
        "status": ACTIVE,
        "revoked_at": None,
    }


def record_issue(index: dict, name: str, cert, ca: CA, supersede: str = REPLACED) -> dict:
    """Add a newly issued certificate; earlier active ones of the same name become ``replaced`` (and
    are listed in the CRL as superseded), or, re-issued by a CA rotation, ``rotated`` (valid until the
    rollover is finished)."""
    for item in index["certificates"]:
        if item["name"] == name and item["status"] == ACTIVE:
            item["status"] = supersede
            item["replaced_at"] = iso(cert.not_valid_before_utc)
    new = entry(name, cert, ca)
    index["certificates"].append(new)
    return new


def record_revocation(index: dict, name: str, ca: CA, now: datetime.datetime, also: Sequence[CA] = ()) -> List[dict]:
    """Revoke every certificate of ``name`` this CA (or, in a rollover, the previous one: ``also``)
    signed and that is not revoked yet (the current one and the ones it replaced, which their holders
    may still have)."""
    revoked = []
    cas = {ca.id} | {other.id for other in also}
    for item in index["certificates"]:
        if item["name"] == name and item["ca"] in cas and item["status"] != REVOKED:
            item["status"], item["revoked_at"] = REVOKED, iso(now)
            revoked.append(item)
    return revoked


def sync_index(index: dict, files: Mapping[str, bytes], ca: CA, also: Sequence[CA] = ()) -> None:
    """Bring the index up to date with the host: certificates from another CA (than this one and, in
    a rollover, ``also``) are no longer active; a client certificate this CA signed that the index
    does not know (made by the old script, by hand, or before the index existed) is added."""
    current = {ca.id} | {other.id for other in also}
    for item in index["certificates"]:
        if item["status"] in (ACTIVE, ROTATED) and item["ca"] not in current:
            item["status"] = REPLACED
    known = {item["fingerprint_sha256"] for item in index["certificates"]}
    for name in existing_clients(files):
        try:
            cert = pki.load_cert(files[paths.client_cert(name)])
        except pki.PKIError:
            continue
        if pki.fingerprint(cert) in known:
            continue
        if pki.issued_by(cert, ca.cert):
            record_issue(index, name, cert, ca)
            continue
        # in a rollover, one the previous CA signed (made by hand, never re-issued) is recorded too, so
        # that `actvt ca finish` sees whom it would cut off; never over a name that has an active one
        signer = next((other for other in also if pki.issued_by(cert, other.cert)), None)
        if signer is not None and not any(item["name"] == name and item["status"] == ACTIVE
                                          for item in index["certificates"]):
            record_issue(index, name, cert, signer)


def active(index: dict, name: str, ca: CA) -> List[dict]:
    return [item for item in index["certificates"]
            if item["name"] == name and item["ca"] == ca.id and item["status"] == ACTIVE]


def active_serials(index: dict, ca_id: str) -> List[str]:
    """Serials (hex) that may connect: for an allowlist, when a server cannot read CRLs."""
    return sorted(item["serial"] for item in index["certificates"]
                  if item["ca"] == ca_id and item["status"] != REVOKED)


def display_status(item: dict, now: datetime.datetime) -> str:
    """valid, expires within 30 days, expired, revoked (or replaced; rotated: valid until the rollover
    of its CA is finished)."""
    if item["status"] == REVOKED:
        return "revoked"
    if item["status"] == REPLACED:
        return "replaced"
    if item["status"] == ROTATED:
        return "valid until the rollover ends"
    not_after = parse_time(item["not_after"])
    if not_after <= now:
        return "expired"
    if not_after - now <= datetime.timedelta(days=EXPIRING_DAYS):
        return "expires within 30 days"
    return "valid"


def index_file(index: dict) -> File:
    return File(paths.MTLS_INDEX, index_bytes(index), 0o644, reason="index of issued client certificates")


def denied(index: dict, ca: CA) -> Dict[int, Tuple[datetime.datetime, object]]:
    """Serials of this CA that must not connect: revoked ones, and the ones a newer certificate of the
    same name superseded (serial -> (time, CRL reason))."""
    found = {}
    for item in index["certificates"]:
        if item["ca"] != ca.id:
            continue
        if item["status"] == REVOKED:
            found[int(item["serial"], 16)] = (parse_time(item["revoked_at"]), pki.REVOKED_REASON)
        elif item["status"] == REPLACED:
            found[int(item["serial"], 16)] = (parse_time(item.get("replaced_at") or item["not_before"]),
                                              pki.SUPERSEDED)
    return found


def crl_file(index: dict, ca: CA, files: Mapping[str, bytes], now: datetime.datetime, others: Sequence[CA] = ()) -> File:
    """``crl.pem``: for this CA (and, in a CA folder during a rollover, the previous one) a CRL listing
    what ``denied`` gives and every serial the existing CRL of that CA already lists (a revocation is
    never undone by a rewrite, e.g. after index.json was put back from an older backup). An existing
    CRL that lists exactly those and stays current is kept as it is; otherwise a new one is signed and
    ``index["crl_number"]`` counts up. A CRL that cannot be read stops the run."""
    from installer.core.records import damaged

    existing = files.get(paths.MTLS_CRL)
    blocks = [block for label, block in pki.pem_blocks(existing) if label == "X509 CRL"] if existing else []
    if existing is not None and not blocks:
        raise damaged(paths.MTLS_CRL, "it is not a PEM CRL",
                      " (or move it away: it is then rebuilt from index.json's revocations)")
    out, kept = [], []
    for authority in (ca,) + tuple(others):
        wanted = denied(index, authority)
        info, block = None, None
        for candidate in blocks:
            try:
                found = pki.read_crl(candidate, authority.cert)  # None: another CA's (the CA was replaced)
            except pki.PKIError as exc:
                raise damaged(paths.MTLS_CRL, str(exc),
                              " (or move it away: it is then rebuilt from index.json's revocations)") from None
            if found is not None:
                info, block = found, candidate
                break
        if info is not None:
            wanted = {**info.entries, **wanted}
        if info is not None and info.serials == frozenset(wanted) and info.next_update > now + datetime.timedelta(days=1):
            index["crl_number"] = max(index["crl_number"], info.number)
            out.append(block)
            kept.append(True)
            continue
        index["crl_number"] = max(index["crl_number"], info.number if info else 0) + 1
        out.append(pki.crl_pem(pki.make_crl(authority.cert, authority.key, wanted, index["crl_number"], now)))
        kept.append(False)
    if all(kept) and b"".join(out) == b"".join(blocks) and existing is not None:
        return File(paths.MTLS_CRL, existing, 0o644, reason="revoked and superseded client certificates")
    return File(paths.MTLS_CRL, b"".join(out), 0o644,
                reason="revoked and superseded client certificates (signed by the CA)")


# --- a CA kept off the servers: a CA folder (actvt ca, actvt client --ca-dir) ------------------------

#: A CA folder is private: its key and every client's key are in it.
FOLDER_MODE = 0o700


def previous_ca(files: Mapping[str, bytes], current: CA) -> Optional[CA]:
    """The CA a rotation replaced, trusted until ``actvt ca finish`` (None outside a rollover)."""
    cert_data, key_data = files.get(paths.PREVIOUS_CA_CERT), files.get(paths.PREVIOUS_CA_KEY)
    if cert_data is None and key_data is None:
        return None
    try:
        cert, key = pki.check_ca(cert_data or b"", key_data or b"")
    except pki.PKIError as exc:
        raise MTLSError(f"the previous CA in {paths.PREVIOUS_DIR}: {exc}; finish the rollover again with "
                        "`actvt ca finish` after putting it back from .backups/; nothing was changed") from None
    previous = CA(cert, key, cert_data, key_data, "kept")
    return None if previous.id == current.id else previous  # a rotation stopped before the new CA was written


def trust_bytes(ca: CA, previous: Optional[CA]) -> bytes:
    """What servers trust (their ACTVT_MTLS_CA_FILE): the CA, and the previous one during a rollover."""
    return pki.cert_pem(ca.cert) + (pki.cert_pem(previous.cert) if previous else b"")


def folder_files(index: dict, ca: CA, previous: Optional[CA], files: Mapping[str, bytes],
                 now: datetime.datetime) -> Tuple:
    """What a change in a CA folder rewrites besides clients: the CA, the index, the CRLs (one per
    trusted CA), the trust file."""
    count = 2 if previous else 1
    crl = crl_file(index, ca, files, now, others=(previous,) if previous else ())  # first: it counts the index up
    return ca_files(ca, FOLDER_MODE) + (
        index_file(index),
        crl,
        File(paths.FLEET_TRUST, trust_bytes(ca, previous), 0o644,
             reason=f"what servers trust (ACTVT_MTLS_CA_FILE): {count} CA certificate(s)"),
    )


def rotate_folder(files: Mapping[str, bytes], index: dict, days: int, now: datetime.datetime,
                  owner: str) -> Tuple[CA, CA, Tuple, List[str]]:
    """Start a rollover: a new CA signs from now on, the current one becomes the previous one (still
    trusted, its CRL still published), and every live client (an active certificate of the current
    CA that has not expired; never a revoked one) is re-issued under the new CA with the same key type
    and end. Returns (new CA, previous CA, actions, re-issued names)."""
    current = load_ca(files, now)
    if current is None:
        raise MTLSError("no CA in this folder: make one with `actvt ca init --dir DIR`")
    if previous_ca(files, current) is not None:
        raise MTLSError("a rollover is in progress: hand out the re-issued bundles, push trust.pem, then finish it "
                        "with `actvt ca finish --dir DIR` before the next rotation; nothing was changed")
    ca = new_ca(days, now, "a new CA: the rotation started (the previous one is trusted until it finishes)")
    actions: List = [
        Directory(paths.PREVIOUS_DIR, FOLDER_MODE, reason="the CA being replaced, trusted until the rollover ends"),
        File(paths.PREVIOUS_CA_CERT, current.cert_pem, 0o644, reason="the previous CA"),
        File(paths.PREVIOUS_CA_KEY, current.key_pem, 0o600, sensitive=True, reason="its key: it still signs its CRL"),
    ]
    reissued = []
    for name in sorted({item["name"] for item in active_entries(index, current, now)}):
        entry = [item for item in active_entries(index, current, now) if item["name"] == name][-1]
        left = (parse_time(entry["not_after"]) - now).total_seconds()
        _, made = issue(index, name, ca, max(1, int(-(-left // 86400))), key_type(files, entry), now, files, owner,
                        f"client {name}: re-issued under the new CA (hand its bundle out again)", supersede=ROTATED)
        actions.extend(made)
        reissued.append(name)
    previous = CA(current.cert, current.key, current.cert_pem, current.key_pem, "kept")
    return ca, previous, tuple(actions), reissued


def key_type(files: Mapping[str, bytes], entry: dict) -> str:
    """rsa or ecdsa: an issued certificate's key type (of its file, else as the index recorded it), the
    type its re-issue (rotation, ``actvt client renew``) keeps."""
    data = files.get(paths.client_cert(entry["name"]))
    if data is not None:
        try:
            return pki.key_type_of(pki.load_cert(data).public_key())
        except pki.PKIError:
            pass
    return "ecdsa" if entry.get("key", "").startswith("ECDSA") else "rsa"


def active_entries(index: dict, ca: CA, now: datetime.datetime) -> List[dict]:
    return [item for item in index["certificates"] if item["ca"] == ca.id and item["status"] == ACTIVE
            and parse_time(item["not_after"]) > now]


def old_ca_only(index: dict, ca: CA, previous: CA, now: datetime.datetime) -> List[dict]:
    """The live clients a finished rollover would cut off: a certificate of the previous CA that is
    not revoked and not expired, and no live one of the new CA under the same name (one entry each,
    the newest, by name)."""
    covered = {item["name"] for item in active_entries(index, ca, now)}
    found: Dict[str, dict] = {}
    for item in index["certificates"]:
        if item["ca"] == previous.id and item["status"] in (ACTIVE, ROTATED) and item["name"] not in covered \
                and parse_time(item["not_after"]) > now:
            if item["name"] not in found or item["not_after"] > found[item["name"]]["not_after"]:
                found[item["name"]] = item
    return [found[name] for name in sorted(found)]


class OldCAOnly(MTLSError):
    """``actvt ca finish`` refused: live clients hold only a certificate of the old CA (``clients``,
    their index entries); nothing was changed."""

    def __init__(self, clients: List[dict], folder: str):
        self.clients = clients
        if len(clients) == 1:
            who, item = clients[0]["name"], clients[0]
            said = f"{who} (expires {item['not_after']}) still holds only a certificate of the old CA: re-issue it"
        else:
            who = "NAME"
            said = (f"{len(clients)} live clients still hold only a certificate of the old CA ("
                    + ", ".join(f"{item['name']}, expires {item['not_after']}" for item in clients)
                    + "): re-issue each")
        super().__init__(f"{said} with `actvt client renew {who} --ca-dir {folder}`, revoke it, or pass --force; "
                         "the rollover is not finished, nothing was changed")


def finish_folder(files: Mapping[str, bytes], index: dict, now: datetime.datetime, folder: str,
                  force: bool = False) -> Tuple[CA, CA, Tuple, List[dict]]:
    """End a rollover: servers trust the new CA only. Certificates of the previous CA (the ones the
    rotation re-issued included) stop connecting once servers have the new trust file. While a live
    client holds only a certificate of the old CA (``old_ca_only``) it refuses with OldCAOnly, unless
    ``force``. Returns (CA, dropped CA, actions, the clients cut off)."""
    ca = load_ca(files, now)
    previous = previous_ca(files, ca) if ca else None
    if previous is None:
        raise MTLSError("no rollover in progress (start one with `actvt ca rotate --dir DIR`); nothing was changed")
    sync_index(index, files, ca, also=(previous,))
    cut_off = old_ca_only(index, ca, previous, now)
    if cut_off and not force:
        raise OldCAOnly(cut_off, folder)
    cut_off = [dict(item) for item in cut_off]  # as they were, before the entries are marked below
    for item in index["certificates"]:
        if item["ca"] == previous.id and item["status"] in (ACTIVE, ROTATED):
            item["status"] = REPLACED
    return ca, previous, (Absent(paths.PREVIOUS_DIR, reason="the rollover is finished (backed up)"),), cut_off


# --- generate-client.sh ---------------------------------------------------------------------------


def script_text() -> bytes:
    return render_file("generate-client.sh", {"VERSION": __version__, "COMMAND": paths.COMMAND,
                                              "MTLS_DIR": paths.MTLS_DIR}).encode()


# --- the install run's planner ----------------------------------------------------------------------



def revoked_name(index: dict, name: str) -> bool:
    """The newest certificate issued under ``name`` was revoked (and none is active): a re-run must not
    bring it back by itself."""
    entries = [item for item in index["certificates"] if item["name"] == name]
    if not entries or any(item["status"] == ACTIVE for item in entries):
        return False
    return max(entries, key=lambda item: item["not_before"])["status"] == REVOKED


def _revoked_first_note(name: str) -> str:
    return (f"{name} was revoked; the installer does not issue it again by itself: set ACTVT_MTLS_CLIENT_CN to "
            f"another name, or run `actvt client issue {name}` to issue a new certificate under that name")


def _superseded_note(name: str, until: str) -> str:
    return (f"the previous certificate of {name} stays valid until {until}: in standalone mode Vector cannot check "
            "a CRL. To deny it, replace the CA once with ACTVT_REUSE_MTLS_CA=no (every client is re-issued)")


def proxy_identity(files: Mapping[str, bytes], now: datetime.datetime, bundle: Optional[str] = None) -> Tuple:
    """Proxy mode: nginx's own identity towards Vector on 127.0.0.1. A CA of its own (it signs nothing
    else; its certificate is the only one Vector's ``ca_file`` trusts) and one client certificate,
    both root's and never handed out, so that every user's certificate can be revoked plainly and a
    server that only trusts a fleet CA needs no CA key for this hop. Kept while valid for more than
    30 days; made again otherwise (Vector restarts, nginx reloads: both read it only at start).
    ``bundle``: also the certificate and key in one file there (the front's ``proxy_identity_pem``)."""
    reason = "kept"
    try:
        ca_cert, ca_key = pki.check_ca(files[paths.PROXY_CA_CERT], files[paths.PROXY_CA_KEY])
        cert = pki.load_cert(files[paths.PROXY_CERT])
        key = pki.load_key(files[paths.PROXY_KEY])
        if not (pki.issued_by(cert, ca_cert) and pki.key_matches(cert, key)):
            raise pki.PKIError("the identity does not belong to its CA")
        if min(cert.not_valid_after_utc, ca_cert.not_valid_after_utc) - now <= datetime.timedelta(days=RENEW_DAYS):
            raise pki.PKIError("it expires within 30 days")
        pems = (files[paths.PROXY_CA_CERT], files[paths.PROXY_CA_KEY], files[paths.PROXY_CERT], files[paths.PROXY_KEY])
    except (KeyError, pki.PKIError):
        reason = "made for the hop from nginx to Vector"
        ca_key, ca_cert = pki.make_ca(PROXY_DAYS, now, key=pki.new_key("ecdsa"), subject=pki.LOOPBACK_SUBJECT)
        key, cert = pki.issue_client(ca_cert, ca_key, PROXY_NAME, PROXY_DAYS, "ecdsa", now)
        pems = (pki.cert_pem(ca_cert), pki.key_pem(ca_key), pki.cert_pem(cert), pki.key_pem(key))
    return (
        Directory(paths.PROXY_DIR, 0o755, reason="the proxy's own identity towards Vector"),
        File(paths.PROXY_CA_CERT, pems[0], 0o644, reason=f"the only CA Vector trusts behind nginx ({reason})"),
        File(paths.PROXY_CA_KEY, pems[1], 0o600, sensitive=True, reason="its key (root only)"),
        File(paths.PROXY_CERT, pems[2], 0o644, reason=f"what nginx presents to Vector ({reason}; never handed out)"),
        File(paths.PROXY_KEY, pems[3], 0o600, sensitive=True, reason="its key (root only: nginx reads it at start)"),
    ) + ((File(bundle, pems[2] + pems[3], 0o600, sensitive=True,
               reason="the same certificate and key in one file, as the front reads them (root only)"),) if bundle else ())


def plan_proxy_identity(config, facts, decisions, ctx) -> List[Step]:
    """The proxy's identity in proxy mode with mTLS; removed (backed up) when no longer used."""
    if config.enable_mtls and decisions.front is not None:
        return [Step("The proxy's own identity for the hop to Vector", proxy_identity(facts.files, ctx.moment,
                                                                                      decisions.front.proxy_identity_pem))]
    if any(path.startswith(paths.PROXY_DIR + "/") for path in facts.files):
        return [Step("Removing the proxy's identity (no longer used)",
                     (Absent(paths.PROXY_DIR, reason="only proxy mode with mTLS uses it"),))]
    return []


# --- a CA kept elsewhere (ACTVT_MTLS_CA_FILE): a server that only trusts ---------------------------


def trust_problems(config, ca_data: Optional[bytes], crl_data: Optional[bytes], now: datetime.datetime) -> List[str]:
    """Why the trusted CA file (and CRL file) cannot be used, one line each naming the variable."""
    if not config.mtls_ca_file:
        return []
    var = "ACTVT_MTLS_CA_FILE"
    allowed = "; allowed: a file of PEM CA certificates (no private key), not expired"
    if ca_data is None:
        return [f"{var}: {config.mtls_ca_file} does not exist{allowed}"]
    labels = [label for label, _ in pki.pem_blocks(ca_data)]
    if any("PRIVATE KEY" in label for label in labels):
        return [f"{var}: {config.mtls_ca_file} holds a private key: a trusted CA file carries certificates only "
                f"(the CA's key stays where clients are issued){allowed}"]
    try:
        certs = pki.load_certs(ca_data)
    except pki.PKIError as exc:
        return [f"{var}: {config.mtls_ca_file}: {exc}{allowed}"]
    if not certs:
        return [f"{var}: {config.mtls_ca_file} holds no PEM certificate{allowed}"]
    problems = []
    for cert in certs:
        name = pki.openssl_name(cert.subject)
        if not pki.is_ca(cert):
            problems.append(f"{var}: {config.mtls_ca_file}: {name} is not a CA certificate{allowed}")
        elif cert.not_valid_after_utc <= now:
            problems.append(f"{var}: {config.mtls_ca_file}: the CA {name} expired on "
                            f"{iso(cert.not_valid_after_utc)}{allowed}")
    if problems or not config.mtls_crl_file:
        return problems
    var, allowed = "ACTVT_MTLS_CRL_FILE", "; allowed: PEM CRLs signed by the trusted CAs, not expired"
    if crl_data is None:
        return [f"{var}: {config.mtls_crl_file} does not exist{allowed}"]
    try:
        crls = pki.load_crls(crl_data)
    except pki.PKIError as exc:
        return [f"{var}: {config.mtls_crl_file}: {exc}{allowed}"]
    if not crls:
        return [f"{var}: {config.mtls_crl_file} holds no PEM CRL{allowed}"]
    covered = set()
    for crl in crls:
        issuer = next((cert for cert in certs if crl.issuer == cert.subject and crl.is_signature_valid(cert.public_key())),
                      None)
        if issuer is None:
            problems.append(f"{var}: {config.mtls_crl_file}: a CRL of {pki.openssl_name(crl.issuer)} is not signed by a "
                            f"CA of {config.mtls_ca_file}{allowed}")
            continue
        covered.add(pki.fingerprint(issuer))
        if crl.next_update_utc is not None and crl.next_update_utc <= now:
            problems.append(f"{var}: {config.mtls_crl_file}: the CRL of {pki.openssl_name(crl.issuer)} expired on "
                            f"{iso(crl.next_update_utc)}{allowed}")
    for cert in certs:
        if not problems and pki.fingerprint(cert) not in covered:
            problems.append(f"{var}: {config.mtls_crl_file} has no CRL of {pki.openssl_name(cert.subject)}: nginx would "
                            f"refuse every client of that CA{allowed}")
    return problems


def trust_reads(config) -> Tuple[str, ...]:
    return tuple(path for path in (config.mtls_ca_file, config.mtls_crl_file) if path) if config is not None else ()


def plan_trust(config, facts, decisions, ctx) -> List[Step]:
    """The server trusts a CA kept elsewhere: ``ca.crt`` is the trusted certificates (Vector's
    ``ca_file`` standalone, nginx's ``ssl_client_certificate``), ``crl.pem`` the fleet's CRL when one
    is given; no CA key, no index, no client is issued here (what an earlier own CA left is removed,
    backed up)."""
    from installer.core.errors import ConfigError

    problems = trust_problems(config, facts.files.get(config.mtls_ca_file), facts.files.get(config.mtls_crl_file),
                              ctx.moment)
    if problems:
        raise ConfigError(problems)
    trusted = b"".join(pki.cert_pem(cert) for cert in pki.load_certs(facts.files[config.mtls_ca_file]))
    count = trusted.count(b"BEGIN CERTIFICATE")
    actions: List = [
        Directory(paths.MTLS_DIR, 0o755, reason="the trusted CA"),
        File(paths.CA_CERT, trusted, 0o644, reason=f"{count} CA certificate(s) from {config.mtls_ca_file} (the CA's "
                                                   "key is kept elsewhere)"),
    ]
    if config.mtls_crl_file:
        crls = b"".join(pki.crl_pem(crl) for crl in pki.load_crls(facts.files[config.mtls_crl_file]))
        actions.append(File(paths.MTLS_CRL, crls, 0o644, reason=f"the fleet's CRL from {config.mtls_crl_file}"))
    actions += [Absent(path, reason="the trusted CA is kept elsewhere (backed up)")
                for path in (paths.CA_KEY, paths.CA_PENDING, paths.GENERATE_CLIENT)
                + (() if config.mtls_crl_file else (paths.MTLS_CRL,)) if path in facts.files]
    return [Step("Trusting the fleet's CA (kept off this server)", tuple(actions))]


def plan_mtls(config, facts, decisions, ctx) -> List[Step]:
    if not config.enable_mtls:
        return []
    if config.mtls_ca_file:
        return plan_trust(config, facts, decisions, ctx)
    now = ctx.moment
    files = facts.files
    owner = facts.sudo_user or "root"
    ca = resolve_ca(files, answer(config, ctx, "ACTVT_REUSE_MTLS_CA"), config.mtls_ca_days, now)
    regen = answer(config, ctx, "ACTVT_REGEN_CLIENT_CERT")
    index = load_index(files)
    sync_index(index, files, ca)
    first = config.mtls_client_cn
    actions: List = []
    reissued = []
    names = set(existing_clients(files))
    if first in names or not revoked_name(index, first):
        names.add(first)
    for name in sorted(names):
        exists = paths.client_cert(name) in files
        if ca.state == "new" and exists:
            reason = "re-issued under the new CA"
            reissued.append(name)
        elif name == first and not exists:
            reason = f"first client {name}"
        elif name == first and regen:
            reason = "re-issued: ACTVT_REGEN_CLIENT_CERT=yes"
        elif name == first and not usable(files, name, ca):
            reason = "re-issued: the existing certificate is not usable with this CA"
        else:
            actions.extend(client_files(name, files[paths.client_cert(name)], files.get(paths.client_key(name)), files, owner,
                                        f"client {name}"))
            continue
        _, made = issue(index, name, ca, config.mtls_client_days, config.mtls_key_type, now, files, owner, reason)
        actions.extend(made)
    crl = crl_file(index, ca, files, now)
    title = "Setting up mTLS client certificates"
    if reissued:
        title += f" (re-issuing {len(reissued)} under the new CA: hand their bundles out again)"
    ca_title = "Setting up the mTLS certificate authority"
    if ca.note and ca.state in ("new", "adopted") and ca.note != "first mTLS setup":
        ca_title += f" ({ca.note})"
    return [
        Step(ca_title, ca_files(ca)),
        Step(title, tuple(actions) + (index_file(index), crl,
                                      File(paths.GENERATE_CLIENT, script_text(), 0o755,
                                           reason="issues more client certificates (calls `actvt client issue`)"))),
    ]


def notes(config, facts, decisions, ctx) -> List[str]:
    """What the summary says about mTLS that is not an action: a revoked first client that is not
    issued again; a replaced certificate that stays valid where nothing checks a CRL; client
    certificates that would outlive their CA (cut to the CA's end)."""
    if not config.enable_mtls:
        return []
    if config.mtls_ca_file:
        if config.mtls_crl_file and decisions.mode != "proxy":
            return ["ACTVT_MTLS_CRL_FILE is not used in standalone mode: Vector reads no CRL (revoke by rotating the "
                    "fleet CA: `actvt ca rotate --dir DIR`)"]
        return []
    found = []
    try:
        index = load_index(facts.files)
    except ActvtError:
        return []  # the planner stops the run with the reason
    first = config.mtls_client_cn
    if paths.client_cert(first) not in facts.files and revoked_name(index, first):
        found.append(_revoked_first_note(first))
    previous = [item for item in index["certificates"] if item["name"] == first and item["status"] == ACTIVE]
    if paths.client_cert(first) in facts.files and answer(config, ctx, "ACTVT_REGEN_CLIENT_CERT") and previous \
            and decisions.mode != "proxy":
        found.append(_superseded_note(first, previous[-1]["not_after"]))
    ca_end = _ca_not_after(config, facts, ctx)
    if ca_end is not None and ctx.moment + datetime.timedelta(days=config.mtls_client_days) > ca_end:
        found.append(f"ACTVT_MTLS_CLIENT_DAYS={config.mtls_client_days} outlives the CA (it ends on {iso(ca_end)}): "
                     "client certificates issued now end with the CA")
    return found


def _ca_not_after(config, facts, ctx) -> Optional[datetime.datetime]:
    """When the CA this run keeps or makes expires (no key is made to tell)."""
    keep = answer(config, ctx, "ACTVT_REUSE_MTLS_CA") and unfinished_ca(facts.files) is None
    data = facts.files.get(paths.CA_CERT)
    if keep and data is not None:
        try:
            return pki.load_cert(data).not_valid_after_utc
        except pki.PKIError:
            return None
    return pki.utc(ctx.moment) + datetime.timedelta(days=config.mtls_ca_days)


# --- for the summary ------------------------------------------------------------------------------


def download_command(domain: str, name: str, sudo_user: Optional[str]) -> str:
    return f"scp {sudo_user or 'root'}@{domain}:{paths.client_bundle(name)} ~/Downloads/"


def summary_lines(config, sudo_user: Optional[str], changed_paths: Sequence[str]) -> List[str]:
    """The summary's mTLS part: which bundles to hand out (again), and how to download them.
    ``changed_paths``: the server paths this run wrote (``Checked.action.path`` of changed items)."""
    if not config.enable_mtls:
        return []
    suffix = "-bundle.tar.gz"
    prefix = paths.MTLS_DIR + "/"
    written = sorted(path[len(prefix):-len(suffix)] for path in changed_paths
                     if path.startswith(prefix) and path.endswith(suffix) and "/" not in path[len(prefix):])
    lines = []
    names = written or [config.mtls_client_cn]
    if written:
        lines.append("Client bundles written in this run (hand them out; they replace any earlier bundle "
                     "of the same name):")
    else:
        lines.append("Client bundle:")
    for name in names:
        lines.append(f"  {name}: {download_command(config.domain, name, sudo_user)}")
    lines.append(f"More clients: sudo {paths.GENERATE_CLIENT} NAME  (or: sudo actvt client issue NAME)")
    return lines


def uninstall_purge(entries, facts, options) -> List[Step]:
    """``--purge``: the whole mTLS folder (clients issued later with ``actvt client issue`` are not in
    the manifest)."""
    if not options.purge:
        return []
    return [Step("Removing the mTLS material (--purge)", (Absent(paths.MTLS_DIR, "--purge"),))]


CONCERN = Concern(
    name="mtls",
    reads=lambda config: READS + trust_reads(config),
    planners=(Planner(Phase.MTLS, plan_mtls), Planner(Phase.MTLS, plan_proxy_identity)),
    notes=notes,
    uninstall=(Uninstaller(Undo.PURGE, uninstall_purge),),
)
