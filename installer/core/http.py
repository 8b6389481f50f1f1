"""The installer's one HTTP client: ``get``, with the user's proxy settings (``HTTPS_PROXY``,
``NO_PROXY``, ... through urllib) and the trust certbot and apt use: the system's CA store, or
``REQUESTS_CA_BUNDLE``. The connectivity check (``commands.run``) and the downloads (the repository's
signing key) both use it, so what the check accepts is what the run will use.
"""

import os
import ssl
import urllib.error
import urllib.request
from typing import Mapping, Optional


TIMEOUT = 20


def tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """What certbot (requests) trusts: REQUESTS_CA_BUNDLE when set, else the system store; without
    Python 3.13's VERIFY_X509_STRICT, which certbot does not apply (e2e on Debian 13: a CA without a
    key usage extension, accepted by certbot, failed this check)."""
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=bundle if bundle and os.path.isfile(bundle) else None)
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


class FetchError(Exception):
    """Why a URL could not be read (one line)."""


def get(url: str, environ: Mapping[str, str], timeout: float = TIMEOUT, limit: Optional[int] = None) -> bytes:
    """The body of ``url`` (at most ``limit`` bytes), trusted and proxied as certbot and apt are.
    The one HTTP client of the installer: the connectivity check and the downloads use it."""
    context = tls_context(environ) if url.startswith("https:") else None
    request = urllib.request.Request(url, headers={"User-Agent": "actvt-installer"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.read() if limit is None else response.read(limit)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise FetchError(str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)) from None
    except (OSError, ValueError) as exc:
        raise FetchError(str(exc) or type(exc).__name__) from None


def problem(url: str, environ: Mapping[str, str], timeout: float = TIMEOUT) -> Optional[str]:
    """None when ``url`` answers with a success, else why not."""
    try:
        get(url, environ, timeout, limit=1)
    except FetchError as exc:
        return str(exc)
    return None
