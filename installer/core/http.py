"""Connectivity: before anything is changed, the network endpoints this run's plan will use are
asked over HTTP(S), with the user's proxy settings (``HTTPS_PROXY``, ``NO_PROXY``, ... through
urllib) and the trust certbot and apt use: the system's CA store, or ``REQUESTS_CA_BUNDLE``.
``get`` is also how the installer downloads (the repository's signing key), so what the check
accepts is what the run will use.

Only what the plan needs: Vector's repository when the package is to be installed, the ACME
directory when certbot is to be run. Never a public address of our choosing (the reference pinged
8.8.8.8, which proves nothing and is often blocked). A failure stops the run with the URL, the
reason and the variable to check; nothing has been changed at that point.
"""

import os
import platform
import ssl
import urllib.error
import urllib.request
from typing import List, Mapping, Optional, Tuple

from installer.core.actions import Command, Fetch, File
from installer.core.errors import ActvtError

TIMEOUT = 20


class UnreachableError(ActvtError):
    """An endpoint the plan needs does not answer; nothing was changed."""


def endpoints(plan, config) -> List[Tuple[str, str, str]]:
    """(what, URL to ask, the variable that names it) for each endpoint the plan will use."""
    from installer.concerns import vector

    found = []
    for action in plan.actions:
        if isinstance(action, Fetch):
            found.append(("the signing key of Vector's repository", action.url, "ACTVT_VECTOR_KEY_URL"))
        elif isinstance(action, File) and action.path == vector.APT_LIST:
            base = config.vector_apt_url.rstrip("/")
            found.append(("Vector's package repository", f"{base}/dists/stable/InRelease", "ACTVT_VECTOR_APT_URL"))
        elif isinstance(action, File) and action.path == vector.YUM_REPO:
            base = config.vector_yum_url.replace("$basearch", platform.machine() or "x86_64").rstrip("/")
            found.append(("Vector's package repository", f"{base}/repodata/repomd.xml", "ACTVT_VECTOR_YUM_URL"))
        elif isinstance(action, Command) and action.argv[:2] == ("certbot", "certonly") and "--server" in action.argv:
            url = action.argv[action.argv.index("--server") + 1]
            found.append(("the ACME directory (certbot)", url, "ACTVT_ACME_SERVER"))
    return list(dict.fromkeys(found))


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


def check(plan, config, environ: Mapping[str, str], log=None) -> None:
    """Stop with UnreachableError when an endpoint the plan needs does not answer."""
    failures = []
    for what, url, variable in endpoints(plan, config):
        why = problem(url, environ)
        if log is not None:
            log("INFO", f"connectivity: {url}: {why or 'ok'}")
        if why:
            failures.append(f"cannot reach {what} at {url}: {why} (check the network, the proxy settings "
                            f"HTTPS_PROXY/NO_PROXY, or {variable})")
    if failures:
        raise UnreachableError("\n".join(failures) + "\nNothing was changed.")
