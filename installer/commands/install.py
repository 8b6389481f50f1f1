"""``install`` (the default command): configuration and facts -> the plan -> shown or applied.

The path of one run, from the environment to a written file, is described in docs/architecture.md.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import sys
import time
import zipfile
from typing import Optional

import installer
from installer import __version__
from installer.commands import run
from installer.concerns import certbot, migration, mtls
from installer.core import config as configuration
from installer.core import facts as host_facts
from installer.core import manifest, paths
from installer.core.context import Context
from installer.core.errors import EXIT_OK, ActvtError, ConfigError, UsageError
from installer.core.fs import Tree
from installer.core.paths import Root
from installer.engine import engine, lock
from installer.engine.diff import written_by_installer
from installer.engine.journal import Journal
from installer.plans import registry
from installer.ui import prompt, report
from installer.ui.console import Console


# --- the running zipapp ---------------------------------------------------------------------------


def running_zipapp() -> Optional[str]:
    """The zipapp this process runs from (shiv sets argv[0] to it), if any."""
    path = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return path if path and os.path.isfile(path) and zipfile.is_zipfile(path) else None


def zipapp_identity(path: Optional[str]):
    """(path, shiv build id) of the running zipapp, or (None, None) when running from source.
    The zipapp is copied by path, in blocks: it is never held in memory whole."""
    if path is None:
        return None, None
    try:
        with zipfile.ZipFile(path) as archive:
            build_id = json.loads(archive.read("environment.json")).get("build_id")
    except (KeyError, ValueError, zipfile.BadZipFile):
        build_id = None
    return path, build_id


def remove_old_extractions(build_id: Optional[str]) -> None:
    """shiv keeps one extraction per build; keep only the one this process runs from (root's cache)."""
    package = os.path.dirname(os.path.abspath(installer.__file__))  # <shiv root>/actvt.pyz_<id>/site-packages/installer
    extraction = os.path.dirname(os.path.dirname(package))
    shiv_root = os.path.dirname(extraction)
    if not build_id or os.geteuid() != 0 or os.path.basename(extraction) != f"actvt.pyz_{build_id}" \
            or not shiv_root.startswith(paths.CACHE_DIR + "/"):
        return
    keep = {f"actvt.pyz_{build_id}", f".actvt.pyz_{build_id}_lock"}
    with contextlib.suppress(OSError):
        for name in os.listdir(shiv_root):
            if name.startswith(("actvt.pyz_", ".actvt.pyz_")) and name not in keep:
                target = os.path.join(shiv_root, name)
                if os.path.isdir(target):
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    os.unlink(target)


# --- the record of what was written ---------------------------------------------------------------


def write_manifest(root: Root, facts, plan, journal: Journal) -> None:
    """Record what the plan manages (for uninstall), as the last part of the run's change
    (``Engine.apply``'s ``finish``); rewritten only when it changes, after its previous version is
    copied into the run's backup folder by the journal, so that a rollback puts it back too."""
    previous = facts.files.get(paths.MANIFEST)
    tree = Tree(root)

    def describe_backup(path: str) -> dict:
        owner, group = engine.owner_names(tree.lstat(path))
        return {"mode": f"{tree.lstat(path).st_mode & 0o7777:04o}", "owner": owner, "group": group}

    entries = manifest.record(manifest.load(previous), plan, journal.created, journal.saved, describe_backup,
                              adopt=migration.bash_files(facts))
    data = manifest.dump(entries)
    if data != previous:
        journal.save(paths.MANIFEST)
        tree.write(paths.MANIFEST, data, 0o600, created=journal.created)


# --- install --------------------------------------------------------------------------------------


def check_ports(cfg, root: Root) -> None:
    """ACTVT_VECTOR_PORT against what listens now (the mode follows from the listeners too): exit 2."""
    if cfg.bake:
        return
    listening = host_facts.Facts(listeners=host_facts.gather_listeners(root))
    conflicts = registry.port_conflicts(cfg, listening, registry.decide(cfg, listening))
    if conflicts:
        raise ConfigError(conflicts)


def staged_files(args, root: Root) -> dict:
    """``--staged-file PATH=STAGED`` (a dry run only): {server path: the staged file's content}, read as
    any file of the plan is (``facts.read_file``: no planted link followed, no FIFO opened). Ansible's
    check mode copies what a real run would copy to a temporary folder and plans with it here."""
    staged = {}
    for item in getattr(args, "staged_file", None) or ():
        path, sep, source = item.partition("=")
        if not args.dry_run:
            raise UsageError("--staged-file: only with --dry-run (a real run reads the files where they are)")
        if not sep or not path.startswith("/") or not source.startswith("/"):
            raise UsageError(f"--staged-file: {item!r}; allowed: PATH=STAGED, two absolute paths")
        content = host_facts.read_file(root, source)
        if content is None:
            raise UsageError(f"--staged-file: {source} does not exist (staged for {path})")
        staged[path] = content
    return staged


def check_trust(cfg, root: Root, staged=None) -> None:
    """ACTVT_MTLS_CA_FILE and ACTVT_MTLS_CRL_FILE as they are on the server (or ``staged``): exit 2, before
    anything is written."""
    if not cfg.mtls_ca_file or cfg.bake:
        return
    staged = staged or {}

    def read(path):
        return staged[path] if path in staged else host_facts.read_file(root, path)

    problems = mtls.trust_problems(cfg, read(cfg.mtls_ca_file), read(cfg.mtls_crl_file) if cfg.mtls_crl_file else None,
                                   datetime.datetime.now(datetime.timezone.utc))
    if problems:
        raise ConfigError(problems)


def preflight(root: Root, facts: host_facts.Facts, cfg, dry_run: bool) -> None:
    """Stop before planning when this host cannot be installed on."""
    if root.is_host and not dry_run and not cfg.bake and not facts.systemd_running:
        raise ActvtError("systemd is not running here (PID 1 is not systemd), so Vector cannot be started. "
                         "To prepare an image (docker build, Packer), set ACTVT_BAKE=yes: the packages are "
                         "installed now and the installation finishes on first boot.")
    if root.is_host and facts.package_manager is None:
        raise ActvtError(f"unsupported system {facts.os.pretty_name!r}: supported are Debian, Ubuntu, "
                         "RHEL/CentOS/Rocky/Alma (dnf or yum) and Amazon Linux")
    if facts.free_disk_mb is not None and facts.free_disk_mb < 100:
        raise ActvtError(f"only {facts.free_disk_mb} MB free under /var/lib; at least 100 MB are needed")


def wait_for_dns(cfg, facts: host_facts.Facts, out: Console, dry_run: bool) -> host_facts.Facts:
    """ACTVT_WAIT_FOR_DNS: the facts with the domain's addresses once it resolves (or the bound has passed).
    A dry run does not wait: it shows now what a run would do, and says that a real run would wait."""
    if dry_run or not certbot.dns_wait_needed(cfg, facts, datetime.datetime.now(datetime.timezone.utc)):
        return facts
    addresses, waited = certbot.wait_for_dns(cfg.domain, cfg.wait_for_dns, out.progress)
    return dataclasses.replace(facts, domain_addresses=addresses, dns_waited=waited)


def report_system(facts: host_facts.Facts, out: Console) -> None:
    out.ok(f"system: {facts.os.pretty_name}"
           + (f", package manager {facts.package_manager}" if facts.package_manager else ""))
    if facts.mem_total_mb is not None and facts.mem_total_mb < 512:
        out.warn(f"only {facts.mem_total_mb} MB of memory; 512 MB or more is recommended")


def cmd_install(args, environ, out: Console, stdout) -> int:
    for warning in configuration.unknown_variables(environ):
        out.warn(warning)
    root = run.root_of(args)
    environ = migration.with_state_defaults(root, environ, out)  # an earlier install's mode, mTLS, domain
    cfg = configuration.parse(environ)
    run.need_root(root, args.dry_run, "must run as root: use `sudo` (or --dry-run to only see the plan)")
    for warning in configuration.warnings(cfg):
        out.warn(warning)
    log = out.log
    log.enabled = not args.dry_run
    started_all = time.monotonic()
    check_ports(cfg, root)  # before the lock: a refused value writes nothing, not even the lock file
    staged = staged_files(args, root)
    check_trust(cfg, root, staged)
    with contextlib.nullcontext() if args.dry_run else lock.hold(root):
        facts = host_facts.gather(root, environ, reads=registry.reads(cfg), probes=registry.probes(),
                                  domain=cfg.domain)
        if staged:
            facts = dataclasses.replace(facts, files={**facts.files, **staged})
        entries = manifest.load(facts.files.get(paths.MANIFEST))  # a damaged record stops the run before any change
        facts = wait_for_dns(cfg, facts, out, args.dry_run)
        decisions = registry.decide(cfg, facts)

        def summary(items, **extra) -> dict:
            return report.summary_json(items, root=root, log=log, mode=decisions.mode, webserver=decisions.webserver,
                                       mtls=bool(cfg.enable_mtls), url=registry.connection_url(cfg, decisions),
                                       **extra)

        log("INFO", f"actvt-installer {__version__}: domain {cfg.domain}, e-mail {configuration.mask_email(cfg.email)}, "
                    f"root {root.root}{' (dry run)' if args.dry_run else ''}")
        pyz, build_id = zipapp_identity(running_zipapp())
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        try:
            preflight(root, facts, cfg, args.dry_run)
            interactive = False if (args.yes or args.dry_run or cfg.non_interactive) else \
                (None if cfg.non_interactive is None else True)
            asked = prompt.answers(cfg, facts, prompt.Prompter(cfg, interactive, sys.stdin))
            ctx = Context(version=__version__, now=now, pyz=pyz, build_id=build_id, answers=asked)
            built = registry.build(cfg, facts, ctx, decisions)
            if root.is_host and not args.dry_run:  # the endpoints the plan needs, before any change
                run.check_endpoints(registry.endpoints(cfg, built), environ, log)
        except UsageError:
            raise
        except ActvtError as exc:  # a stop before anything ran (apache2 on 80, ...): --json still answers
            if args.json:
                run.write_json(stdout, summary([], dry_run=args.dry_run, error=str(exc)))
            raise
        plan = built.plan
        notes = registry.notes(cfg, facts, decisions, ctx)
        run.start_log(out)
        total = len(plan.steps) + 1
        out.heading(1, total, "Checking the system")
        report_system(facts, out)
        out.ok(f"mode: {decisions.mode} (web server on 80/443: {decisions.webserver})")
        eng = engine.Engine(root, engine.Runner(log), log=log, lock_timeout=cfg.package_lock_timeout, notify=out.warn,
                            installer_files=written_by_installer(entries))

        def record(journal) -> None:
            write_manifest(root, facts, plan, journal)

        outcome = run.execute(eng, plan, out, args.dry_run, first=2, total=total,
                              finish=None if cfg.bake else record)  # an image holds no state
        if args.dry_run:
            for note in notes:
                out.warn(note)
            out.plain()
            out.plain(f"Dry run: {outcome.pending} change(s) planned, nothing was changed.")
            if args.json:
                run.write_json(stdout, summary(outcome.items, dry_run=True))
            return EXIT_OK
        if outcome.error is not None:
            if args.json:
                run.write_json(stdout, summary(outcome.items, dry_run=False, error=str(outcome.error),
                                               step_seconds=outcome.step_seconds))
            return outcome.error.exit_status
        result = outcome.result
        remove_old_extractions(build_id)
        log("INFO", f"done: {len(result.changed)} change(s) in {time.monotonic() - started_all:.1f} s")
        written = [item.action.path for item in result.changed if hasattr(item.action, "path")]
        report.print_install_summary(
            out, bake=cfg.bake, mode=decisions.mode, url=registry.connection_url(cfg, decisions),
            changed=len(result.changed), backup_dir=result.backup_dir, mtls_on=bool(cfg.enable_mtls),
            mtls_lines=[] if cfg.bake else mtls.summary_lines(cfg, facts.sudo_user, written), notes=notes)
        if args.json:
            run.write_json(stdout, summary(outcome.items, dry_run=False, result=result,
                                           step_seconds=outcome.step_seconds, notes=notes))
    return EXIT_OK
