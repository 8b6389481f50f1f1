"""The Let's Encrypt certificate: certbot, the lineage, the copies Vector reads, the deploy hook.

``plan_certbot`` (``Phase.CERTIFICATE``) runs after the front's challenge server (proxy mode: the
front answers ``/.well-known/acme-challenge/`` on port 80 from ``decisions.webroot``) and before the
mTLS files, the Vector configuration and the front's site: when certbot fails, nothing that would
point at missing certificate files has been written or enabled yet, and the engine puts back the
files this run wrote.

Decisions (each a test in ``tests/test_certbot.py``):

- the domain does not resolve: stop before anything changes, unless ACTVT_CONTINUE_WITHOUT_DNS
  (or the prompt) says to go on; when the certificate is reused nothing needs DNS now, so it is a
  note only;
- ``/etc/letsencrypt/live/<domain>/`` exists: reuse it (no certbot run), or, with ACTVT_REUSE_CERT=no,
  ``certonly --force-renewal``; an expired certificate is renewed the same way;
- a new certificate: proxy mode uses ``certonly --webroot -w <the decided webroot>`` (another web server
  than the front is refused by the mode decision, before any planner runs); standalone uses
  ``certonly --standalone``, which needs port 80 free (else: stop with instructions);
- always ``--cert-name <domain>`` (the lineage keeps the domain's name), ``--agree-tos
  --non-interactive --no-eff-email --email … --server <ACME directory>``; the e-mail is masked in
  everything shown or logged; the caller's environment (REQUESTS_CA_BUNDLE, proxies) reaches certbot
  through the engine's runner.

Files for Vector (owners decided here): ``/etc/vector/certs/server.crt`` 0644 and
``/etc/vector/certs/server.key`` 0640, both **root:vector**. The bash installer made them owned by
vector; group vector is what Vector needs to read the key, and root ownership keeps the Vector process from
replacing or loosening its own TLS identity (as the mTLS CA key is root's, not vector's). The deploy
hook gives renewed copies the same modes and owners.

The deploy hook ``/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh`` acts only when
``RENEWED_LINEAGE`` is this domain's lineage (certbot runs directory hooks for every certificate it
renews), restarts Vector (a reload does not make the websocket_server sink re-read its certificate)
and reloads nginx after ``nginx -t`` when nginx runs.
"""

import datetime
import time
from typing import Callable, List, Optional, Tuple

from installer import __version__
from installer.core import packaging, paths
from installer.core import renewal as renewal_conf
from installer.core.actions import Command, Copy, Directory, File, Packages, Service, Step
from installer.core.concern import (BAKE, FAIL, PASS, SKIP, WARN, Checks, Concern, Endpoint, Finding, Phase, Planner,
                                   Undo, Uninstaller, UninstallOptions)
from installer.core import facts as host_facts
from installer.core.facts import Probe
from installer.core.context import answer
from installer.core.errors import ActvtError
from installer.core.render import render_file

VECTOR_GROUP = "vector"
CERT_MODE, KEY_MODE = 0o644, 0o640
CERTBOT_TIMEOUT = 600  # seconds; certbot itself gives up on a challenge well before this
EPEL_RHEL = "https://dl.fedoraproject.org/pub/epel/epel-release-latest-{major}.noarch.rpm"


class CertbotError(ActvtError):
    """The certificate cannot be obtained as configured; nothing was changed."""


def reads(config) -> Tuple[str, ...]:
    """The lineage folder (its README; the live files are links, which folders do not list), the
    certificate itself (read through its link, public) and the renewal configuration."""
    if config is None or not getattr(config, "domain", None):
        return ()
    return (paths.lineage(config.domain), paths.fullchain(config.domain), paths.renewal_conf(config.domain))


# --- facts as the planner needs them --------------------------------------------------------------


def lineage_exists(config, facts) -> bool:
    return paths.lineage(config.domain) in facts.dirs or paths.fullchain(config.domain) in facts.files


def certificate_expiry(facts, domain: str) -> Optional[datetime.datetime]:
    """notAfter of the lineage's certificate, or None when it is absent or unreadable."""
    data = facts.files.get(paths.fullchain(domain))
    if not data:
        return None
    from installer.concerns import pki

    try:
        return pki.load_cert(data).not_valid_after_utc
    except pki.PKIError:  # an unreadable certificate is treated like an absent one
        return None


