"""The proxy front: the web server that serves ``wss://DOMAIN/actvt`` in proxy mode (nginx or Apache).

Every other concern speaks to the front through this value, never to nginx by name: certbot's
renewal check reruns when the front's challenge files change, mTLS revocation and CA changes are
followed by the front's check-and-reload, uninstall reloads it. A front is one concern module that
makes one ``Front`` and is listed in ``plans.registry`` (``concerns.nginx``, ``concerns.apache``).

Both fronts verify the certificate Vector serves on 127.0.0.1 (the domain's Let's Encrypt certificate,
``concerns.certbot`` copies it for Vector) against ``upstream_ca_file``: the system's CA bundle, which
holds Let's Encrypt's roots as it does for certbot. Without the check, whatever listens on Vector's port
while Vector is down (another local user's process) would receive the clients' WebSockets.
"""

import dataclasses
from typing import Callable, Optional, Tuple

#: The system's CA bundle, by package manager (ca-certificates on Debian/Ubuntu, ca-certificates'
#: extracted bundle on the RHEL family); an issuer outside it (ACTVT_ACME_SERVER of a private CA) must
#: be added to the system store (update-ca-certificates, update-ca-trust).
SYSTEM_CA_BUNDLES = {"apt": "/etc/ssl/certs/ca-certificates.crt", "dnf": "/etc/pki/tls/certs/ca-bundle.crt",
                     "yum": "/etc/pki/tls/certs/ca-bundle.crt"}


def upstream_ca_file(facts) -> str:
    """The CA file that verifies Vector's certificate (both fronts)."""
    return SYSTEM_CA_BUNDLES.get(facts.package_manager or "apt", SYSTEM_CA_BUNDLES["apt"])


@dataclasses.dataclass(frozen=True)
class Front:
    name: str  # as Facts.web_server() names it (nginx)
    packages: Tuple[str, ...]  # any of these installed: the front is installed
    challenge_files: Tuple[str, ...]  # the files that answer the ACME challenge on port 80
    check_and_reload: Callable  # (when_changed paths, what) -> actions: config test, then reload
    challenge_webroot: Callable  # (config, facts) -> the folder certbot's webroot challenge is served from
    enforces_crl: bool = True  # revocation through a CRL (Vector alone cannot)
    # what /actvt answers a client without a certificate (`actvt doctor` checks it): (status, a piece of the body)
    no_certificate: Tuple[int, bytes] = (496, b"")
    # where the front reads its identity towards Vector as one PEM file (certificate, then key), for a
    # front that cannot take them apart (Apache's SSLProxyMachineCertificateFile); None: the two files
    proxy_identity_pem: Optional[str] = None

    def installed(self, facts) -> bool:
        return any(facts.has_package(name) for name in self.packages)
