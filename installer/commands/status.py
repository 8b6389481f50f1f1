"""``actvt status``: what is installed, whether it runs, when its certificates expire, and what a
re-run would change (the install's own plan, checked and not applied).

Read-only: nothing is written, no lock is taken, no prompt is asked, nothing is fetched.
"""

import dataclasses
import datetime
import subprocess
from typing import Dict, List, Optional

from installer import __version__
from installer.commands import run
from installer.concerns import migration, mtls, pki
from installer.core import config as configuration
from installer.core import facts as host_facts
from installer.core import paths, records
from installer.core.context import Context
from installer.core.errors import EXIT_OK, NOT_INSTALLED
from installer.core.paths import Root
from installer.engine import engine
from installer.plans.registry import build_plan, connection_url, decide, probes, reads


def _expiry(data: Optional[bytes], now: datetime.datetime) -> Optional[dict]:
    if not data:
        return None
    try:
        cert = pki.load_cert(data)
    except Exception:  # noqa: BLE001 - an unreadable file is reported, not fatal here
        return {"error": "not a readable certificate"}
    not_after = cert.not_valid_after_utc
    return {"subject": cert.subject.rfc4514_string(), "not_after": not_after.isoformat(),
            "days_left": (not_after - now).days}


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
    if cfg.email is None:  # only a new certificate needs it, and status never makes one
        cfg = dataclasses.replace(cfg, email="unset@invalid.example")
    ctx = Context(version=__version__, now=datetime.datetime.now(datetime.timezone.utc).isoformat())
    plan = build_plan(cfg, facts, ctx)
    items = engine.Engine(root, engine.Runner()).check(plan)
    return [{"step": item.step, "action": item.action.describe(), "why": item.why}
            for item in items if item.status == engine.CHANGE]


def report(root: Root, environ, out) -> dict:
    environ = migration.with_state_defaults(root, environ, _Quiet())
    files = host_facts.gather(root, environ, reads=(paths.STATE_FILE,)).files
    state = records.read_state(files.get(paths.STATE_FILE))
    if not state:
        return {"installed": False}
    cfg = configuration.parse(environ, require_install_fields=False)
    facts = host_facts.gather(root, environ, reads=reads(cfg) + (paths.SERVER_CERT, paths.MTLS_CRL),
                              probes=probes())
    now = datetime.datetime.now(datetime.timezone.utc)
    decisions = decide(cfg, facts)
    result = {
        "installed": True,
        "version": state.get("version"),
        "installed_at": state.get("installed_at"),
        "domain": cfg.domain,
        "mode": state.get("mode"),
        "mtls": state.get("mtls") == "enabled",
        "url": connection_url(cfg, dataclasses.replace(decisions, mode=state.get("mode") or decisions.mode)),
        "service": _service(root),
        "certificates": {
            "server": _expiry(facts.files.get(paths.SERVER_CERT), now),
            "ca": _expiry(facts.files.get(paths.CA_CERT), now),
            "crl": _crl(facts.files.get(paths.MTLS_CRL), now),
            "clients": [
                {"name": item["name"], "serial": item.get("serial"), "not_after": item.get("not_after"),
                 "status": mtls.display_status(item, now)}
                for item in mtls.load_index(facts.files).get("certificates", [])
                if item.get("status") != mtls.REPLACED
            ] if paths.CA_CERT in facts.files else [],
        },
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


def show(result: dict, out) -> None:
    if not result["installed"]:
        out.plain("actvt is not installed on this server (no /var/lib/actvt/install.state).")
        return
    service = result["service"]
    out.plain(f"actvt-installer {result['version']} (installed {result['installed_at']})")
    out.plain(f"  Domain:         {result['domain']}")
    out.plain(f"  Mode:           {result['mode']}, mTLS {'on' if result['mtls'] else 'off'}")
    out.plain(f"  Connection URL: {result['url']}")
    if service["active"] is None:
        out.plain("  Vector:         not checked (--root)")
    else:
        line = f"{service['active']}, {service['enabled']}" + (f", PID {service['main_pid']}"
                                                               if service["main_pid"] not in (None, "0") else "")
        (out.ok if service["active"] == "active" else out.warn)(f"Vector: {line}")
    certs = result["certificates"]
    for name, label in (("server", "Server certificate"), ("ca", "mTLS CA")):
        item = certs[name]
        if item and "error" not in item:
            warn = item["days_left"] < 30
            (out.warn if warn else out.ok)(f"{label}: expires {item['not_after']} ({item['days_left']} days)")
        elif item:
            out.warn(f"{label}: {item['error']}")
    crl = certs["crl"]
    if crl and "error" not in crl and crl["days_left"] is not None:
        (out.warn if crl["days_left"] < 30 else out.ok)(
            f"CRL: {crl['revoked']} revoked, next update due {crl['next_update']} ({crl['days_left']} days)")
    for client in certs["clients"]:
        out.plain(f"  client {client['name']}: {client['status']} (until {client['not_after']})")
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
