"""What the installer has written on this server, so that ``uninstall`` removes exactly that.

``/var/lib/actvt/manifest.json`` lists every path an install plan manages, with its origin:
``created`` (nothing was there before the installer), ``replaced`` (a foreign file was there; its
first backup is named, and uninstall puts it back) or ``adopted`` (the file was already as the
installer wanted it, e.g. left by the bash installer). The first origin recorded for a path is kept
across runs. It is written after a successful apply, only when it changes. Paths are read normalised,
and a backup outside the backups folder (``..``, another absolute path) makes the record damaged: the
file is root's alone (``core.fs.Tree.read_record``), but it is never trusted to name another place.
"""

import json
import posixpath
from typing import Dict, Mapping, Optional

from installer.core import paths
from installer.core.actions import Copy, Directory, File, Keyring, Plan, Symlink

MANIFEST = paths.MANIFEST
CREATED, REPLACED, ADOPTED = "created", "replaced", "adopted"
_MANAGED = (File, Copy, Symlink, Keyring, Directory)


def load(data: Optional[bytes]) -> Dict[str, dict]:
    """The entries of ``manifest.json`` ({} when there is none). A damaged manifest is never taken as
    empty (uninstall would then treat a user's replaced file as the installer's and delete it): it
    stops the run with a message naming the file and what to do."""
    from installer.core.records import damaged

    if data is None:
        return {}
    hint = " (or, to start a new record, move it away: uninstall then leaves alone what it no longer knows)"
    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(MANIFEST, f"not JSON: {exc}", hint) from None
    entries = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise damaged(MANIFEST, "it has no \"paths\" object", hint)
    loaded: Dict[str, dict] = {}
    for path, entry in entries.items():
        problem = _entry_problem(path, entry)
        if problem:
            raise damaged(MANIFEST, f"entry {path!r}: {problem}", hint)
        entry = dict(entry)
        if entry.get("backup") is not None:
            entry["backup"] = posixpath.normpath(entry["backup"])
        loaded[posixpath.normpath(path)] = entry
    return loaded


def _entry_problem(path, entry) -> Optional[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        return "not an absolute path"
    if not isinstance(entry, dict):
        return "not an object"
    if entry.get("origin") not in (CREATED, REPLACED, ADOPTED):
        return "origin is not created, replaced or adopted"
    if entry.get("kind") not in ("file", "directory"):
        return "kind is not file or directory"
    backup = entry.get("backup")
    if backup is not None and not (isinstance(backup, str) and backup.startswith("/")
                                   and posixpath.normpath(backup).startswith(paths.BACKUP_DIR + "/")):
        return f"its backup is not a path under {paths.BACKUP_DIR}"  # e.g. backups/../../../etc/sudoers
    if entry["origin"] == REPLACED and backup is None:
        return f"a replaced file without its backup under {paths.BACKUP_DIR}"
    return None


def dump(entries: Mapping[str, dict]) -> bytes:
    return (json.dumps({"version": 1, "paths": dict(sorted(entries.items()))}, indent=1) + "\n").encode()


def record(previous: Mapping[str, dict], plan: Plan, created, backed_up: Mapping[str, str],
           describe_backup=lambda path: {}, adopt=()) -> Dict[str, dict]:
    """The manifest after a run: the previous entries, plus the paths this plan manages.
    ``describe_backup(path)`` gives a backup's mode/owner/group, so that uninstall restores them.
    ``adopt``: paths whose replaced file was the bash installer's (recorded as adopted: uninstall
    removes them instead of putting its version back; the backup stays)."""
    entries = {path: dict(entry) for path, entry in previous.items()}
    managed = [action for action in plan.actions if isinstance(action, _MANAGED) and not getattr(action, "shared", False)]
    planned = {action.path for action in managed}
    for path in created:  # folders made on the way to a planned file
        if path not in planned:
            entries.setdefault(path, {"origin": CREATED, "kind": "directory"})
    for action in managed:
        kind = "directory" if isinstance(action, Directory) else "file"
        if action.path in entries:
            continue
        if action.path in created:
            entries[action.path] = {"origin": CREATED, "kind": kind}
        elif action.path in backed_up and action.path not in adopt:
            entries[action.path] = {"origin": REPLACED, "kind": kind, "backup": backed_up[action.path],
                                    "sensitive": bool(getattr(action, "sensitive", False)),
                                    **describe_backup(backed_up[action.path])}
        else:
            entries[action.path] = {"origin": ADOPTED, "kind": kind}
    entries.pop(MANIFEST, None)
    return entries
