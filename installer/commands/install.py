"""The commands behind the command line: ``install``, ``status``, ``uninstall`` (``client`` is in
``clients.py``). Each reads the configuration and the facts, builds a plan, then shows it
(``--dry-run``) or applies it, and reports. Human output goes to ``out``; ``stdout`` carries only the
JSON summary when ``--json`` is given.
"""

import contextlib
import datetime
import json
import os
import sys
import time
import zipfile
from typing import Optional

from installer import __version__
from installer.core import config as configuration
from installer.engine import engine
from installer.core import facts as host_facts
from installer.core import manifest
from installer.concerns import migration
from installer.core import paths
from installer.ui import prompt as prompts
from installer.engine import lock as runlock
from installer.core.errors import ActvtError, ConfigError, Refused, UsageError
from installer.core.fs import Tree
from installer.ui.console import Console
from installer.core.paths import Root
from installer.plans.registry import Context, build_plan, collect_notes, connection_url, decide, port_conflicts, probes, watched

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


# --- helpers --------------------------------------------------------------------------------------


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
    import installer

    package = os.path.dirname(os.path.abspath(installer.__file__))  # <shiv root>/actvt.pyz_<id>/site-packages/installer
    extraction = os.path.dirname(os.path.dirname(package))
    shiv_root = os.path.dirname(extraction)
    if not build_id or os.geteuid() != 0 or os.path.basename(extraction) != f"actvt.pyz_{build_id}" \
            or not shiv_root.startswith(paths.CACHE_DIR + "/"):
        return
    import shutil

    keep = {f"actvt.pyz_{build_id}", f".actvt.pyz_{build_id}_lock"}
    with contextlib.suppress(OSError):
        for name in os.listdir(shiv_root):
            if name.startswith(("actvt.pyz_", ".actvt.pyz_")) and name not in keep:
                target = os.path.join(shiv_root, name)
                if os.path.isdir(target):
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    os.unlink(target)


def write_manifest(root: Root, facts, plan, result: engine.Result) -> None:
    """Record what the plan manages (for uninstall); rewritten only when it changes, after its
    previous version is copied into the run's backup folder (so a damaged one can be put back)."""
    previous = facts.files.get(manifest.MANIFEST)
    tree = Tree(root)

    def describe_backup(path: str) -> dict:
        st = tree.lstat(path)
        owner, group = engine.owner_names(st)
        return {"mode": f"{st.st_mode & 0o7777:04o}", "owner": owner, "group": group}

    entries = manifest.record(manifest.load(previous), plan, result.created, result.backed_up, describe_backup,
                              adopt=migration.bash_files(facts))
    data = manifest.dump(entries)
    if data != previous:
        if previous is not None:
            folder = result.backup_dir or engine.backup_folder(tree)
            tree.copy_entry(manifest.MANIFEST, folder + manifest.MANIFEST, keep_owner=os.geteuid() == 0)
        tree.write(manifest.MANIFEST, data, 0o600)


install_lock = runlock.hold  # the one lock helper (also ``actvt client``)


def _status_word(item: engine.Checked, dry_run: bool) -> str:
    if item.status == engine.SKIP:
        return "skipped"
    if item.status == engine.OK:
        return "unchanged"
    return "would change" if dry_run else ("changed" if item.changed else "not reached")


def summary_json(items, config, decisions, dry_run, root, log, result=None, error=None, step_seconds=None,
                 notes_found=()):
    written = [item.action.path for item in items if item.changed and hasattr(item.action, "content")]
    return {
        "version": __version__,
        "status": "failed" if error else "ok",
        "error": error,
        "dry_run": dry_run,
        "root": root.root,
        "mode": decisions.mode if decisions else None,
        "webserver": decisions.webserver if decisions else None,
        "mtls": bool(config.enable_mtls) if config else None,
        "url": connection_url(config, decisions) if config and decisions else None,
        "changed": sum(1 for item in items if item.changed),
        "would_change": sum(1 for item in items if item.status == engine.CHANGE) if dry_run else None,
        "paths_written": written,
        "backup_dir": result.backup_dir if result else None,
        "log": log.path,
        "steps": step_seconds or [],
        "notes": list(notes_found),
        "actions": [
            {
                "step": item.step,
                "type": type(item.action).__name__.lower(),
                "target": getattr(item.action, "path", None) or getattr(item.action, "name", None),
                "action": item.action.describe(),
                "status": _status_word(item, dry_run),
                "why": item.why,
                "seconds": round(item.seconds, 3),
            }
            for item in items
        ],
    }


