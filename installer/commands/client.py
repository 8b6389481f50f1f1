"""``actvt client``: issue, list, show and revoke mTLS client certificates.

    actvt client issue NAME [--days N] [--force] [--yes]
    actvt client renew NAME | --all-expiring DAYS [--days N]
    actvt client list [--json]
    actvt client show NAME [--json]
    actvt client revoke NAME [--yes]   (standalone: replaces the CA, re-issues the others)

Each change is a small plan of File/Absent actions built with ``mtls`` and applied by the same engine
as the install run (``commands.run.execute``: atomic writes, backups, rollback), under the run lock.
``generate-client.sh`` calls ``actvt client issue``, whose output is the user guide's (the lines
``generate-client.sh`` always printed); ``renew`` issues through the same code (``_issuing``,
``_issued``), as ``issue --force`` replaces. A name that is not allowed, like any bad
input, is refused with one line and exit status 2 before anything is read or written.
"""

import argparse
import contextlib
import datetime
import json
import os
import sys
from typing import List, Optional, Tuple

from installer.commands import run as sequence
from installer.concerns import mtls, pki
from installer.core import config as configuration
from installer.core import paths, records
from installer.core.actions import Absent, Plan, Service, Step
from installer.core.errors import ActvtError, UsageError
from installer.core.facts import read_file
from installer.engine import engine, lock
from installer.plans import registry
from installer.ui.prompt import confirm

NAME_ALLOWED = configuration.BY_NAME["ACTVT_MTLS_CLIENT_CN"].allowed


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own usage block is noise here)
        raise UsageError(f"actvt client: {message}")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="actvt client", description="Manage mTLS client certificates.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True

    def common(sub):
        sub.add_argument("--root", metavar="DIR", default=None, help="act on the server tree under DIR")
        sub.add_argument("--ca-dir", metavar="DIR", default=None,
                         help="act on a CA kept off the servers (made by `actvt ca init --dir DIR`)")
        sub.add_argument("--yes", "-y", action="store_true", default=None, help="never prompt")
        sub.add_argument("--json", action="store_true", default=None, help="machine-readable output on stdout")
        sub.add_argument("--dry-run", action="store_true", default=None, help="show what would change; change nothing")

    issue = actions.add_parser("issue", help="issue (or, with confirmation, replace) a client certificate")
    issue.add_argument("name")
    issue.add_argument("--days", help="validity in days (default: ACTVT_MTLS_CLIENT_DAYS, else 365)")
    issue.add_argument("--force", action="store_true", help="replace an existing certificate without asking")
    common(issue)
    renew = actions.add_parser("renew", help="a new certificate for a client, same name and key type; the old one "
                                             "is recorded as replaced (and listed in the CRL as superseded)")
    renew.add_argument("name", nargs="?", help="the client to renew")
    renew.add_argument("--all-expiring", metavar="DAYS",
                       help="renew every live client certificate that expires within DAYS days")
    renew.add_argument("--days", help="validity in days (default: ACTVT_MTLS_CLIENT_DAYS, else 365)")
    common(renew)
    listing = actions.add_parser("list", help="list issued certificates and their status")
    common(listing)
    show = actions.add_parser("show", help="show one client's certificate")
    show.add_argument("name")
    common(show)
    revoke = actions.add_parser("revoke", help="revoke a client: key, certificate and bundle removed; behind nginx "
                                               "a CRL entry, standalone (Vector reads no CRL) a new CA and the "
                                               "other clients re-issued")
    revoke.add_argument("name")
    common(revoke)
    return parser


def client_name(raw: str) -> str:
    try:
        return configuration.parse_client_name(raw)
    except configuration.Invalid as exc:
        raise UsageError(f"client name: {exc}; allowed: {NAME_ALLOWED}") from None


