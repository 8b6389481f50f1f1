"""The Let's Encrypt certificate: certbot, the lineage, the copies Vector reads, the deploy hook.

``plan_certbot`` runs after nginx's challenge server (``nginx.plan_nginx_challenge``, so that webroot
validation is really answered on port 80) and before the mTLS files, the Vector configuration and
the nginx site: when certbot fails, nothing that would point at missing certificate files has been
written or enabled yet, and the engine puts back the files this run wrote.

Decisions (each a test in ``tests/test_certbot.py``):

- the domain does not resolve: stop before anything changes, unless ACTVT_CONTINUE_WITHOUT_DNS
  (or the prompt) says to go on; when the certificate is reused nothing needs DNS now, so it is a
  note only;
- ``/etc/letsencrypt/live/<domain>/`` exists: reuse it (no certbot run), or, with ACTVT_REUSE_CERT=no,
  ``certonly --force-renewal``; an expired certificate is renewed the same way;
- a new certificate: proxy mode with nginx uses ``certonly --webroot -w <webroot>``; proxy mode with
  another web server stops with instructions; standalone uses ``certonly --standalone``, which needs
  port 80 free (else: stop with instructions);
- always ``--cert-name <domain>`` (the lineage keeps the domain's name), ``--agree-tos
  --non-interactive --no-eff-email --email … --server <ACME directory>``; the e-mail is masked in
  everything shown or logged; the caller's environment (REQUESTS_CA_BUNDLE, proxies) reaches certbot
  through the engine's runner.

Files for Vector (owners decided here): ``/etc/vector/certs/server.crt`` 0644 and
``/etc/vector/certs/server.key`` 0640, both **root:vector**. The reference says "owner vector";
group vector is what Vector needs to read the key, and root ownership keeps the Vector process from
replacing or loosening its own TLS identity (as the mTLS CA key is root's, not vector's). The deploy
hook gives renewed copies the same modes and owners.

The deploy hook ``/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh`` acts only when
``RENEWED_LINEAGE`` is this domain's lineage (certbot runs directory hooks for every certificate it
renews), restarts Vector (a reload does not make the websocket_server sink re-read its certificate)
and reloads nginx after ``nginx -t`` when nginx runs.
"""

import datetime
import os
from typing import List, Optional, Tuple

from installer import __version__
from installer.core import paths
from installer.core.actions import Command, Copy, Directory, File, Packages, Step
from installer.core.context import answer
from installer.core.errors import ActvtError

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "certbot-deploy-hook.sh")
RENEWAL_DIR = "/etc/letsencrypt/renewal"
VECTOR_GROUP = "vector"
CERT_MODE, KEY_MODE = 0o644, 0o640
CERTBOT_TIMEOUT = 600  # seconds; certbot itself gives up on a challenge well before this
EPEL_RHEL = "https://dl.fedoraproject.org/pub/epel/epel-release-latest-{major}.noarch.rpm"


class CertbotError(ActvtError):
    """The certificate cannot be obtained as configured; nothing was changed."""


# --- paths ----------------------------------------------------------------------------------------


def lineage(domain: str) -> str:
    return f"{paths.LETSENCRYPT_LIVE}/{domain}"


def fullchain(domain: str) -> str:
    return f"{lineage(domain)}/fullchain.pem"


def privkey(domain: str) -> str:
    return f"{lineage(domain)}/privkey.pem"


def renewal_conf(domain: str) -> str:
    return f"{RENEWAL_DIR}/{domain}.conf"


def WATCH(config) -> Tuple[str, ...]:  # noqa: N802 (the name plan.watched looks for)
    """The lineage folder (its README; the live files are links, which folders do not list), the
    certificate itself (read through its link, public) and the renewal configuration."""
    if config is None or not getattr(config, "domain", None):
        return ()
    return (lineage(config.domain), fullchain(config.domain), renewal_conf(config.domain))


# --- facts as the planner needs them --------------------------------------------------------------


def lineage_exists(config, facts) -> bool:
    return lineage(config.domain) in facts.dirs or fullchain(config.domain) in facts.files


def certificate_expiry(facts, domain: str) -> Optional[datetime.datetime]:
    """notAfter of the lineage's certificate, or None when it is absent or unreadable."""
    data = facts.files.get(fullchain(domain))
    if not data:
        return None
    from installer.concerns import pki

    try:
        return pki.load_cert(data).not_valid_after_utc
    except Exception:  # noqa: BLE001 - an unreadable certificate is treated like an absent one
        return None


def renewal_authenticator(facts, domain: str) -> Optional[str]:
    """``authenticator = …`` of certbot's renewal configuration for the lineage."""
    text = facts.files.get(renewal_conf(domain), b"").decode(errors="replace")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "authenticator":
            return value.strip()
    return None




# --- what to do -------------------------------------------------------------------------------------