def renewal(config, facts) -> Optional[renewal_conf.Renewal]:
    """certbot's renewal configuration of the lineage (None: there is none), or CertbotError when it
    cannot be read (certbot could not renew with it either)."""
    name = paths.renewal_conf(config.domain)
    data = facts.files.get(name)
    if data is None:
        return None
    try:
        return renewal_conf.parse(data, name)
    except renewal_conf.RenewalError as exc:
        raise CertbotError(f"{exc}. Correct it, or remove the certificate (`certbot delete --cert-name "
                           f"{config.domain}`) and re-run to obtain a new one. Nothing was changed.") from None


def parse_certbot_version(result) -> Optional[Tuple[int, ...]]:
    """``certbot 2.1.0`` (1.x prints it on stderr, which the probe reads too) -> (2, 1, 0)."""
    for word in result.output.split():
        parts = word.split(".")
        if result.returncode == 0 and len(parts) >= 2 and all(part.isdigit() for part in parts):
            return tuple(int(part) for part in parts)
    return None


#: The certbot on this host, when a lineage's renewal configuration exists (only then does a run ask).
CERTBOT_VERSION = Probe("certbot_version", ("certbot", "--version"), parse_certbot_version,
                        when=lambda facts: any(path.startswith(paths.LETSENCRYPT_RENEWAL + "/") for path in facts.files))
#: ``certbot reconfigure`` (changes how a lineage renews, keeping its certificate) came in certbot 2.3.0.
RECONFIGURE_SINCE = (2, 3)
#: Authenticators that answer on port 80 (the mode decides which); others (dns-*, manual) do not depend on it.
PORT_80_AUTHENTICATORS = ("standalone", "webroot", "nginx", "apache")


def renewal_wanted(decisions) -> Tuple[str, Optional[str]]:
    """(authenticator, webroot) this run's mode needs: the front's webroot, else certbot's own server."""
    if decisions.front is not None:
        return "webroot", decisions.webroot
    return "standalone", None


def renewal_differs(stored: renewal_conf.Renewal, domain: str, decisions) -> bool:
    if stored.authenticator not in PORT_80_AUTHENTICATORS:
        return False
    method, webroot = renewal_wanted(decisions)
    return stored.authenticator != method or (method == "webroot" and stored.webroot_for(domain) != webroot)


def renewal_switch(config, facts, decisions) -> Optional[Command]:
    """The command that makes the reused lineage renew the way this run's mode needs, or None when it
    already does. certbot >= 2.3 changes the renewal configuration (``reconfigure``, which checks the
    new method with a dry run first and keeps the certificate); older certbot (Debian 11: 1.12,
    Debian 12: 2.1) re-issues it with the new method (``certonly --force-renewal``), which rewrites the
    configuration. Either way the file is backed up first and put back if a later action fails."""
    domain = config.domain
    stored = renewal(config, facts)
    if stored is None or not renewal_differs(stored, domain, decisions):
        return None
    method, webroot = renewal_wanted(decisions)
    if method == "standalone" and facts.listening_on(80):
        return None  # certbot --standalone cannot renew while port 80 is held: notes() says so
    version = facts.fact(CERTBOT_VERSION)
    conf = paths.renewal_conf(domain)
    why = (f"the reused certificate renews with {stored.authenticator}; this {'proxy' if webroot else 'standalone'} "
           f"setup needs {method}" + (f" from {webroot}" if webroot else ""))
    # reconfigure refuses another ACME server, and --webroot-map (it names domains); a stored map entry
    # of another folder would win over -w (certbot's webroot plugin), so then the certificate is re-issued
    stale_map = webroot is not None and stored.webroot_map.get(domain, webroot) != webroot
    if version is not None and version >= RECONFIGURE_SINCE and stored.server == config.acme_server and not stale_map:
        auth = ("--webroot", "-w", webroot) if webroot else ("--standalone",)
        argv = ("certbot", "reconfigure", "--cert-name", domain, *auth, "--non-interactive",
                "--server", config.acme_server)
        return Command(argv, reason=why + " (certbot reconfigure keeps the certificate)", creates=(conf,),
                       saves=(conf,), timeout=CERTBOT_TIMEOUT, secrets=(config.email,))
    argv = certonly_argv(config, ("--webroot", "-w", webroot) if webroot else ("--standalone",), True)
    return Command(argv, reason=why + " (this certbot has no `reconfigure`: re-issuing the certificate)",
                   display=masked(argv, config.email), creates=(paths.fullchain(domain), paths.privkey(domain), conf),
                   saves=(conf,), timeout=CERTBOT_TIMEOUT, secrets=(config.email,))