# --- install --------------------------------------------------------------------------------------


def check_ports(cfg, root: Root) -> None:
    """ACTVT_VECTOR_PORT against what listens now (the mode follows from the listeners too): exit 2."""
    if cfg.bake:
        return
    listening = host_facts.Facts(listeners=host_facts.gather_listeners(root))
    conflicts = port_conflicts(cfg, listening, decide(cfg, listening))
    if conflicts:
        raise ConfigError(conflicts)


def preflight(root: Root, facts: host_facts.Facts, cfg, dry_run: bool, log) -> None:
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


def report_system(facts: host_facts.Facts, console: Console) -> None:
    console.ok(f"system: {facts.os.pretty_name}"
               + (f", package manager {facts.package_manager}" if facts.package_manager else ""))
    if facts.mem_total_mb is not None and facts.mem_total_mb < 512:
        console.warn(f"only {facts.mem_total_mb} MB of memory; 512 MB or more is recommended")


def cmd_install(args, environ, out: Console, stdout) -> int:
    for warning in configuration.unknown_variables(environ):
        out.warn(warning)
    root = Root(args.root)
    if not os.path.isdir(root.root):
        raise UsageError(f"--root: {args.root} is not a directory; allowed: an existing directory")
    environ = migration.with_state_defaults(root, environ, out)  # an earlier install's mode, mTLS, domain
    cfg = configuration.parse(environ)
    if root.is_host and not args.dry_run and os.geteuid() != 0:
        raise Refused("must run as root: use `sudo` (or --dry-run to only see the plan)")
    for warning in configuration.warnings(cfg):
        out.warn(warning)
    log = out.log
    log.enabled = not args.dry_run
    started_all = time.monotonic()
    check_ports(cfg, root)  # before the lock: a refused value writes nothing, not even the lock file
    lock = contextlib.nullcontext() if args.dry_run else install_lock(root)
    with lock:
        facts = host_facts.gather(root, environ, watch=watched(cfg), probes=probes(), domain=cfg.domain)
        manifest.load(facts.files.get(manifest.MANIFEST))  # a damaged record stops the run before any change
        decisions = decide(cfg, facts)
        log("INFO", f"actvt-installer {__version__}: domain {cfg.domain}, e-mail {configuration.mask_email(cfg.email)}, "
                    f"root {root.root}{' (dry run)' if args.dry_run else ''}")
        pyz, build_id = zipapp_identity(running_zipapp())
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        try:
            preflight(root, facts, cfg, args.dry_run, out.log)
            interactive = False if (args.yes or args.dry_run or cfg.non_interactive) else \
                (None if cfg.non_interactive is None else True)
            asked = prompts.answers(cfg, facts, prompts.Prompter(cfg, interactive, sys.stdin))
            ctx = Context(version=__version__, now=now, pyz=pyz, build_id=build_id, answers=asked)
            plan = build_plan(cfg, facts, ctx)
            if root.is_host and not args.dry_run:
                from installer.core import http as reach

                reach.check(plan, cfg, environ, log)  # the endpoints the plan needs, before any change
        except UsageError:
            raise
        except ActvtError as exc:  # a stop before anything ran (apache2 on 80, ...): --json still answers
            if args.json:
                stdout.write(json.dumps(summary_json([], cfg, decisions, args.dry_run, root, log, error=str(exc)),
                                        indent=2) + "\n")
            raise
        start_log(out)  # the run is valid and holds the lock: from here on it is logged
        total = len(plan.steps) + 1
        out.heading(1, total, "Checking the system")
        report_system(facts, out)
        out.ok(f"mode: {decisions.mode} (web server on 80/443: {decisions.webserver})")
        eng = engine.Engine(root, engine.Runner(log), log=log)
        items = eng.check(plan)
        if args.dry_run:
            show_plan(plan, items, out, total)
            show_leftovers(eng, out)
            for note in collect_notes(cfg, facts, ctx):
                out.warn(note)
            out.plain()
            pending = sum(1 for item in items if item.status == engine.CHANGE)
            out.plain(f"Dry run: {pending} change(s) planned, nothing was changed.")
            if args.json:
                stdout.write(json.dumps(summary_json(items, cfg, decisions, True, root, log), indent=2) + "\n")
            return EXIT_OK
        step_seconds = []
        result = None
        try:
            result = apply_plan(eng, plan, items, out, total, step_seconds)
        except ActvtError as exc:
            out.fail(str(exc).splitlines()[0])
            for line in str(exc).splitlines()[1:]:
                out.plain(f"    {line}")
            if args.json:
                stdout.write(json.dumps(summary_json(items, cfg, decisions, False, root, log, error=str(exc),
                                                     step_seconds=step_seconds), indent=2) + "\n")
            return exc.exit_status
        for warning in eng.warnings:
            out.warn(warning)
        if not cfg.bake:  # an image holds no state
            write_manifest(root, facts, plan, result)
        remove_old_extractions(build_id)
        changed = len(result.changed)
        seconds = time.monotonic() - started_all
        log("INFO", f"done: {changed} change(s) in {seconds:.1f} s")
        print_summary(cfg, decisions, result, out, facts, collect_notes(cfg, facts, ctx))
        if args.json:
            stdout.write(json.dumps(summary_json(items, cfg, decisions, False, root, log, result=result,
                                                 step_seconds=step_seconds,
                                                 notes_found=collect_notes(cfg, facts, ctx)), indent=2) + "\n")
    return EXIT_OK