class _Run:
    """What every action needs: options merged with the ones given before ``client``."""

    def __init__(self, args, ns, environ, out, stdout):
        self.ns = ns
        self.environ = environ
        self.out = out
        self.stdout = stdout
        self.folder = ns.ca_dir is not None
        if self.folder:
            if ns.root is not None:
                raise UsageError("--ca-dir: not together with --root; allowed: one of them")
            self.root = ca_folder(ns.ca_dir)
        else:
            self.root = sequence.root_of(ns if ns.root is not None else args)
        self.yes = bool(ns.yes or getattr(args, "yes", False))
        self.json = bool(ns.json or getattr(args, "json", False))
        self.dry_run = bool(ns.dry_run or getattr(args, "dry_run", False))
        self._records: Optional[Tuple[dict, Optional[str]]] = None
        if self.json and out.stream is stdout:
            out.stream = sys.stderr  # stdout carries only the JSON

    def need_root(self) -> None:
        sequence.need_root(self.root, self.dry_run, "must run as root: use `sudo actvt client …`")

    def shown(self, path: str) -> str:
        """A path as the user finds it: the server path, or where it is in the CA folder."""
        return self.root.host(path) if self.folder else path

    def lock(self):
        return contextlib.nullcontext() if self.dry_run else lock.hold(self.root)

    def load(self, now):
        """(files, the CA, the index, the previous CA during a rollover of a CA folder): every record
        the command needs, checked before its first write."""
        external = self.state().get("mtls_ca_file")
        if external:
            raise ActvtError(f"this server trusts a CA kept elsewhere ({external}, ACTVT_MTLS_CA_FILE): issue, "
                             "renew and revoke clients where that CA is, with `actvt client issue NAME --ca-dir DIR`; its "
                             "bundles connect here")
        files = mtls.read_files(self.root)
        ca = mtls.load_ca(files, now)
        if ca is None:
            raise ActvtError(f"no mTLS CA in {self.shown(paths.MTLS_DIR)}: "
                             + ("make one with `actvt ca init --dir DIR`" if self.folder else
                                "run the installer with ACTVT_ENABLE_MTLS=yes first"))
        previous = mtls.previous_ca(files, ca) if self.folder else None
        index = mtls.load_index(files)
        mtls.sync_index(index, files, ca, also=(previous,) if previous else ())
        return files, ca, index, previous

    def material(self, index, ca, previous, files, now) -> tuple:
        """What a change rewrites besides the clients: the CA and index and CRL (and, in a CA folder,
        the trust file; on a proxy-mode server, the front's check and reload)."""
        if self.folder:
            return mtls.folder_files(index, ca, previous, files, now)
        crl = mtls.crl_file(index, ca, files, now)  # first: it counts index["crl_number"] up
        return mtls.ca_files(ca) + (mtls.index_file(index), crl) + front_reload(self.state())

    def apply(self, title: str, actions) -> List[engine.Checked]:
        outcome = sequence.execute(engine.Engine(self.root, engine.Runner()), Plan((Step(title, tuple(actions)),)),
                              self.out, self.dry_run, compact=True)
        if self.dry_run:
            self.out.plain("Dry run: nothing was changed.")
        return outcome.items

    def records(self) -> Tuple[dict, Optional[str]]:
        """install.state and the domain (a CA folder has neither: it is no server), read and checked
        once, by ``load`` before anything is written: a damaged one stops the command with nothing
        changed, never after its files are written."""
        if self._records is None:
            self._records = ({}, None) if self.folder else (
                records.read_state(read_file(self.root, paths.STATE_FILE)),
                records.read_domain(read_file(self.root, paths.DOMAIN_FILE)))
        return self._records

    def domain(self) -> str:
        return self.records()[1] or "YOUR-SERVER"

    def state(self) -> dict:
        return self.records()[0]

    def download_hint(self, name: str) -> List[str]:
        if self.folder:
            return ["Hand out the bundle (it connects to every server that trusts this CA):",
                    f"  {self.root.host(paths.client_bundle(name))}"]
        return ["Download the bundle from your Mac:",
                f"  {mtls.download_command(self.domain(), name, self.environ.get('SUDO_USER'))}"]


def ca_folder(path: str):
    from installer.core.paths import CaFolder

    if not os.path.isdir(path):
        raise UsageError(f"--ca-dir: {path} is not a directory; allowed: a CA folder made by `actvt ca init --dir DIR`")
    return CaFolder(path)


def front_reload(state: dict) -> tuple:
    """In proxy mode the front reads ca.crt and crl.pem: when this command changes one of them, the
    front's check and reload follow (listed, not run, under --root)."""
    if not crl_enforced(state):
        return ()
    return registry.front_named(state.get("webserver", "")).check_and_reload((paths.CA_CERT, paths.MTLS_CRL), "the updated mTLS files")


