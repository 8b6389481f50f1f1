"""``actvt status``: what is installed, whether it runs, when its certificates expire, and what a
re-run would change (the install's own plan, checked and not applied).

Read-only: nothing is written, no lock is taken, no prompt is asked, nothing is fetched.

The reading of an install (``read_install``), of its certificates (``certificates``) and the
verdict on their lifetimes (``lifetime_findings``: a warning 30 days before a client certificate or
the CA expires) are ``actvt doctor``'s too.
"""

import dataclasses
import datetime
import subprocess
from typing import Callable, Dict, List, Mapping, Optional

from installer import __version__
from installer.commands import run
from installer.concerns import migration, mtls, pki
from installer.core import config as configuration
from installer.core import facts as host_facts
from installer.core import paths, records
from installer.core.concern import FAIL, PASS, WARN, Finding
from installer.core.context import Context, Decisions
from installer.core.errors import EXIT_OK, NOT_INSTALLED
from installer.core.paths import Root
from installer.engine import engine
from installer.plans.registry import build_plan, connection_url, decide, probes, reads

#: What status reads besides the concerns' reads: the certificate Vector serves, the CRL.
READS = (paths.SERVER_CERT, paths.MTLS_CRL)
WARN_DAYS = mtls.EXPIRING_DAYS  # a client certificate or the CA: warned of 30 days before its end


@dataclasses.dataclass(frozen=True)
class Install:
    """An install as the host shows it: its record, the configuration a re-run would use (variables,
    else what install.state recorded), the facts, the mode decision."""

    state: Mapping[str, str]
    config: object
    facts: host_facts.Facts
    decisions: Decisions

    @property
    def trust_only(self) -> bool:
        """The server trusts a CA kept elsewhere (ACTVT_MTLS_CA_FILE): no CA key, no clients here."""
        return bool(self.state.get("mtls_ca_file"))


def read_install(root: Root, environ, extra_reads: Callable = lambda config: (), extra_probes=(),
                 resolve: bool = False) -> Optional[Install]:
    """The install under ``root``, or None when there is none. Doctor adds what its checks read
    (``extra_reads(config)``) and run, and looks the domain up (``resolve``)."""
    environ = migration.with_state_defaults(root, environ, _Quiet())
    files = host_facts.gather(root, environ, reads=(paths.STATE_FILE,)).files
    state = records.read_state(files.get(paths.STATE_FILE))
    if not state:
        return None
    cfg = configuration.parse(environ, require_install_fields=False)
    facts = host_facts.gather(root, environ, reads=reads(cfg) + READS + tuple(extra_reads(cfg)),
                              probes=probes() + tuple(extra_probes), domain=cfg.domain if resolve else None)
    decisions = decide(cfg, facts)
    return Install(state, cfg, facts, dataclasses.replace(decisions, mode=state.get("mode") or decisions.mode))


# --- certificates -----------------------------------------------------------------------------------


def _expiry(data: Optional[bytes], now: datetime.datetime) -> Optional[dict]:
    if not data:
        return None
    try:
        cert = pki.load_cert(data)
    except Exception:  # noqa: BLE001 - an unreadable file is reported, not fatal here
        return {"error": "not a readable certificate"}
    not_after = cert.not_valid_after_utc
    return {"subject": cert.subject.rfc4514_string(), "not_after": not_after.isoformat(),
            "days_left": (not_after - now).days,
            "lifetime_days": (not_after - cert.not_valid_before_utc).days}


def _crl(data: Optional[bytes], now: datetime.datetime) -> Optional[dict]:
    if not data:
        return None
    from cryptography import x509

    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        return {"error": "not a readable CRL"}
    next_update = crl.next_update_utc
    return {"revoked": len(list(crl)), "next_update": next_update.isoformat() if next_update else None,
            "days_left": (next_update - now).days if next_update else None}


def _clients(files: Mapping[str, bytes], now: datetime.datetime) -> List[dict]:
    """The index as ``actvt client list`` sees it (clients made by hand or by the old guide included),
    without the replaced certificates; ``live``: active and of the current CA."""
    index = mtls.load_index(files)
    ca_id = None
    if paths.CA_KEY in files:
        try:
            ca = mtls.load_ca(files, now)
        except mtls.MTLSError:
            ca = None
        if ca is not None:
            mtls.sync_index(index, files, ca)  # in memory only
            ca_id = ca.id
    rows = []
    for item in index.get("certificates", []):
        if item.get("status") == mtls.REPLACED:
            continue
        not_after = mtls.parse_time(item["not_after"])
        rows.append({"name": item["name"], "serial": item.get("serial"), "not_after": item.get("not_after"),
                     "days_left": (not_after - now).days, "status": mtls.display_status(item, now),
                     "live": item["status"] == mtls.ACTIVE and item["ca"] == ca_id,
                     "expired": not_after <= now,
                     "expiring": not_after - now <= datetime.timedelta(days=WARN_DAYS)})
    return rows