def start_log(out: Console) -> None:
    problem = out.log.start()
    if problem:
        out.warn(problem)


def show_leftovers(eng: engine.Engine, out: Console) -> None:
    if eng.leftovers:
        out.progress(f"remove {len(eng.leftovers)} temporary file(s) left by an interrupted run: "
                     + ", ".join(eng.leftovers))


def show_plan(plan, items, out: Console, total: int, first: int = 2) -> None:
    by_action = iter(items)
    for number, step in enumerate(plan.steps, start=first):
        out.heading(number, total, step.title)
        for _ in step.actions:
            item = next(by_action)
            if item.status == engine.OK:
                out.plain(f"  = {item.action.describe()} (unchanged)", "dim")
            elif item.status == engine.SKIP:
                out.plain(f"  - {item.action.describe()} (listed, {item.why})")
            else:
                out.progress(f"{item.action.describe()}: {item.why}")
                if item.diff:
                    for line in item.diff.rstrip("\n").splitlines():
                        out.plain(f"      {line}")


def apply_plan(eng: engine.Engine, plan, items, out: Console, total: int, step_seconds: list,
               first: int = 2) -> engine.Result:
    """Apply with one heading per step; ``step_seconds`` receives each step's duration."""
    timing = {"step": None, "started": 0.0}

    def close_step() -> None:
        if timing["step"] is not None:
            step_seconds.append({"step": plan.steps[timing["step"]].title,
                                 "seconds": round(time.monotonic() - timing["started"], 3)})

    def before(item: engine.Checked) -> None:
        if item.step_no != timing["step"]:
            close_step()
            timing.update(step=item.step_no, started=time.monotonic())
            out.heading(item.step_no + first, total, item.step)
            if not any(other.status == engine.CHANGE for other in items if other.step_no == item.step_no):
                out.ok("nothing to change")
        if item.status == engine.SKIP:
            out.plain(f"  - {item.action.describe()}: {item.why}")
        elif item.status == engine.CHANGE:
            out.progress(item.action.describe() + (f" ({item.why})" if item.why else ""))

    def after(item: engine.Checked) -> None:
        if item.changed and item.seconds >= 1:
            out.ok(f"done in {item.seconds:.1f} s")

    if eng.leftovers:
        out.ok(f"removed {len(eng.leftovers)} temporary file(s) left by an interrupted run")
    try:
        return eng.apply(items, before, after)
    finally:
        close_step()


def print_summary(cfg, decisions, result, out: Console, facts, notes_found) -> None:
    from installer.concerns import mtls

    out.plain()
    changed = len(result.changed)
    if cfg.bake:
        out.plain("Image prepared: packages installed, first boot will finish the installation.", "ok")
        out.plain("  Write the variables to /etc/actvt/install.env (0600) on each server, e.g. from cloud-init.")
    else:
        out.plain("Installation complete." if changed else "Nothing to change: the server is as configured.", "ok")
        out.plain(f"  Mode:           {decisions.mode}")
        out.plain(f"  Connection URL: {connection_url(cfg, decisions)}")
    out.plain(f"  Changes:        {changed}" + (f" (previous versions in {result.backup_dir})" if result.backup_dir else ""))
    written = [item.action.path for item in result.changed if hasattr(item.action, "path")]
    for line in mtls.summary_lines(cfg, facts.sudo_user, written) if not cfg.bake else []:
        out.plain(f"  {line}")
    if not cfg.enable_mtls and not cfg.bake:
        out.warn("mTLS is off: anyone who knows the URL can read this server's metrics "
                 "(set ACTVT_ENABLE_MTLS=yes to require client certificates)")
    for note in notes_found:
        out.warn(note)
    if not cfg.bake:
        out.plain("  Service:        systemctl status vector | journalctl -u vector -f | actvt status")
    if out.log.path:
        out.plain(f"  Log:            {out.log.path}")