def cert_details(cert) -> List[str]:
    """The lines ``openssl x509 -noout -subject -issuer -dates -serial`` would print, and more."""
    return [
        f"subject={pki.openssl_name(cert.subject)}",
        f"issuer={pki.openssl_name(cert.issuer)}",
        f"notBefore={pki.openssl_date(cert.not_valid_before_utc)}",
        f"notAfter={pki.openssl_date(cert.not_valid_after_utc)}",
        f"serial={pki.serial_hex(cert)}",
        f"key={pki.describe_key(cert)}",
        f"sha256 Fingerprint={pki.fingerprint(cert)}",
    ]


# --- issue ----------------------------------------------------------------------------------------


DAYS = configuration.BY_NAME["ACTVT_MTLS_CLIENT_DAYS"]


def _days(option: str, raw, default: int) -> int:
    """``--days`` (or ``--all-expiring``): a number of days as ACTVT_MTLS_CLIENT_DAYS allows, else exit 2."""
    if raw is None:
        return default
    try:
        return DAYS.parse(raw)
    except configuration.Invalid as exc:
        raise UsageError(f"{option}: {exc}; allowed: {DAYS.allowed}") from None


def _issuing(run: _Run, index: dict, name: str, ca, days: int, key_type: str, now, replaces: bool,
             first: bool = True):
    """The issuance of ``client issue`` and ``client renew``: the user guide's progress lines, a new key,
    the certificate signed by the CA and recorded in the index (an earlier active one of the name
    becomes ``replaced``). Returns (certificate, its files). ``first``: the first of this run (the CA's
    adoption is said once)."""
    out = run.out
    out.plain(f"Generating client certificate: {name}")
    out.plain(f"Certificate validity: {days} days")
    if first and ca.state == "adopted":
        out.plain(f"→ Re-signing the CA certificate with its own key ({ca.note})...")
    out.plain("→ Generating client private key (PKCS#8)...")
    key = pki.new_key(key_type)
    out.plain("→ Creating certificate signing request...")
    out.plain("→ Signing certificate with CA...")
    owner = run.environ.get("SUDO_USER") or "root"
    cert, client = mtls.issue(index, name, ca, days, key_type, now, {}, owner,
                              f"client {name}" + (" (replaces the previous one)" if replaces else ""), key=key)
    out.plain("→ Creating distribution bundle...")
    return cert, client


def _issued(run: _Run, name: str, cert, previous: List[dict]) -> None:
    """What ``client issue`` and ``client renew`` say once it is done: the files, the certificate, and
    what becomes of the certificate it replaced, which depends on who checks the CRL."""
    out = run.out
    out.plain("✓ Client certificate generated successfully")
    out.plain(f"✓ Certificate: {run.shown(paths.client_cert(name))}")
    out.plain(f"✓ Private key: {run.shown(paths.client_key(name))}")
    out.plain(f"✓ Bundle: {run.shown(paths.client_bundle(name))}")
    for line in cert_details(cert):
        out.plain(f"  {line}")
    if previous:
        if crl_enforced(run.state()):
            out.plain(f"✓ The previous certificate of {name} is in {paths.MTLS_CRL} (superseded): "
                      f"{registry.front_named(run.state().get('webserver', '')).name} refuses it")
        elif run.folder:
            out.plain(f"✓ The previous certificate of {name} is in {run.shown(paths.MTLS_CRL)} (superseded): servers "
                      "behind nginx refuse it once they have this CRL; standalone servers until a CA rotation")
        else:
            out.plain(f"⚠ {mtls._superseded_note(name, previous[-1]['not_after'])}")


def cmd_issue(run: _Run, ns) -> int:
    name = client_name(ns.name)
    cfg = configuration.parse(run.environ, require_install_fields=False)
    days = _days("--days", ns.days, cfg.mtls_client_days)
    run.need_root()
    out = run.out
    with run.lock():
        now = pki.now_utc()
        files, ca, index, former = run.load(now)
        previous = mtls.active(index, name, ca)
        exists = any(path in files for path in (paths.client_cert(name), paths.client_key(name), paths.client_bundle(name))) \
            or bool(previous)
        if exists and not ns.force:
            answer = None if run.yes else confirm(f"Certificate for {name} already exists. Overwrite?", out)
            if answer is None:
                raise ActvtError(f"client {name} already has a certificate; not replaced without confirmation "
                                 "(no terminal to ask on): pass --force to replace it")
            if not answer:
                out.plain("Aborted: nothing was changed.")
                return 1
        cert, client = _issuing(run, index, name, ca, days, cfg.mtls_key_type, now, exists)
        new = index["certificates"][-1]
        run.apply(f"Issuing client certificate {name}", client + run.material(index, ca, former, files, now))
    if run.dry_run:
        return 0
    _issued(run, name, cert, previous)
    for line in run.download_hint(name):
        out.plain(line)
    if run.json:
        run.stdout.write(json.dumps(new, indent=2) + "\n")
    return 0


