"""``uninstall [--purge] [--remove-vector]``: remove what the installer wrote, as its manifest
records it. What each concern undoes, and in which order, is in ``plans.registry``; the files and
the kept mTLS material are ``concerns.state``'s."""

import contextlib

from installer.commands import run
from installer.concerns import state
from installer.core import config as configuration
from installer.core import facts as host_facts
from installer.core import manifest, paths, records
from installer.core.concern import UninstallOptions
from installer.core.errors import EXIT_OK
from installer.engine import engine, lock
from installer.plans import registry
from installer.ui import report


def cmd_uninstall(args, environ, out, stdout) -> int:
    root = run.root_of(args)
    lock_timeout = configuration.parse_one(environ, "ACTVT_PACKAGE_LOCK_TIMEOUT")
    run.need_root(root, args.dry_run, "must run as root: use `sudo` (or --dry-run to only see what would be removed)")
    out.log.enabled = not args.dry_run
    with contextlib.nullcontext() if args.dry_run else lock.hold(root):
        entries = manifest.load(host_facts.read_file(root, paths.MANIFEST))
        facts = host_facts.gather(root, environ, reads=registry.uninstall_reads(entries),
                                  probes=registry.uninstall_probes())
        if paths.STATE_FILE not in facts.files and not (args.purge and entries):
            out.plain("actvt is not installed here (no /var/lib/actvt/install.state): nothing to remove.")
            return EXIT_OK
        options = UninstallOptions(purge=args.purge, remove_vector=args.remove_vector,
                                   domain=records.read_domain(facts.files.get(paths.DOMAIN_FILE)),
                                   package_lock_timeout=lock_timeout)
        plan = registry.build_uninstall_plan(entries, facts, options)
        kept = state.missing_backups(entries, facts, options)
        run.start_log(out)
        eng = engine.Engine(root, engine.Runner(out.log), log=out.log, lock_timeout=lock_timeout, notify=out.warn)
        outcome = run.execute(eng, plan, out, args.dry_run, first=1)
        for line in kept:
            out.warn(line)

        def summary(**extra) -> dict:
            return report.summary_json(outcome.items, root=root, log=out.log, notes=kept, **extra)

        if args.dry_run:
            out.plain()
            out.plain(f"Dry run: {outcome.pending} change(s) planned, nothing was removed.")
            if args.json:
                run.write_json(stdout, summary(dry_run=True))
            return EXIT_OK
        if outcome.error is not None:
            return outcome.error.exit_status
        result = outcome.result
        out.plain()
        out.plain(f"Uninstalled: {len(result.changed)} change(s). Backups are kept in {paths.BACKUP_DIR}.", "ok")
        if not args.purge:
            out.plain(f"  Kept: {paths.MTLS_DIR} and the Let's Encrypt certificate (remove them with --purge).")
        if args.json:
            run.write_json(stdout, summary(dry_run=False, result=result, step_seconds=outcome.step_seconds))
    return EXIT_OK