# --- other commands -------------------------------------------------------------------------------


def cmd_status(args, environ, out: Console, stdout) -> int:
    from installer.commands import status

    root = Root(args.root)
    if not os.path.isdir(root.root):
        raise UsageError(f"--root: {args.root} is not a directory; allowed: an existing directory")
    result = status.report(root, environ, out)
    if args.json:
        stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        status.show(result, out)
    return EXIT_OK if result["installed"] else status.NOT_INSTALLED


def cmd_uninstall(args, environ, out: Console, stdout) -> int:
    from installer.plans import uninstall

    root = Root(args.root)
    if not os.path.isdir(root.root):
        raise UsageError(f"--root: {args.root} is not a directory; allowed: an existing directory")
    if root.is_host and not args.dry_run and os.geteuid() != 0:
        raise Refused("must run as root: use `sudo` (or --dry-run to only see what would be removed)")
    out.log.enabled = not args.dry_run
    lock = contextlib.nullcontext() if args.dry_run else install_lock(root)
    with lock:
        entries = manifest.load(Tree(root).read(manifest.MANIFEST, follow=False))
        from installer.concerns.firewall import RECORD

        facts = host_facts.gather(root, environ, watch=uninstall.STATE_FILES + (RECORD,) + uninstall.watch(entries))
        if paths.STATE_FILE not in facts.files and not (args.purge and entries):
            out.plain("actvt is not installed here (no /var/lib/actvt/install.state): nothing to remove.")
            return EXIT_OK
        domain = host_facts.read_domain(facts.files.get(paths.DOMAIN_FILE))
        plan = uninstall.build_uninstall_plan(entries, facts, args.purge, args.remove_vector, domain,
                                              extra_steps=uninstall_extra_steps(facts))
        start_log(out)
        eng = engine.Engine(root, engine.Runner(out.log), log=out.log)
        items = eng.check(plan)
        total = len(plan.steps)
        if args.dry_run:
            show_plan(plan, items, out, total, first=1)
            show_leftovers(eng, out)
            out.plain()
            pending = sum(1 for item in items if item.status == engine.CHANGE)
            out.plain(f"Dry run: {pending} change(s) planned, nothing was removed.")
            if args.json:
                stdout.write(json.dumps(summary_json(items, None, None, True, root, out.log), indent=2) + "\n")
            return EXIT_OK
        step_seconds: list = []
        try:
            result = apply_plan(eng, plan, items, out, total, step_seconds, first=1)
        except ActvtError as exc:
            out.fail(str(exc).splitlines()[0])
            for line in str(exc).splitlines()[1:]:
                out.plain(f"    {line}")
            return exc.exit_status
        out.plain()
        out.plain(f"Uninstalled: {len(result.changed)} change(s). Backups are kept in {paths.BACKUP_DIR}.", "ok")
        if not args.purge:
            out.plain(f"  Kept: {paths.MTLS_DIR} and the Let's Encrypt certificate (remove them with --purge).")
        if args.json:
            stdout.write(json.dumps(summary_json(items, None, None, False, root, out.log, result=result,
                                                 step_seconds=step_seconds), indent=2) + "\n")
    return EXIT_OK


def uninstall_extra_steps(facts) -> list:
    """Steps other concerns add to an uninstall (the firewall rules the installer added)."""
    try:
        from installer.concerns import firewall
    except ImportError:
        return []
    from installer.core.actions import Absent, Command, Step

    record = facts.files.get(firewall.RECORD)
    if not record:
        return []
    commands = [Command(argv, "remove a rule the installer added", may_fail=True)
                for argv in firewall.removal_commands(record.decode(errors="replace"))]
    return [Step("Removing the firewall rules the installer added",
                 tuple(commands) + (Absent(firewall.RECORD, "the record of added rules"),))]
