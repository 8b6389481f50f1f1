"""The installer's own records on the server, read strictly: ``install.state``, ``domain``.

A damaged record is never read as "nothing there" (the run would then rewrite or forget it): it
stops the run with ``StateError``, naming the file and what to do. ``damaged`` builds that message for
every record (also ``manifest.json``, ``index.json``, ``crl.pem``).

Which files are records (``kind``): everything in ``/var/lib/actvt`` and ``/etc/vector/certs`` (the
state, the manifest, the CA and client files, ``index.json``, ``crl.pem``, ``.ca-pending.json``, the
copies Vector reads). They are read only from root-owned files in folders only root can change
(``core.fs.Tree.read_record``); a backup may keep its original's owner.
"""

import pwd
import re
from typing import Dict, Optional

from installer.core import paths
from installer.core.errors import ActvtError
from installer.core.fs import NOBODY_ELSE, Owners


RECORD, BACKUP = "record", "backup"
#: Vector's service account: the bash installer and the old guide's manual steps (docs/mtls.md) made
#: /etc/vector/certs and what it holds vector:vector, and the installer adopts that material (giving it
#: back to root). Vector already owned its CA key there, so trusting its account there adds no power;
#: in a root-owned folder it cannot make anything. Any other owner is refused.
SERVICE_USER = "vector"
_RECORD_DIRS = (paths.STATE_DIR, paths.VECTOR_CERT_DIR)


def kind(path: str) -> Optional[str]:
    """RECORD, BACKUP (a copy in the backups folder) or None (a file the installer does not keep, or
    a client bundle: made for the user who ran sudo, and owned by them, it is never read back as truth)."""
    if path.startswith(paths.BACKUP_DIR + "/"):
        return BACKUP
    if path.startswith(paths.MTLS_DIR + "/") and path.endswith(paths.client_bundle("")[len(paths.MTLS_DIR) + 1:]):
        return None
    return RECORD if any(path.startswith(folder + "/") for folder in _RECORD_DIRS) else None


def allowed_owners(path: str) -> Owners:
    """Who besides root may own a folder or record at ``path`` (``core.fs.trusted``): Vector's
    account under /etc/vector/certs, nobody anywhere else. Never group write: that is no one's."""
    if path == paths.VECTOR_CERT_DIR or path.startswith(paths.VECTOR_CERT_DIR + "/"):
        try:
            return (pwd.getpwnam(SERVICE_USER).pw_uid,), ()
        except KeyError:  # no Vector yet: nothing of it to adopt
            pass
    return NOBODY_ELSE


def parse_state(text: str) -> Dict[str, str]:
    """``key=value`` lines of ``/var/lib/actvt/install.state``."""
    state = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            state[key.strip()] = value.strip()
    return state


class StateError(ActvtError):
    """A record the installer keeps (install.state, domain, manifest.json, index.json, crl.pem) is
    damaged. It is never reset silently: the message names the file and what to do; nothing was changed."""


def damaged(path: str, why: str, what: str = "") -> StateError:
    return StateError(f"{path} is damaged ({why}). Put back its newest copy from {paths.BACKUP_DIR}/*{path}, "
                      f"or correct it{what}; nothing was changed")


_STATE_KEY = re.compile(r"^[a-z_][a-z0-9_]*\Z")
_STATE_VALUES = {"mode": ("standalone", "proxy"), "mtls": ("enabled", "disabled"),
                 "webserver": ("none", "nginx", "apache", "httpd", "unknown")}
_STATE_HINT = " (lines version=, installed_at=, mode=, webserver=, mtls=, mtls_client_cn=)"


def read_state(data: Optional[bytes]) -> Dict[str, str]:
    """``install.state`` checked line by line (``{}`` when there is none); StateError when damaged."""
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise damaged(paths.STATE_FILE, "it is not text", _STATE_HINT) from None
    from installer.core.config import Invalid, parse_client_name

    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not _STATE_KEY.match(key.strip()):
            raise damaged(paths.STATE_FILE, f"line {number} is not key=value", _STATE_HINT)
        allowed = _STATE_VALUES.get(key.strip())
        if allowed and value.strip() not in allowed:
            raise damaged(paths.STATE_FILE, f"line {number}: {key.strip()} is not one of {', '.join(allowed)}",
                          _STATE_HINT)
        if key.strip() in ("mtls_ca_file", "mtls_crl_file") and not value.strip().startswith("/"):
            raise damaged(paths.STATE_FILE, f"line {number}: {key.strip()} is not an absolute path", _STATE_HINT)
        if key.strip() == "mtls_client_cn" and value.strip():
            try:
                parse_client_name(value.strip())
            except Invalid:
                raise damaged(paths.STATE_FILE, f"line {number}: mtls_client_cn is not a client name",
                              _STATE_HINT) from None
    return parse_state(text)


def read_domain(data: Optional[bytes]) -> Optional[str]:
    """The domain recorded in ``/var/lib/actvt/domain`` (None when there is none); StateError when damaged."""
    if data is None:
        return None
    from installer.core.config import is_hostname

    try:
        value = data.decode("utf-8").strip().rstrip(".").lower()
    except UnicodeDecodeError:
        raise damaged(paths.DOMAIN_FILE, "it is not text", " (one line: the server's domain)") from None
    if value and not is_hostname(value):
        raise damaged(paths.DOMAIN_FILE, "it does not hold a host name", " (one line: the server's domain)")
    return value or None