# --- what to do -------------------------------------------------------------------------------------


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
    if decisions.front is not None:  # the front answers the challenge from the decided webroot
        return ("--webroot", "-w", decisions.webroot)
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
            actions.append(Command(("amazon-linux-extras", "install", "-y", "epel"), locks=packaging.RPM,
                                   reason="certbot comes from EPEL on Amazon Linux 2"))
    elif not facts.has_package("epel-release"):
        if facts.os.id == "rhel":
            major = (facts.os.version_id or "9").split(".")[0]
            actions.append(Command((manager, "install", "-y", EPEL_RHEL.format(major=major)), locks=packaging.RPM,
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
    return render_file("certbot-deploy-hook.sh", {
        "VERSION": __version__, "LINEAGE": f"{live}/{domain}", "CERT_DIR": cert_dir, "GROUP": group}).encode()


def notes(config, facts, decisions, ctx) -> List[str]:
    """Warnings for the summary (also shown in the step's title)."""
    found = []
    if facts.domain_addresses == ():
        found.append(f"{config.domain} does not resolve from this server: clients (and Let's Encrypt) "
                     "cannot reach it until its DNS record exists")
    if lineage_exists(config, facts) and answer(config, ctx, "ACTVT_REUSE_CERT"):
        try:
            stored = renewal(config, facts)
        except CertbotError:
            stored = None  # the planner refuses the run with the reason
        if stored is not None and renewal_differs(stored, config.domain, decisions) \
                and decisions.front is None and facts.listening_on(80):
            holders = sorted({item.process or "an unknown program" for item in facts.listening_on(80)})
            found.append(f"the reused certificate renews with {stored.authenticator}; standalone it would renew "
                         f"with certbot --standalone, which cannot use port 80 while {', '.join(holders)} holds it: "
                         "stop it and re-run, or use proxy mode")
    return found


# --- the planner ------------------------------------------------------------------------------------


def certificate_request(config, facts, reuse: bool, moment: datetime.datetime) -> Tuple[Optional[str], bool]:
    """What certbot must do: (why, --force-renewal), or (None, False) when the lineage is reused as it is."""
    domain = config.domain
    exists = lineage_exists(config, facts)
    expiry = certificate_expiry(facts, domain)
    if not exists:
        return f"new certificate for {domain}", False
    if not reuse:
        return "ACTVT_REUSE_CERT=no: renewing the existing certificate now", True
    if expiry is not None and expiry <= moment:
        return f"the existing certificate expired on {expiry:%Y-%m-%d}: renewing it", True
    return None, False


# --- waiting for the DNS record (ACTVT_WAIT_FOR_DNS) ----------------------------------------------

DNS_POLL = 5  # seconds between two look-ups
DNS_PROGRESS = 30  # seconds between two progress lines


def dns_wait_needed(config, facts, moment: datetime.datetime) -> bool:
    """The domain has no public address yet and a certificate is to be requested (a reused one needs
    no DNS now): the case ``ACTVT_WAIT_FOR_DNS`` waits for."""
    if not config.wait_for_dns or facts.domain_addresses is None:
        return False
    if host_facts.public_addresses(facts.domain_addresses):
        return False
    return certificate_request(config, facts, config.reuse_cert, moment)[0] is not None


def wait_for_dns(domain: str, bound: int, say: Callable[[str], None], resolve=host_facts.resolve,
                 clock=time.monotonic, sleep=time.sleep) -> Tuple[Tuple[str, ...], int]:
    """Look ``domain`` up every ``DNS_POLL`` seconds until it has a public address (one not on loopback: an
    /etc/hosts line of this host is not the record clients use) or ``bound`` seconds have passed, saying
    so when it starts, every ``DNS_PROGRESS`` seconds and when it ends. Returns (the last addresses found,
    the seconds waited)."""
    start = clock()
    say(f"waiting for DNS: {domain} has no public address yet; looking it up every {DNS_POLL} s, for at most "
        f"{bound} s (ACTVT_WAIT_FOR_DNS)")
    addresses: Tuple[str, ...] = ()
    shown = DNS_PROGRESS
    while True:
        left = bound - (clock() - start)
        if left <= 0:
            break
        sleep(min(DNS_POLL, left))
        addresses = tuple(resolve(domain))
        waited = clock() - start
        if host_facts.public_addresses(addresses):
            say(f"DNS: {domain} resolves to {', '.join(addresses)} after {waited:.0f} s; going on")
            return addresses, round(waited)
        if waited >= shown:
            say(f"still waiting for DNS: {domain} "
                + (f"resolves to {', '.join(addresses)} only" if addresses else "does not resolve")
                + f" ({waited:.0f} s of {bound} s)")
            shown += DNS_PROGRESS
    waited = clock() - start
    say(f"DNS: {domain} still has no public address after {waited:.0f} s; giving up the wait")
    return addresses, round(waited)


def plan_certbot(config, facts, decisions, ctx) -> List[Step]:
    domain = config.domain
    reuse = answer(config, ctx, "ACTVT_REUSE_CERT")
    why, force = certificate_request(config, facts, reuse, ctx.moment)

    certonly: List = []
    if why is not None:
        if facts.domain_addresses == () and not answer(config, ctx, "ACTVT_CONTINUE_WITHOUT_DNS"):
            if facts.dns_waited is not None:
                waited = f" after waiting {facts.dns_waited} s for it (ACTVT_WAIT_FOR_DNS={config.wait_for_dns})"
            elif config.wait_for_dns:
                waited = f" (a real run first waits up to {config.wait_for_dns} s for it: ACTVT_WAIT_FOR_DNS)"
            else:
                waited = ""
            raise CertbotError(
                f"ACTVT_DOMAIN: {domain} does not resolve (no address found from this server){waited}. Let's "
                f"Encrypt must reach this server as {domain} on port 80. Create the DNS record (A/AAAA) and re-run, "
                "or set ACTVT_CONTINUE_WITHOUT_DNS=yes to try anyway. Nothing was changed.")
        argv = certonly_argv(config, authenticator(config, facts, decisions), force)
        certonly.append(Command(
            argv, reason=f"{why} ({config.acme_server})", display=masked(argv, config.email),
            creates=(paths.fullchain(domain), paths.privkey(domain)), timeout=CERTBOT_TIMEOUT,
            secrets=(config.email,)))

    title = f"TLS certificate for {domain} (Let's Encrypt)"
    if why is None:
        title += ": reusing the existing certificate"
        switch = renewal_switch(config, facts, decisions)
        if switch is not None:
            certonly.append(switch)
            title += f"; its renewal switched to {renewal_wanted(decisions)[0]}"

    live = (paths.fullchain(domain), paths.privkey(domain))
    challenge = decisions.front.challenge_files if decisions.front is not None else ()
    # --server again: without it a dry run goes to Let's Encrypt's staging server, not the directory
    # the certificate came from (seen against Pebble: it tried acme-staging-v02.api.letsencrypt.org)
    renewal_check = Command(
        ("certbot", "renew", "--dry-run", "--no-random-sleep-on-renew", "--non-interactive", "--cert-name", domain,
         "--server", config.acme_server),
        reason="checks that the certificate can renew (a failure only warns)",
        secrets=(config.email,),
        when_changed=live + (paths.DEPLOY_HOOK, paths.renewal_conf(domain)) + challenge,
        may_fail=True, timeout=CERTBOT_TIMEOUT)
    return [
        Step("Installing certbot", tuple(install_certbot(facts)) + renewal_timer(facts)),
        Step(title, tuple(certonly) + (
            Directory(paths.VECTOR_CERT_DIR, 0o755, reason="certificates Vector reads"),
            Copy(paths.SERVER_CERT, paths.fullchain(domain), CERT_MODE, "root", VECTOR_GROUP,
                 reason="the certificate chain, for Vector"),
            Copy(paths.SERVER_KEY, paths.privkey(domain), KEY_MODE, "root", VECTOR_GROUP, sensitive=True,
                 reason="the private key, readable by the vector group"),
            File(paths.DEPLOY_HOOK, hook_text(domain), 0o755,
                 reason="after each renewal: copy the files for Vector, restart Vector, reload nginx"),
            renewal_check,
        )),
    ]


def renewal_timer(facts) -> Tuple:
    """Debian's and Ubuntu's certbot package enables its certbot.timer itself; EPEL's (and Fedora's) enables
    no certbot-renew.timer, so without this the certificate would expire after 90 days."""
    if (facts.package_manager or "apt") == "apt":
        return ()
    return (Service(EPEL_RENEWAL_TIMER, reason="certbot renews the certificate (EPEL's package enables no timer)"),)


def plan_certbot_package(config, facts, decisions, ctx) -> List[Step]:
    """Bake mode: certbot is installed now; the certificate is made on first boot."""
    return [Step("Installing certbot", tuple(install_certbot(facts)))]


# --- what `actvt doctor` checks ----------------------------------------------------------------------

#: The units that run ``certbot renew`` (Debian's and Ubuntu's package, EPEL's, the snap).
EPEL_RENEWAL_TIMER = "certbot-renew.timer"
RENEWAL_TIMERS = ("certbot.timer", EPEL_RENEWAL_TIMER, "snap.certbot.renew.timer")
#: Which of them are active (``systemctl is-active`` prints one state per unit, in order).
RENEWAL_TIMER = Probe("certbot_timer", ("systemctl", "is-active") + RENEWAL_TIMERS,
                      lambda result: tuple(unit for unit, state in zip(RENEWAL_TIMERS, result.output.split())
                                           if state == "active"))


def doctor_reads(config) -> Tuple[str, ...]:
    return (paths.DEPLOY_HOOK, paths.SERVER_CERT)


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    """The renewal timer runs, the deploy hook is the one this installer writes, and the certificate
    Vector reads is certbot's current one (the hook copied the last renewal)."""
    from installer.concerns import pki

    found = []
    active = facts.fact(RENEWAL_TIMER)
    timer = "certbot.timer" if (facts.package_manager or "apt") == "apt" else EPEL_RENEWAL_TIMER
    if active is None:
        found.append(Finding("certbot.timer", SKIP, "certbot's renewal timer: not checked (--root)"))
    elif active:
        found.append(Finding("certbot.timer", PASS, f"certbot's renewal timer {active[0]} is active"))
    else:
        found.append(Finding("certbot.timer", FAIL, f"certbot's renewal timer {timer} is not active: the certificate "
                                                    "will not be renewed", f"sudo systemctl enable --now {timer}"))
    hook = facts.files.get(paths.DEPLOY_HOOK)
    if hook is None:
        found.append(Finding("certbot.hook", FAIL, f"deploy hook {paths.DEPLOY_HOOK} is missing: after a renewal "
                                                   "Vector would go on serving the old certificate", "sudo actvt install"))
    elif hook != hook_text(config.domain):
        found.append(Finding("certbot.hook", WARN, f"deploy hook {paths.DEPLOY_HOOK} differs from what "
                                                   f"actvt-installer {__version__} writes", "sudo actvt install"))
    else:
        found.append(Finding("certbot.hook", PASS, f"deploy hook {paths.DEPLOY_HOOK} is in place"))
    live, copied = facts.files.get(paths.fullchain(config.domain)), facts.files.get(paths.SERVER_CERT)
    if live is None:
        found.append(Finding("certbot.lineage", FAIL, f"certbot has no certificate for {config.domain} "
                                                      f"({paths.fullchain(config.domain)} is missing)", "sudo actvt install"))
    elif copied is not None:
        try:
            same = pki.fingerprint(pki.load_cert(live)) == pki.fingerprint(pki.load_cert(copied))
        except pki.PKIError:
            same = False
        if same:
            found.append(Finding("certbot.lineage", PASS, f"{paths.SERVER_CERT} is certbot's current certificate"))
        else:
            found.append(Finding("certbot.lineage", FAIL, f"{paths.SERVER_CERT} is not certbot's current certificate "
                                                          "(a renewal was not copied for Vector)", "sudo actvt install"))
    return found


def endpoints(config, actions) -> List[Endpoint]:
    """The ACME directory, when certbot is to obtain or renew a certificate in this run."""
    return [Endpoint("the ACME directory (certbot)", action.argv[action.argv.index("--server") + 1],
                     "ACTVT_ACME_SERVER")
            for action in actions
            if isinstance(action, Command) and action.argv[:2] in (("certbot", "certonly"), ("certbot", "reconfigure"))
            and "--server" in action.argv]


def uninstall_steps(entries, facts, options: UninstallOptions) -> List[Step]:
    if not (options.purge and options.domain):
        return []
    return [Step("Deleting the Let's Encrypt certificate", (
        Command(("certbot", "delete", "--non-interactive", "--cert-name", options.domain), "--purge"),))]


CONCERN = Concern(
    name="certbot",
    reads=reads,
    probes=(CERTBOT_VERSION,),
    planners=(Planner(Phase.CERTIFICATE, plan_certbot), Planner(Phase.CERTIFICATE, plan_certbot_package, (BAKE,))),
    notes=notes,
    endpoints=endpoints,
    uninstall=(Uninstaller(Undo.CERTIFICATE, uninstall_steps),),
    checks=Checks(doctor_checks, doctor_reads, (RENEWAL_TIMER,)),
)
