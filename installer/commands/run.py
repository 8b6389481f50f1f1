"""The one sequence every changing command runs: check the plan against the host, then show it
(``--dry-run``) or apply it, then report, with the JSON summary on stdout when ``--json`` is given.

``install``, ``uninstall`` and ``actvt client`` (issue, revoke) differ only in their plan, their
headings and what they say at the end; ``status`` checks an install plan and stops there. The
helpers the commands share are here too: the ``--root`` check, the root check, the connectivity check.
"""

import dataclasses
import json
import os
import time
from typing import Callable, List, Optional

from installer.core.errors import ActvtError, Refused, UsageError
from installer.core.http import FetchError, get
from installer.core.paths import Root
from installer.engine import engine
from installer.ui import report


def root_of(args) -> Root:
    """``--root DIR`` as a Root (the one check of it: an existing directory)."""
    root = Root(args.root if getattr(args, "root", None) is not None else "/")
    if not os.path.isdir(root.root):
        raise UsageError(f"--root: {root.root} is not a directory; allowed: an existing directory")
    return root


def need_root(root: Root, dry_run: bool, message: str) -> None:
    """Changing the real host takes root (a dry run or a --root tree does not)."""
    if root.is_host and not dry_run and os.geteuid() != 0:
        raise Refused(message)


def start_log(out) -> None:
    """The run is valid and holds the lock: from here on it is logged."""
    problem = out.log.start()
    if problem:
        out.warn(problem)


class UnreachableError(ActvtError):
    """An endpoint the plan needs does not answer; nothing was changed."""


def check_endpoints(found, environ, log=None, timeout: float = 20) -> None:
    """Before any change: each URL the plan will use answers (with the user's proxy settings and the
    trust apt and certbot use), else stop naming the URL, the reason and the variable. Only what the
    plan needs is asked, never a public address of our choosing (the bash installer pinged 8.8.8.8)."""
    failures = []
    for endpoint in found:
        try:
            get(endpoint.url, environ, timeout, limit=1)
            why = None
        except FetchError as exc:
            why = str(exc)
        if log is not None:
            log("INFO", f"connectivity: {endpoint.url}: {why or 'ok'}")
        if why:
            failures.append(f"cannot reach {endpoint.what} at {endpoint.url}: {why} (check the network, the proxy "
                            f"settings HTTPS_PROXY/NO_PROXY, or {endpoint.variable})")
    if failures:
        raise UnreachableError("\n".join(failures) + "\nNothing was changed.")


@dataclasses.dataclass
class Outcome:
    items: List[engine.Checked]
    result: Optional[engine.Result] = None
    step_seconds: list = dataclasses.field(default_factory=list)
    error: Optional[ActvtError] = None

    @property
    def pending(self) -> int:
        return sum(1 for item in self.items if item.status == engine.CHANGE)


def execute(eng: engine.Engine, plan, out, dry_run: bool, *, first: int = 1, total: Optional[int] = None,
            compact: bool = False, finish: Optional[Callable] = None) -> Outcome:
    """Check, then show (dry run) or apply. ``first``/``total``: the numbers of the step headings. A
    failure while applying is shown (what was put back, that a re-run is safe) and returned in
    ``Outcome.error``. ``compact`` (``actvt client``): no headings, and a failure is raised for the
    command's own one-line report. ``finish(journal)``: the command's own record, written as the last
    part of the change (``Engine.apply``)."""
    items = eng.check(plan)
    total = total if total is not None else len(plan.steps) + first - 1
    if dry_run:
        if compact:
            report.show_changes(items, out)
        else:
            report.show_plan(plan, items, out, total, first)
        report.show_leftovers(eng.leftovers, out)
        return Outcome(items)
    if eng.leftovers:
        out.ok(f"removed {len(eng.leftovers)} temporary file(s) left by an interrupted run")
    if compact:
        progress = None
        before = after = lambda item: None
    else:
        progress = report.Progress(plan, items, out, total, first, time.monotonic)
        before, after = progress.before, progress.after
    try:
        try:
            result = eng.apply(items, before, after, finish)
        finally:
            if progress is not None:
                progress.close()
    except ActvtError as exc:
        if compact:
            raise
        report.show_failure(exc, out)
        return Outcome(items, None, progress.seconds, exc)
    for warning in eng.warnings:
        out.warn(warning)
    return Outcome(items, result, progress.seconds if progress else [])


def write_json(stdout, summary: dict) -> None:
    stdout.write(json.dumps(summary, indent=2) + "\n")