# --- renew ----------------------------------------------------------------------------------------


def _live(index: dict, name: str, ca, former) -> List[dict]:
    """The active certificates of ``name``: the CA's, else, in a rollover of a CA folder, the previous
    CA's (one the rotation did not re-issue: renewing moves it to the new CA before `actvt ca finish`)."""
    return mtls.active(index, name, ca) or (mtls.active(index, name, former) if former is not None else [])


def cmd_renew(run: _Run, ns) -> int:
    """A new certificate for NAME (or for every live client that expires within DAYS), with its key type
    and the validity ``issue`` gives; the old one becomes ``replaced``, as after ``issue --force``. An
    expired certificate is renewed only by name: ``--all-expiring`` does not bring back a client whose
    certificate was left to lapse."""
    if (ns.name is None) == (ns.all_expiring is None):
        raise UsageError("actvt client renew: give NAME or --all-expiring DAYS; allowed: exactly one of them")
    name = client_name(ns.name) if ns.name is not None else None
    within = _days("--all-expiring", ns.all_expiring, 0) if name is None else None
    cfg = configuration.parse(run.environ, require_install_fields=False)
    days = _days("--days", ns.days, cfg.mtls_client_days)
    run.need_root()
    out = run.out
    with run.lock():
        now = pki.now_utc()
        files, ca, index, former = run.load(now)
        if name is not None:
            if not _live(index, name, ca, former):
                if mtls.revoked_name(index, name):
                    raise ActvtError(f"{name} was revoked: renewing does not bring it back; issue a new certificate "
                                     f"with `actvt client issue {name}`")
                raise ActvtError(f"no valid certificate named {name} to renew (see `actvt client list`)")
            names = [name]
        else:
            horizon = now + datetime.timedelta(days=within)
            names = sorted({item["name"] for item in mtls.active_entries(index, ca, now)
                            if mtls.parse_time(item["not_after"]) <= horizon})
            lapsed_names = {item["name"] for item in index["certificates"] if item["ca"] == ca.id
                            and item["status"] == mtls.ACTIVE and mtls.parse_time(item["not_after"]) <= now}
            for lapsed in sorted(lapsed_names - set(names)):
                out.warn(f"{lapsed}: its certificate has expired; --all-expiring renews only live ones: renew it by "
                         f"name (`actvt client renew {lapsed}`) or revoke it (`actvt client revoke {lapsed}`)")
            if not names:
                out.plain(f"No live client certificate expires within {within} days: nothing to renew.")
                if run.json:
                    run.stdout.write(json.dumps({"renewed": [], "replaced": []}, indent=2) + "\n")
                return 0
        made = []
        actions: List = []
        for number, target in enumerate(names):
            previous = _live(index, target, ca, former)  # recorded as replaced by the issuance
            cert, client = _issuing(run, index, target, ca, days, mtls.key_type(files, previous[-1]), now, True,
                                    first=number == 0)
            actions.extend(client)
            made.append((target, cert, previous, index["certificates"][-1]))
        title = f"Renewing client certificate {names[0]}" if len(names) == 1 else \
            f"Renewing {len(names)} client certificates"
        run.apply(title, tuple(actions) + run.material(index, ca, former, files, now))
    if run.dry_run:
        return 0
    for target, cert, previous, _ in made:
        _issued(run, target, cert, previous)
    if len(made) == 1:
        for line in run.download_hint(made[0][0]):
            out.plain(line)
    else:
        out.plain("Hand these bundles out (they replace the earlier ones):")
        for target, *_ in made:
            out.plain(f"  {target}: " + (run.shown(paths.client_bundle(target)) if run.folder else
                                         mtls.download_command(run.domain(), target, run.environ.get('SUDO_USER'))))
    if run.json:
        run.stdout.write(json.dumps({"renewed": [new for *_, new in made],
                                     "replaced": [item for _, _, previous, _ in made for item in previous]},
                                    indent=2) + "\n")
    return 0


# --- revoke ---------------------------------------------------------------------------------------


def crl_enforced(state: dict) -> bool:
    """nginx in front (proxy mode) checks the CRL; Vector alone (standalone) cannot. Proxy mode is
    always nginx (another web server is refused), also when the installer installed nginx itself and
    install.state says ``webserver=none`` (what listened before)."""
    return state.get("mode") == "proxy"


