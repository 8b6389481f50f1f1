"""``actvt ca``: a CA kept off the servers, for a fleet (any Linux machine with python3: an admin VM, a
CI runner, one server chosen as the CA holder).

    actvt ca init --dir DIR [--days N]     a new CA: DIR (0700) holds ca.crt, ca.key (0600), index.json,
                                           crl.pem and trust.pem, what every server trusts
    actvt ca rotate --dir DIR [--days N]   start a rollover: a new CA, every live client re-issued under
                                           it; trust.pem holds both CAs until the rollover is finished
    actvt ca finish --dir DIR [--force]    finish it: trust.pem holds the new CA only; refused (exit 1,
                                           nothing written) while a live client holds only a certificate
                                           of the old CA, unless --force (they are then cut off)
    actvt ca show --dir DIR [--json]       the CA(s), the CRL, the clients, what to push to servers

Clients of a CA folder: ``actvt client issue|list|show|revoke NAME --ca-dir DIR`` (the same issuance,
index, CRL and bundles as on a server). Servers trust it with ``ACTVT_MTLS_CA_FILE`` (a copy of
trust.pem) and, behind nginx, ``ACTVT_MTLS_CRL_FILE`` (a copy of crl.pem).
"""

import argparse
import contextlib
import os
import sys

from installer.commands import run as sequence
from installer.concerns import mtls, pki
from installer.core import config as configuration
from installer.core import paths
from installer.core.actions import Plan, Step
from installer.core.errors import EXIT_OK, UsageError
from installer.core.paths import CaFolder
from installer.engine import engine, lock


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(f"actvt ca: {message}")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="actvt ca", description="A CA kept off the servers, for a fleet.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    for name, text in (("init", "make a new CA in DIR"), ("rotate", "start a rollover to a new CA"),
                       ("finish", "finish the rollover: servers trust the new CA only"),
                       ("show", "the CA(s), the CRL and the clients of DIR")):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--dir", "--ca-dir", dest="dir", metavar="DIR", required=True, help="the CA folder")
        if name in ("init", "rotate"):
            sub.add_argument("--days", help="validity of the new CA in days (default: ACTVT_MTLS_CA_DAYS, else 3650)")
        if name == "finish":
            sub.add_argument("--force", action="store_true",
                             help="finish even while live clients hold only a certificate of the old CA (they are "
                                  "cut off)")
        sub.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        sub.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    return parser


def _days(ns, environ) -> int:
    var = configuration.BY_NAME["ACTVT_MTLS_CA_DAYS"]
    raw = ns.days if ns.days is not None else environ.get(var.name)
    if not raw:
        return configuration.parse({}, require_install_fields=False).mtls_ca_days
    try:
        return var.parse(raw)
    except configuration.Invalid as exc:
        raise UsageError(f"--days: {exc}; allowed: {var.allowed}") from None


def _apply(root, title, actions, out, dry_run):
    sequence.execute(engine.Engine(root, engine.Runner()), Plan((Step(title, tuple(actions)),)), out, dry_run,
                     compact=True)
    if dry_run:
        out.plain("Dry run: nothing was changed.")


def _push_lines(root, previous) -> list:
    trust, crl = root.host(paths.FLEET_TRUST), root.host(paths.MTLS_CRL)
    return [f"Servers trust {trust} ({'both CAs, until `actvt ca finish`' if previous else 'one CA'}): copy it to each "
            "server as ACTVT_MTLS_CA_FILE (and, behind nginx, "
            f"{crl} as ACTVT_MTLS_CRL_FILE), then re-run the installer there (e.g. the Ansible playbook)"]


def cmd_init(ns, environ, out, stdout) -> int:
    days = _days(ns, environ)
    folder = os.path.abspath(ns.dir)
    if os.path.lexists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise UsageError(f"--dir: {folder} exists and is not an empty folder; allowed: a new folder (or an empty one)")
    if not os.path.isdir(os.path.dirname(folder)):
        raise UsageError(f"--dir: {os.path.dirname(folder)} does not exist; allowed: a new folder in an existing one")
    if not os.path.isdir(folder):
        if ns.dry_run:
            out.plain(f"  would: make {folder} (0700) and a new CA in it")
            out.plain("Dry run: nothing was changed.")
            return EXIT_OK
        os.mkdir(folder, mtls.FOLDER_MODE)
        os.chmod(folder, mtls.FOLDER_MODE)
    root = CaFolder(folder)
    now = pki.now_utc()
    ca = mtls.new_ca(days, now, f"a CA for a fleet, valid {days} days")
    index = mtls.load_index({})
    with contextlib.nullcontext() if ns.dry_run else lock.hold(root):
        _apply(root, f"A new CA in {folder}", mtls.folder_files(index, ca, None, {}, now), out, ns.dry_run)
    if ns.dry_run:
        return EXIT_OK
    out.plain(f"✓ CA {pki.openssl_name(ca.cert.subject)} in {folder} (key {root.host(paths.CA_KEY)}, 0600), valid until "
              f"{mtls.iso(ca.cert.not_valid_after_utc)}")
    for line in _push_lines(root, None):
        out.plain(line)
    out.plain(f"Issue clients: actvt client issue NAME --ca-dir {folder}")
    if ns.json:
        sequence.write_json(stdout, {"dir": folder, "ca": describe(ca), "trust_file": root.host(paths.FLEET_TRUST),
                                     "crl_file": root.host(paths.MTLS_CRL)})
    return EXIT_OK