def certificates(facts: host_facts.Facts, now: datetime.datetime) -> dict:
    return {
        "server": _expiry(facts.files.get(paths.SERVER_CERT), now),
        "ca": _expiry(facts.files.get(paths.CA_CERT), now),
        "crl": _crl(facts.files.get(paths.MTLS_CRL), now),
        "clients": _clients(facts.files, now) if paths.CA_CERT in facts.files else [],
    }


def lifetime_findings(certs: dict, install: Install) -> List[Finding]:
    """The certificates' ends: the server certificate (certbot renews it a third of its lifetime before
    the end, so a quarter left means renewals have failed for a while), the CA and the CRL, and each
    live client certificate; a warning 30 days before the end, a failure once it is over."""
    found: List[Finding] = []
    domain = install.config.domain
    server = certs["server"]
    if server is None:
        found.append(Finding("certificate.server", FAIL, f"Server certificate: {paths.SERVER_CERT} is missing",
                             "sudo actvt install"))
    elif "error" in server:
        found.append(Finding("certificate.server", FAIL, f"Server certificate: {paths.SERVER_CERT} is "
                             f"{server['error']}", "sudo actvt install"))
    else:
        line = f"Server certificate: expires {server['not_after']} ({server['days_left']} days)"
        renew = f"sudo certbot renew --cert-name {domain}"
        if server["days_left"] < 0:
            found.append(Finding("certificate.server", FAIL, line.replace("expires", "expired"), renew))
        elif server["days_left"] * 4 < server["lifetime_days"]:
            found.append(Finding("certificate.server", WARN, line + ": certbot should have renewed it by now "
                                 f"(see `sudo certbot renew --dry-run --cert-name {domain}`)", renew))
        else:
            found.append(Finding("certificate.server", PASS, line))
    mtls_on = install.state.get("mtls") == "enabled"
    ca = certs["ca"]
    if mtls_on:
        rotate = ("rotate the fleet's CA where it is kept: actvt ca rotate --dir DIR (then push trust.pem and "
                  "re-run the installer here)") if install.trust_only else \
            "sudo ACTVT_REUSE_MTLS_CA=no actvt install  (a new CA: every client is re-issued, hand the bundles out again)"
        label = "mTLS CA (trusted, kept elsewhere)" if install.trust_only else "mTLS CA"
        if ca is None or "error" in ca:
            found.append(Finding("mtls.ca", FAIL, f"{label}: {paths.CA_CERT} is "
                                 + ("missing" if ca is None else ca["error"]), "sudo actvt install"))
        else:
            line = f"{label}: expires {ca['not_after']} ({ca['days_left']} days)"
            if ca["days_left"] < 0:
                found.append(Finding("mtls.ca", FAIL, line.replace("expires", "expired")
                                     + ": no client certificate of it connects", rotate))
            elif ca["days_left"] <= WARN_DAYS:
                found.append(Finding("mtls.ca", WARN, line + ": its client certificates end with it", rotate))
            else:
                found.append(Finding("mtls.ca", PASS, line))
    crl = certs["crl"]
    if mtls_on and crl is not None:
        if "error" in crl:
            found.append(Finding("mtls.crl", FAIL, f"CRL: {paths.MTLS_CRL} is {crl['error']}",
                                 "put back its newest copy from /var/lib/actvt/backups, then: sudo actvt install"))
        elif crl["days_left"] is not None:
            line = (f"CRL: {crl['revoked']} revoked or superseded, next update due {crl['next_update']} "
                    f"({crl['days_left']} days)")
            # the CRL is signed to last as long as the CA: renewing the CA renews it
            fix = ("push a current crl.pem from the CA folder (ACTVT_MTLS_CRL_FILE) and re-run the installer"
                   if install.trust_only else rotate)
            if crl["days_left"] < 0:
                found.append(Finding("mtls.crl", FAIL, line + ": nginx refuses every client once it is out of date",
                                     fix))
            elif crl["days_left"] <= WARN_DAYS:
                found.append(Finding("mtls.crl", WARN, line, fix))
            else:
                found.append(Finding("mtls.crl", PASS, line))
    live = [row for row in certs["clients"] if row["live"]]
    for row in live:
        if row["expired"]:
            found.append(Finding("mtls.client", FAIL, f"client {row['name']}: expired on {row['not_after']}, its "
                                 "holder cannot connect", f"sudo actvt client renew {row['name']}  (or, if it is no "
                                 f"longer used: sudo actvt client revoke {row['name']})"))
        elif row["expiring"]:
            found.append(Finding("mtls.client", WARN, f"client {row['name']}: expires {row['not_after']} "
                                 f"({row['days_left']} days)", f"sudo actvt client renew {row['name']}"))
    if mtls_on and not install.trust_only and not any(item.check == "mtls.client" for item in found):
        found.append(Finding("mtls.client", PASS, f"Clients: {len(live)} valid, none expires within {WARN_DAYS} days"))
    return found


# --- status ----------------------------------------------------------------------------------------


def _service(root: Root) -> Dict[str, Optional[str]]:
    if not root.is_host:
        return {"active": None, "enabled": None, "main_pid": None}
    values = {}
    for key, argv in (("active", ["systemctl", "is-active", "vector"]),
                      ("enabled", ["systemctl", "is-enabled", "vector"]),
                      ("main_pid", ["systemctl", "show", "-p", "MainPID", "--value", "vector"])):
        try:
            values[key] = subprocess.run(argv, capture_output=True, text=True, timeout=15).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            values[key] = None
    return values