def cmd_revoke(run: _Run, ns) -> int:
    """Revoke NAME. Behind nginx (proxy mode) the CRL denies it, after ``nginx -t`` and a reload.
    Standalone, Vector reads no CRL: the CA is replaced and the other clients re-issued under the new
    one (after confirmation or --yes), Vector restarted, and the bundles to hand out again listed."""
    name = client_name(ns.name)
    run.need_root()
    out = run.out
    state = run.state()
    rotate = not crl_enforced(state) and not run.folder  # a CA folder publishes CRLs; its rotation is `actvt ca`
    cfg = configuration.parse(run.environ, require_install_fields=False) if rotate else None
    with run.lock():
        now = pki.now_utc()
        files, ca, index, former = run.load(now)
        signers = {ca.id} | ({former.id} if former else set())
        targets = [item for item in index["certificates"]
                   if item["name"] == name and item["ca"] in signers and item["status"] != mtls.REVOKED]
        if not targets:
            raise ActvtError(f"no valid certificate named {name} to revoke (see `actvt client list`)")
        others = [other for other in mtls.existing_clients(files) if other != name] if rotate else []
        if not run.yes:
            serials = ", ".join(item["serial"] for item in targets)
            question = f"Revoke {name} (serial {serials})?"
            if rotate:
                question = (f"Vector cannot check revocation, so revoking {name} replaces the mTLS CA: every "
                            "bundle handed out so far stops working" + (
                                f", and {', '.join(others)} get new certificates to hand out again" if others else "")
                            + f". {question}")
            answer = confirm(question, out)
            if answer is None:
                raise ActvtError(f"not revoking {name} without confirmation (no terminal to ask on): pass --yes")
            if not answer:
                out.plain("Aborted: nothing was changed.")
                return 1
        revoked = mtls.record_revocation(index, name, ca, now, also=(former,) if former else ())
        reissued: List[str] = []
        rotation = ()
        if rotate:
            owner = run.environ.get("SUDO_USER") or "root"
            ca, rotation, reissued = mtls.rotate_ca(files, index, name, cfg.mtls_ca_days, now, owner)
        restart = ()
        if rotate and state.get("mtls") == "enabled":
            restart = (Service("vector", restart_when_changed=(paths.CA_CERT,), wait_seconds=30,
                               reason="Vector loads the CA only when it starts"),)
        run.apply(f"Revoking client certificate {name}" + (" (new CA)" if rotate else ""), rotation + (
            Absent(paths.client_key(name), reason="revoked"),
            Absent(paths.client_cert(name), reason="revoked"),
            Absent(paths.client_bundle(name), reason="revoked"),
        ) + run.material(index, ca, former, files, now) + restart)
    if run.dry_run:
        return 0
    for item in revoked:
        out.plain(f"✓ Revoked {name}: serial {item['serial']} (revoked at {item['revoked_at']})")
    out.plain("✓ Removed its key, certificate and bundle")
    if run.folder:
        crl = run.shown(paths.MTLS_CRL)
        out.plain(f"✓ {crl} lists it. Behind nginx: copy {crl} to the servers (ACTVT_MTLS_CRL_FILE) and re-run the "
                  "installer there (e.g. the Ansible playbook)")
        out.plain("  Standalone servers cannot read a CRL: rotate the CA (`actvt ca rotate --dir DIR`), hand out the "
                  "re-issued bundles, push trust.pem, then `actvt ca finish` and push trust.pem again")
    elif not rotate:
        out.plain(f"✓ {paths.MTLS_CRL} lists "
                  f"{sum(1 for item in index['certificates'] if item['status'] == mtls.REVOKED and item['ca'] == ca.id)}"
                  f" revoked certificate(s); {registry.front_named(state.get('webserver', '')).name} refuses them")
    else:
        out.plain(f"✓ New mTLS CA {paths.CA_CERT} (the old one is backed up in {paths.BACKUP_DIR}): certificates "
                  "of the old CA, including every bundle handed out so far, no longer connect")
        if restart and run.root.is_host:
            out.plain("✓ Vector restarted with the new CA")
        if reissued:
            out.plain("Hand these bundles out again (they replace the earlier ones):")
            for other in reissued:
                out.plain(f"  {other}: {mtls.download_command(run.domain(), other, run.environ.get('SUDO_USER'))}")
        else:
            out.plain(f"No other client: issue one with `sudo {paths.GENERATE_CLIENT} NAME`")
    if run.json:
        run.stdout.write(json.dumps({"revoked": revoked, "ca_replaced": rotate, "reissued": reissued},
                                    indent=2) + "\n")
    return 0