def _folder(ns) -> CaFolder:
    folder = os.path.abspath(ns.dir)
    if not os.path.isfile(os.path.join(folder, "ca.crt")):
        raise UsageError(f"--dir: {folder} holds no CA; allowed: a CA folder made by `actvt ca init --dir DIR`")
    return CaFolder(folder)


def cmd_rotate(ns, environ, out, stdout) -> int:
    days = _days(ns, environ)
    root = _folder(ns)
    with contextlib.nullcontext() if ns.dry_run else lock.hold(root):
        now = pki.now_utc()
        files = mtls.read_files(root)
        index = mtls.load_index(files)
        ca, previous, actions, reissued = mtls.rotate_folder(files, index, days, now, "root")
        _apply(root, "A new CA (rollover)", actions + mtls.folder_files(index, ca, previous, files, now), out,
               ns.dry_run)
    if ns.dry_run:
        return EXIT_OK
    out.plain(f"✓ New CA, valid until {mtls.iso(ca.cert.not_valid_after_utc)}; the previous one stays trusted until "
              "`actvt ca finish`")
    if reissued:
        out.plain("Hand these bundles out again (each replaces the holder's earlier bundle):")
        for name in reissued:
            out.plain(f"  {name}: {root.host(paths.client_bundle(name))}")
    for line in _push_lines(root, previous):
        out.plain(line)
    out.plain(f"When every holder has the new bundle: actvt ca finish --dir {root.root}")
    if ns.json:
        sequence.write_json(stdout, {"ca": describe(ca), "previous": describe(previous), "reissued": reissued})
    return EXIT_OK


def cmd_finish(ns, environ, out, stdout) -> int:
    root = _folder(ns)
    with contextlib.nullcontext() if ns.dry_run else lock.hold(root):
        now = pki.now_utc()
        files = mtls.read_files(root)
        index = mtls.load_index(files)
        try:
            ca, previous, actions, cut_off = mtls.finish_folder(files, index, now, root.root, ns.force)
        except mtls.OldCAOnly as refused:
            if ns.json:
                sequence.write_json(stdout, {"finished": False, "old_ca_only": refused.clients})
            raise
        for item in cut_off:
            out.warn(f"{item['name']} (expires {item['not_after']}) holds only a certificate of the old CA: "
                     "finishing cuts it off (--force)")
        _apply(root, "Finishing the rollover", actions + mtls.folder_files(index, ca, None, files, now), out,
               ns.dry_run)
    if ns.dry_run:
        return EXIT_OK
    out.plain("✓ Rollover finished: certificates of the previous CA stop connecting where servers have the new "
              "trust file")
    for line in _push_lines(root, None):
        out.plain(line)
    if ns.json:
        sequence.write_json(stdout, {"finished": True, "ca": describe(ca), "dropped": describe(previous),
                                     "cut_off": cut_off})
    return EXIT_OK


def describe(ca) -> dict:
    return {"subject": pki.openssl_name(ca.cert.subject), "sha256": pki.fingerprint(ca.cert),
            "not_after": mtls.iso(ca.cert.not_valid_after_utc)}


def cmd_show(ns, environ, out, stdout) -> int:
    root = _folder(ns)
    now = pki.now_utc()
    files = mtls.read_files(root)
    ca = mtls.load_ca(files, now)
    previous = mtls.previous_ca(files, ca)
    index = mtls.load_index(files)
    mtls.sync_index(index, files, ca, also=(previous,) if previous else ())  # as `client list` sees them
    live = [item for item in index["certificates"] if item["status"] in (mtls.ACTIVE, mtls.ROTATED)]
    result = {"dir": root.root, "ca": describe(ca), "previous": describe(previous) if previous else None,
              "clients": [{"name": item["name"], "serial": item["serial"], "status": mtls.display_status(item, now),
                           "ca": "current" if item["ca"] == ca.id else "previous"} for item in live],
              "revoked": sum(1 for item in index["certificates"] if item["status"] == mtls.REVOKED),
              "trust_file": root.host(paths.FLEET_TRUST), "crl_file": root.host(paths.MTLS_CRL)}
    if ns.json:
        sequence.write_json(stdout, result)
        return EXIT_OK
    out.plain(f"CA {result['ca']['subject']} (sha256 {result['ca']['sha256']}), until {result['ca']['not_after']}")
    if previous:
        out.plain(f"Rollover in progress: the previous CA (until {result['previous']['not_after']}) is still trusted")
    for client in result["clients"]:
        out.plain(f"  {client['name']}  {client['serial']}  {client['status']}  ({client['ca']} CA)")
    out.plain(f"Revoked: {result['revoked']}; trust file {result['trust_file']}; CRL {result['crl_file']}")
    return EXIT_OK


COMMANDS = {"init": cmd_init, "rotate": cmd_rotate, "finish": cmd_finish, "show": cmd_show}


def cmd_ca(args, environ, out, stdout) -> int:
    try:
        ns = make_parser().parse_args(list(getattr(args, "client_args", None) or []))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if ns.json and out.stream is stdout:
        out.stream = sys.stderr  # stdout carries only the JSON
    return COMMANDS[ns.action](ns, environ, out, stdout)