def _instructions_other_web_server(config, decisions) -> str:
    server = {"apache": "apache2", "httpd": "httpd"}.get(decisions.webserver, "another web server")
    return (
        f"proxy mode needs nginx, but {server} serves ports 80/443 on this host; the installer does not "
        f"configure {server}, and certbot's standalone mode cannot use port 80 while it runs. Either:\n"
        f"  1. obtain the certificate with {server}'s help, e.g. `certbot certonly --webroot -w <its document root> "
        f"--cert-name {config.domain} -d {config.domain}` (or `certbot certonly --apache -d {config.domain}`), then "
        f"re-run with ACTVT_FORCE_STANDALONE=yes: the certificate is reused and Vector serves "
        f"wss://{config.domain}:{config.vector_port} itself (open that port); or\n"
        f"  2. forward wss://{config.domain}/actvt from {server} to https://127.0.0.1:{config.vector_port} yourself "
        f"(WebSocket upgrade, TLS upstream), after a standalone install; or\n"
        f"  3. serve the domain with nginx instead of {server}.\n"
        "Nothing was changed."
    )


def _instructions_port_80(config, facts) -> str:
    holders = sorted({item.process or "an unknown program" for item in facts.listening_on(80)})
    return (
        f"standalone mode: certbot --standalone must answer Let's Encrypt on port 80, but {', '.join(holders)} "
        f"listens there. Either use proxy mode (ACTVT_INSTALL_MODE=proxy, when it is nginx), or obtain the "
        f"certificate first with the web server's help (e.g. `certbot certonly --webroot -w <its document root> "
        f"--cert-name {config.domain} -d {config.domain}`) and re-run: an existing certificate is reused. "
        "Nothing was changed."
    )


def authenticator(config, facts, decisions) -> Tuple[str, ...]:
    """certbot's authenticator arguments for this host, or CertbotError with what to do instead."""
    if decisions.mode == "proxy":
        if decisions.webserver in ("nginx", "none"):  # "none": nginx is installed and set up by nginx.py
            from installer.concerns.nginx import challenge_webroot

            return ("--webroot", "-w", challenge_webroot(config, facts))
        raise CertbotError(_instructions_other_web_server(config, decisions))
    if facts.listening_on(80):
        raise CertbotError(_instructions_port_80(config, facts))
    return ("--standalone",)


def certonly_argv(config, auth: Tuple[str, ...], force: bool) -> Tuple[str, ...]:
    argv = ("certbot", "certonly", *auth, "--cert-name", config.domain, "-d", config.domain,
            "--agree-tos", "--non-interactive", "--no-eff-email", "--email", config.email,
            "--server", config.acme_server)
    return argv + (("--force-renewal",) if force else ())


def masked(argv: Tuple[str, ...], email: str) -> str:
    from installer.core.config import mask_email

    return " ".join(mask_email(email) if part == email else part for part in argv)


def install_certbot(facts) -> List:
    """certbot from the distribution; on RHEL-likes from EPEL, which is added first."""
    manager = facts.package_manager or "apt"
    if manager == "apt" or facts.has_package("certbot"):
        return [Packages(manager, ("certbot",), reason="obtains and renews the Let's Encrypt certificate")]
    actions: List = []
    family = (facts.os.id,) + tuple(facts.os.id_like)
    if facts.os.id == "fedora":
        pass  # certbot is in Fedora itself
    elif facts.os.id == "amzn":
        if facts.os.version_id.startswith("2") and facts.os.version_id != "2023" \
                and not facts.has_package("epel-release"):
            actions.append(Command(("amazon-linux-extras", "install", "-y", "epel"),
                                   reason="certbot comes from EPEL on Amazon Linux 2"))
    elif not facts.has_package("epel-release"):
        if facts.os.id == "rhel":
            major = (facts.os.version_id or "9").split(".")[0]
            actions.append(Command((manager, "install", "-y", EPEL_RHEL.format(major=major)),
                                   reason="certbot comes from EPEL (Extra Packages for Enterprise Linux)"))
        elif any(name in ("rhel", "centos", "rocky", "almalinux") for name in family):
            actions.append(Packages(manager, ("epel-release",),
                                    reason="certbot comes from EPEL (Extra Packages for Enterprise Linux)"))
    actions.append(Packages(manager, ("certbot",), reason="obtains and renews the Let's Encrypt certificate"))
    return actions


