"""Printing a checked plan, the progress of applying it, the summary, and the JSON summary.

Values in, text out: nothing here decides anything or touches the host.
"""

from typing import Iterable, List, Optional

from installer import __version__
from installer.engine.engine import CHANGE, OK, SKIP, Checked


def status_word(item: Checked, dry_run: bool) -> str:
    if item.status == SKIP:
        return "skipped"
    if item.status == OK:
        return "unchanged"
    return "would change" if dry_run else ("changed" if item.changed else "not reached")


def summary_json(items: List[Checked], *, dry_run: bool, root, log, mode=None, webserver=None, mtls=None, url=None,
                 result=None, error: Optional[str] = None, step_seconds=None, notes: Iterable[str] = ()) -> dict:
    """The ``--json`` summary: every action with changed/unchanged, what was written, per-step durations."""
    written = [item.action.path for item in items if item.changed and hasattr(item.action, "content")]
    return {
        "version": __version__,
        "status": "failed" if error else "ok",
        "error": error,
        "dry_run": dry_run,
        "root": root.root,
        "mode": mode,
        "webserver": webserver,
        "mtls": mtls,
        "url": url,
        "changed": sum(1 for item in items if item.changed),
        "would_change": sum(1 for item in items if item.status == CHANGE) if dry_run else None,
        "paths_written": written,
        "backup_dir": result.backup_dir if result else None,
        "log": log.path,
        "steps": step_seconds or [],
        "notes": list(notes),
        "actions": [
            {
                "step": item.step,
                "type": type(item.action).__name__.lower(),
                "target": getattr(item.action, "path", None) or getattr(item.action, "name", None),
                "action": item.action.describe(),
                "status": status_word(item, dry_run),
                "why": item.why,
                "seconds": round(item.seconds, 3),
                # what the file would become (or became): a unified diff of the installer's own lines (the
                # others are counted, engine/diff.py), or why it is not shown (a secret)
                "diff": item.diff if item.status == CHANGE and item.diff else None,
                # where the file as it was is (a real run that replaced it): what the diff did not show
                "backup": result.backed_up.get(getattr(item.action, "path", None)) if result else None,
            }
            for item in items
        ],
    }


def show_plan(plan, items: List[Checked], out, total: int, first: int = 2) -> None:
    """A dry run: one heading per step, each action with why it changes and its diff."""
    by_action = iter(items)
    for number, step in enumerate(plan.steps, start=first):
        out.heading(number, total, step.title)
        for _ in step.actions:
            item = next(by_action)
            if item.status == OK:
                out.plain(f"  = {item.action.describe()} (unchanged)", "dim")
            elif item.status == SKIP:
                out.plain(f"  - {item.action.describe()} (listed, {item.why})")
            else:
                out.progress(f"{item.action.describe()}: {item.why}")
                if item.diff:
                    for line in item.diff.rstrip("\n").splitlines():
                        out.plain(f"      {line}")


def show_changes(items: List[Checked], out) -> None:
    """A dry run in one block (``actvt client``): only what would change."""
    for item in items:
        if item.status == CHANGE:
            out.plain(f"  would: {item.action.describe()} ({item.why})")


def show_leftovers(leftovers: List[str], out) -> None:
    if leftovers:
        out.progress(f"remove {len(leftovers)} temporary file(s) left by an interrupted run: " + ", ".join(leftovers))


class Progress:
    """What applying prints: a heading when a step starts (``nothing to change`` when none of its actions
    change), a line per action, and how long slow ones took; each step's duration is recorded."""

    def __init__(self, plan, items: List[Checked], out, total: int, first: int, clock):
        self.plan, self.items, self.out, self.total, self.first, self.clock = plan, items, out, total, first, clock
        self.step: Optional[int] = None
        self.started = 0.0
        self.seconds: list = []

    def close(self) -> None:
        if self.step is not None:
            self.seconds.append({"step": self.plan.steps[self.step].title,
                                 "seconds": round(self.clock() - self.started, 3)})
            self.step = None

    def before(self, item: Checked) -> None:
        if item.step_no != self.step:
            self.close()
            self.step, self.started = item.step_no, self.clock()
            self.out.heading(item.step_no + self.first, self.total, item.step)
            if not any(other.status == CHANGE for other in self.items if other.step_no == item.step_no):
                self.out.ok("nothing to change")
        if item.status == SKIP:
            self.out.plain(f"  - {item.action.describe()}: {item.why}")
        elif item.status == CHANGE:
            self.out.progress(item.action.describe() + (f" ({item.why})" if item.why else ""))

    def after(self, item: Checked) -> None:
        if item.changed and item.seconds >= 1:
            self.out.ok(f"done in {item.seconds:.1f} s")


def show_failure(error, out) -> None:
    """The failure's first line as ✗, the rest (what was put back, that a re-run is safe) under it."""
    lines = str(error).splitlines() or [""]
    out.fail(lines[0])
    for line in lines[1:]:
        out.plain(f"    {line}")


def print_install_summary(out, *, bake: bool, mode: str, url: str, changed: int, backup_dir: Optional[str],
                          mtls_lines: Iterable[str], mtls_on: bool, notes: Iterable[str]) -> None:
    out.plain()
    if bake:
        out.plain("Image prepared: packages installed, first boot will finish the installation.", "ok")
        out.plain("  Write the variables to /etc/actvt/install.env (0600) on each server, e.g. from cloud-init.")
    else:
        out.plain("Installation complete." if changed else "Nothing to change: the server is as configured.", "ok")
        out.plain(f"  Mode:           {mode}")
        out.plain(f"  Connection URL: {url}")
    out.plain(f"  Changes:        {changed}" + (f" (previous versions in {backup_dir})" if backup_dir else ""))
    for line in mtls_lines:
        out.plain(f"  {line}")
    if not mtls_on and not bake:
        out.warn("mTLS is off: anyone who knows the URL can read this server's metrics "
                 "(set ACTVT_ENABLE_MTLS=yes to require client certificates)")
    for note in notes:
        out.warn(note)
    if not bake:
        out.plain("  Service:        systemctl status vector | journalctl -u vector -f | actvt status")
    if out.log.path:
        out.plain(f"  Log:            {out.log.path}")
