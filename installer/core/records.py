"""The installer's own records on the server, read strictly: ``install.state``, ``domain``.

A damaged record is never read as "nothing there" (the run would then rewrite or forget it): it
stops the run with ``StateError``, naming the file and what to do. ``damaged`` builds that message for
every record (also ``manifest.json``, ``index.json``, ``crl.pem``).
"""

import re
from typing import Dict, Optional

from installer.core import paths
from installer.core.errors import ActvtError


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