def hook_text(domain: str, cert_dir: str = paths.VECTOR_CERT_DIR, group: str = VECTOR_GROUP,
              live: str = paths.LETSENCRYPT_LIVE) -> bytes:
    """The deploy hook for ``domain``. ``cert_dir``, ``group`` and ``live`` are parameters so that
    tests run the real script against temporary folders (no environment variable can redirect the
    installed hook); the installer always uses the defaults."""
    for value in (domain, cert_dir, group, live):
        if "'" in value or "\n" in value:
            raise ValueError(f"cannot put {value!r} in a shell single-quoted string")
    with open(TEMPLATE, encoding="utf-8") as handle:
        text = handle.read()
    for marker, value in (("@VERSION@", __version__), ("@LINEAGE@", f"{live}/{domain}"),
                          ("@CERT_DIR@", cert_dir), ("@GROUP@", group)):
        text = text.replace(marker, value)
    return text.encode()


def _challenge_paths() -> Tuple[str, ...]:
    from installer.concerns import nginx

    return nginx.CHALLENGE_FILES


def notes(config, facts, decisions, ctx) -> List[str]:
    """Warnings for the summary (also shown in the step's title)."""
    found = []
    if facts.domain_addresses == ():
        found.append(f"{config.domain} does not resolve from this server: clients (and Let's Encrypt) "
                     "cannot reach it until its DNS record exists")
    if lineage_exists(config, facts) and answer(config, ctx, "ACTVT_REUSE_CERT"):
        stored = renewal_authenticator(facts, config.domain)
        if stored == "standalone" and facts.listening_on(80):
            found.append(f"the reused certificate renews with certbot --standalone, which cannot use port 80 "
                         f"while a web server holds it; re-run once with ACTVT_REUSE_CERT=no to re-issue it "
                         f"through {'the nginx webroot' if decisions.mode == 'proxy' else 'the current setup'}")
    return found


# --- the planner ------------------------------------------------------------------------------------


def plan_certbot(config, facts, decisions, ctx) -> List[Step]:
    domain = config.domain
    exists = lineage_exists(config, facts)
    reuse = answer(config, ctx, "ACTVT_REUSE_CERT")
    expiry = certificate_expiry(facts, domain)
    expired = exists and expiry is not None and expiry <= ctx.moment

    # What certbot must do (None: nothing, the lineage is reused as it is).
    if not exists:
        why, force = f"new certificate for {domain}", False
    elif not reuse:
        why, force = "ACTVT_REUSE_CERT=no: renewing the existing certificate now", True
    elif expired:
        why, force = f"the existing certificate expired on {expiry:%Y-%m-%d}: renewing it", True
    else:
        why, force = None, False

    run_notes = notes(config, facts, decisions, ctx)
    certonly: List = []
    if why is not None:
        if facts.domain_addresses == () and not answer(config, ctx, "ACTVT_CONTINUE_WITHOUT_DNS"):
            raise CertbotError(
                f"ACTVT_DOMAIN: {domain} does not resolve (no address found from this server). Let's Encrypt "
                f"must reach this server as {domain} on port 80. Create the DNS record (A/AAAA) and re-run, or "
                "set ACTVT_CONTINUE_WITHOUT_DNS=yes to try anyway. Nothing was changed.")
        argv = certonly_argv(config, authenticator(config, facts, decisions), force)
        certonly.append(Command(
            argv, reason=f"{why} ({config.acme_server})", display=masked(argv, config.email),
            creates=(fullchain(domain), privkey(domain)), timeout=CERTBOT_TIMEOUT, secrets=(config.email,)))

    title = f"TLS certificate for {domain} (Let's Encrypt)"
    if why is None:
        title += ": reusing the existing certificate"
    if run_notes:
        title += " - note: " + "; ".join(run_notes)

    live = (fullchain(domain), privkey(domain))
    # --server again: without it a dry run goes to Let's Encrypt's staging server, not the directory
    # the certificate came from (seen against Pebble: it tried acme-staging-v02.api.letsencrypt.org)
    renewal_check = Command(
        ("certbot", "renew", "--dry-run", "--no-random-sleep-on-renew", "--non-interactive", "--cert-name", domain,
         "--server", config.acme_server),
        reason="checks that the certificate can renew (a failure only warns)",
        secrets=(config.email,),
        when_changed=live + (paths.DEPLOY_HOOK,) + _challenge_paths(),
        may_fail=True, timeout=CERTBOT_TIMEOUT)
    return [
        Step("Installing certbot", tuple(install_certbot(facts))),
        Step(title, tuple(certonly) + (
            Directory(paths.VECTOR_CERT_DIR, 0o755, reason="certificates Vector reads"),
            Copy(paths.SERVER_CERT, fullchain(domain), CERT_MODE, "root", VECTOR_GROUP,
                 reason="the certificate chain, for Vector"),
            Copy(paths.SERVER_KEY, privkey(domain), KEY_MODE, "root", VECTOR_GROUP, sensitive=True,
                 reason="the private key, readable by the vector group"),
            File(paths.DEPLOY_HOOK, hook_text(domain), 0o755,
                 reason="after each renewal: copy the files for Vector, restart Vector, reload nginx"),
            renewal_check,
        )),
    ]