def rerun_changes(cfg, root: Root, facts) -> List[dict]:
    """The actions a re-run with this configuration would carry out (a dry run, no prompts)."""
    plan = build_plan(placeholder_email(cfg), facts, context())
    items = engine.Engine(root, engine.Runner()).check(plan)
    return [{"step": item.step, "action": item.action.describe(), "why": item.why}
            for item in items if item.status == engine.CHANGE]


def placeholder_email(cfg):
    """Only a new certificate needs the e-mail, and status and doctor never make one."""
    return dataclasses.replace(cfg, email="unset@invalid.example") if cfg.email is None else cfg


def context() -> Context:
    return Context(version=__version__, now=datetime.datetime.now(datetime.timezone.utc).isoformat())


def report(root: Root, environ, out) -> dict:
    install = read_install(root, environ)
    if install is None:
        return {"installed": False}
    cfg, facts, state = install.config, install.facts, install.state
    now = datetime.datetime.now(datetime.timezone.utc)
    certs = certificates(facts, now)
    result = {
        "installed": True,
        "version": state.get("version"),
        "installed_at": state.get("installed_at"),
        "domain": cfg.domain,
        "mode": state.get("mode"),
        "webserver": state.get("webserver"),  # proxy mode: the front (nginx, apache)
        "mtls": state.get("mtls") == "enabled",
        "url": connection_url(cfg, install.decisions),
        "service": _service(root),
        "certificates": certs,
        "warnings": [item._asdict() for item in lifetime_findings(certs, install) if item.level in (WARN, FAIL)],
    }
    try:
        result["rerun"] = {"changes": rerun_changes(cfg, root, facts)}
    except Exception as exc:  # noqa: BLE001 - status still reports the rest
        result["rerun"] = {"error": f"cannot tell: {exc}"}
    return result


class _Quiet:
    """Swallows the 'taken from install.state' lines: status shows the values themselves."""

    def ok(self, text: str) -> None:
        pass


def show_finding(item, out) -> None:
    """A finding as status and doctor print it: ✓ ⚠ ✗ (or - for what was not checked), the fix below."""
    {PASS: out.ok, WARN: out.warn, FAIL: out.fail}.get(item["level"], lambda text: out.plain(f"  - {text}"))(
        item["text"])
    if item.get("fix"):
        out.plain(f"      fix: {item['fix']}")


def show(result: dict, out) -> None:
    if not result["installed"]:
        out.plain("actvt is not installed on this server (no /var/lib/actvt/install.state).")
        return
    service = result["service"]
    out.plain(f"actvt-installer {result['version']} (installed {result['installed_at']})")
    out.plain(f"  Domain:         {result['domain']}")
    behind = f" behind {result['webserver']}" if result["mode"] == "proxy" and result.get("webserver") else ""
    out.plain(f"  Mode:           {result['mode']}{behind}, mTLS {'on' if result['mtls'] else 'off'}")
    out.plain(f"  Connection URL: {result['url']}")
    if service["active"] is None:
        out.plain("  Vector:         not checked (--root)")
    else:
        line = f"{service['active']}, {service['enabled']}" + (f", PID {service['main_pid']}"
                                                               if service["main_pid"] not in (None, "0") else "")
        (out.ok if service["active"] == "active" else out.warn)(f"Vector: {line}")
    certs = result["certificates"]
    warned = {item["check"] for item in result["warnings"]}  # these are shown with their fix below
    for name, check, label in (("server", "certificate.server", "Server certificate"), ("ca", "mtls.ca", "mTLS CA")):
        item = certs[name]
        if item and "error" not in item and check not in warned:
            out.ok(f"{label}: expires {item['not_after']} ({item['days_left']} days)")
        elif item and "error" in item and check not in warned:
            out.warn(f"{label}: {item['error']}")
    crl = certs["crl"]
    if crl and "error" not in crl and crl["days_left"] is not None and "mtls.crl" not in warned:
        out.ok(f"CRL: {crl['revoked']} revoked or superseded, next update due {crl['next_update']} ({crl['days_left']} days)")
    for client in certs["clients"]:
        out.plain(f"  client {client['name']}: {client['status']} (until {client['not_after']})")
    for item in result["warnings"]:
        show_finding(item, out)
    rerun = result["rerun"]
    if "error" in rerun:
        out.warn(f"re-run: {rerun['error']}")
    elif rerun["changes"]:
        out.warn(f"a re-run would change {len(rerun['changes'])} thing(s):")
        for change in rerun["changes"]:
            out.plain(f"    {change['action']} ({change['why']})")
    else:
        out.ok("a re-run would change nothing")


def cmd_status(args, environ, out, stdout) -> int:
    root = run.root_of(args)
    result = report(root, environ, out)
    if args.json:
        run.write_json(stdout, result)
    else:
        show(result, out)
    return EXIT_OK if result["installed"] else NOT_INSTALLED