# --- list and show --------------------------------------------------------------------------------


def _read_only(run: _Run):
    """Files, the CA (None when missing or unusable) and the index as it would be after a sync."""
    files = mtls.read_files(run.root)
    now = pki.now_utc()
    index = mtls.load_index(files)
    try:
        ca = mtls.load_ca(files, now)
    except mtls.MTLSError as exc:
        run.out.warn(str(exc))
        ca = None
    if ca is not None:
        previous = mtls.previous_ca(files, ca) if run.folder else None
        mtls.sync_index(index, files, ca, also=(previous,) if previous else ())
    return files, ca, index, now


def _row(item: dict, now) -> dict:
    return {**item, "display_status": mtls.display_status(item, now)}


def cmd_list(run: _Run, ns) -> int:
    files, ca, index, now = _read_only(run)
    # revoked ones stay listed after the CA that signed them was replaced (standalone revocation)
    rows = [_row(item, now) for item in index["certificates"]
            if (ca is None or item["ca"] == ca.id or item["status"] == mtls.REVOKED)
            and item["status"] != mtls.REPLACED]
    rows.sort(key=lambda row: (row["name"], row["not_before"]))
    for row in rows:
        row["on_server"] = paths.client_cert(row["name"]) in files
    # the old guide said "to revoke, delete the files": that denies nobody
    deleted = sorted({row["name"] for row in rows if row["status"] == mtls.ACTIVE and not row["on_server"]})
    if run.json:
        run.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        run.out.plain("No client certificates.")
        return 0
    header = ("NAME", "SERIAL", "NOT AFTER", "STATUS")
    table = [header] + [(row["name"], row["serial"], row["not_after"], row["display_status"]) for row in rows]
    widths = [max(len(line[col]) for line in table) for col in range(3)]
    for line in table:
        run.out.plain("  ".join(cell.ljust(widths[col]) for col, cell in enumerate(line[:3])) + "  " + line[3])
    for name in deleted:
        run.out.warn(f"{name}: its files were deleted but it is not revoked, so its holder can still connect; "
                     f"run `actvt client revoke {name}`")
    return 0


def cmd_show(run: _Run, ns) -> int:
    name = client_name(ns.name)
    files, ca, index, now = _read_only(run)
    entries = [item for item in index["certificates"] if item["name"] == name]
    cert_data = files.get(paths.client_cert(name))
    if not entries and cert_data is None:
        raise ActvtError(f"no certificate named {name} (see `actvt client list`)")
    current = ([item for item in entries if item["status"] == mtls.ACTIVE] or entries or [None])[-1]
    report = {"name": name, "certificate": _row(current, now) if current else None,
              "history": [_row(item, now) for item in entries],
              "files": [path for path in (paths.client_cert(name), paths.client_key(name), paths.client_bundle(name))
                        if path in files]}
    if run.json:
        run.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    out = run.out
    out.plain(f"Client {name}")
    if current:
        out.plain(f"  status: {mtls.display_status(current, now)}"
                  + (f" (revoked at {current['revoked_at']})" if current["revoked_at"] else ""))
    if cert_data is not None:
        try:
            for line in cert_details(pki.load_cert(cert_data)):
                out.plain(f"  {line}")
        except pki.PKIError as exc:
            out.warn(f"{paths.client_cert(name)}: {exc}")
    elif current:
        out.plain(f"  serial={current['serial']}  notAfter={current['not_after']}")
    for path in report["files"]:
        out.plain(f"  file: {path}")
    if len(entries) > 1:
        out.plain("  history:")
        for item in entries:
            out.plain(f"    {item['serial']}  {item['not_before']} .. {item['not_after']}  {item['status']}")
    return 0


COMMANDS = {"issue": cmd_issue, "renew": cmd_renew, "list": cmd_list, "show": cmd_show, "revoke": cmd_revoke}


def cmd_client(args, environ, out, stdout) -> int:
    """``HANDLERS["client"]``: ``args.client_args`` holds everything after ``client``."""
    try:
        ns = make_parser().parse_args(list(getattr(args, "client_args", None) or []))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    run = _Run(args, ns, environ, out, stdout)
    return COMMANDS[ns.action](run, ns)
