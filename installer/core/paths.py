"""Where things live on the server, and how ``--root`` maps them.

Every module names absolute server paths (the constants below); only ``Root.host`` turns one into
a path on this machine, so ``--root DIR`` is a single parameter.
"""

import os
from typing import List

STATE_DIR = "/var/lib/actvt"
BACKUP_DIR = "/var/lib/actvt/backups"
STATE_FILE = "/var/lib/actvt/install.state"
DOMAIN_FILE = "/var/lib/actvt/domain"
LOG_FILE = "/var/log/actvt-install.log"
LOCK_DIR = "/run/actvt"  # root-owned 0755: nobody else can plant a link or a file there
LOCK_FILE = "/run/actvt/install.lock"
LIB_DIR = "/usr/local/lib/actvt"
PERSISTED_PYZ = "/usr/local/lib/actvt/actvt.pyz"
COMMAND = "/usr/local/bin/actvt"
CACHE_DIR = "/var/cache/actvt"
#: Apache's webroot for certbot's http-01 challenge, the installer's own folder (concerns/apache.py makes it,
#: concerns/selinux.py labels it)
ACME_WEBROOT = "/var/lib/actvt-acme"

VECTOR_DIR = "/etc/vector"
VECTOR_CONFIG = "/etc/vector/vector.toml"
VECTOR_DEFAULTS = "/etc/default/vector"
VECTOR_DROPIN_DIR = "/etc/systemd/system/vector.service.d"
VECTOR_LIMITS = "/etc/systemd/system/vector.service.d/actvt-limits.conf"
HEALTH_SCRIPT = "/usr/local/lib/actvt/vector-health"
HEALTH_SERVICE = "/etc/systemd/system/actvt-vector-health.service"
HEALTH_TIMER = "/etc/systemd/system/actvt-vector-health.timer"
VECTOR_CERT_DIR = "/etc/vector/certs"
SERVER_CERT = "/etc/vector/certs/server.crt"
SERVER_KEY = "/etc/vector/certs/server.key"
MTLS_DIR = "/etc/vector/certs/mtls"
MTLS_CLIENTS_DIR = "/etc/vector/certs/mtls/clients"
CA_CERT = "/etc/vector/certs/mtls/ca.crt"
CA_KEY = "/etc/vector/certs/mtls/ca.key"
GENERATE_CLIENT = "/etc/vector/certs/mtls/generate-client.sh"
MTLS_INDEX = "/etc/vector/certs/mtls/index.json"
MTLS_CRL = "/etc/vector/certs/mtls/crl.pem"
CA_PENDING = "/etc/vector/certs/mtls/.ca-pending.json"  # a new CA being written (see concerns.mtls)
MANIFEST = "/var/lib/actvt/manifest.json"
# In a CA folder (CaFolder) only: the file servers trust (ACTVT_MTLS_CA_FILE), and the CA a rotation
# replaced, trusted until the rollover is finished
FLEET_TRUST = "/etc/vector/certs/mtls/trust.pem"
PREVIOUS_DIR = "/etc/vector/certs/mtls/previous"
PREVIOUS_CA_CERT = "/etc/vector/certs/mtls/previous/ca.crt"
PREVIOUS_CA_KEY = "/etc/vector/certs/mtls/previous/ca.key"
# Proxy mode with mTLS: nginx's own identity towards Vector on 127.0.0.1, from a CA of its own
# (never handed out, never a user's certificate)
PROXY_DIR = "/etc/vector/certs/proxy"
PROXY_CA_CERT = "/etc/vector/certs/proxy/ca.crt"
PROXY_CA_KEY = "/etc/vector/certs/proxy/ca.key"
PROXY_CERT = "/etc/vector/certs/proxy/nginx.crt"
PROXY_KEY = "/etc/vector/certs/proxy/nginx.key"

LETSENCRYPT_LIVE = "/etc/letsencrypt/live"
LETSENCRYPT_RENEWAL = "/etc/letsencrypt/renewal"
DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh"
NGINX_SITE = "/etc/nginx/sites-available/actvt-vector"
NGINX_SITE_LINK = "/etc/nginx/sites-enabled/actvt-vector"
NGINX_CONFD_SITE = "/etc/nginx/conf.d/actvt-vector.conf"
NGINX_SNIPPET = "/etc/nginx/snippets/actvt-vector-location.conf"


# --- paths named by a domain or a client ------------------------------------------------------


def lineage(domain: str) -> str:
    """certbot's live folder of the domain's certificate (``--cert-name <domain>``)."""
    return f"{LETSENCRYPT_LIVE}/{domain}"


def fullchain(domain: str) -> str:
    return f"{lineage(domain)}/fullchain.pem"


def privkey(domain: str) -> str:
    return f"{lineage(domain)}/privkey.pem"


def renewal_conf(domain: str) -> str:
    return f"{LETSENCRYPT_RENEWAL}/{domain}.conf"


def client_cert(name: str) -> str:
    return f"{MTLS_CLIENTS_DIR}/{name}.crt"


def client_key(name: str) -> str:
    return f"{MTLS_CLIENTS_DIR}/{name}.key"


def client_bundle(name: str) -> str:
    return f"{MTLS_DIR}/{name}-bundle.tar.gz"


class Root:
    """The filesystem root every fact is read from and every file is written under."""

    def __init__(self, root: str = "/"):
        self.root = os.path.abspath(root)

    @property
    def is_host(self) -> bool:
        """True when acting on this machine itself (commands and services can run)."""
        return self.root == "/"

    def relative(self, path: str) -> List[str]:
        """The names of the server path ``path`` below ``self.root``."""
        if not path.startswith("/"):
            raise ValueError(f"server paths are absolute: {path!r}")
        return [part for part in path.split("/") if part]

    def host(self, path: str) -> str:
        """The path on this machine for the server path ``path``."""
        if self.is_host:
            self.relative(path)
            return path
        return os.path.join(self.root, *self.relative(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"


class CaFolder(Root):
    """A CA kept off the servers (``actvt ca … --dir``, ``actvt client … --ca-dir``), on any machine:
    the folder holds what a server keeps in /etc/vector/certs/mtls (ca.crt, ca.key, clients/, the
    bundles, index.json, crl.pem), its backups in ``.backups/`` and its lock in ``.lock/``. The same
    code issues, lists and revokes there as on a server; a path of a server's that has no place in
    the folder is an error, not a write somewhere else."""

    PLACES = ((BACKUP_DIR, (".backups",)), (LOCK_DIR, (".lock",)), (MTLS_DIR, ()), (STATE_DIR, ()))

    @property
    def is_host(self) -> bool:
        return False

    def relative(self, path: str) -> List[str]:
        for prefix, place in self.PLACES:
            if path == prefix or path.startswith(prefix + "/"):
                return list(place) + [part for part in path[len(prefix):].split("/") if part]
        raise ValueError(f"{path} has no place in a CA folder")
