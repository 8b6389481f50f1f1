"""The installer's own state on the server: ``/var/lib/actvt`` (install.state, domain, the manifest
of what it wrote, the backups folder).

Install: ``install.state`` with the lines the bash installer wrote (``version=``, ``installed_at=``,
``mode=``, ``webserver=``, ``mtls=``, ``mtls_client_cn=``) and the domain; ``installed_at`` keeps the
first install's time, so that a re-run with nothing to change rewrites nothing.

Uninstall, from the manifest (``core.manifest``):

- every path the installer created or adopted is removed; a foreign file it replaced is put back from
  its first backup, with the mode and owner the manifest recorded (never those of the copy); when
  that backup is gone (cleaned by hand), the file is kept as it is and uninstall says so
  (``missing_backups``); folders it created go only when empty; nothing the manifest does not name
  is touched;
- kept unless ``--purge``: the mTLS material (``/etc/vector/certs/mtls``; the mtls concern removes the
  whole folder with ``--purge``) — it stays recorded, so that a later ``--purge`` removes it;
- kept always: ``/var/lib/actvt/backups`` and the folder that holds it.
"""

from typing import List, Mapping

from installer.core import manifest, paths
from installer.core.actions import Absent, Directory, File, Step
from installer.core.concern import Concern, Phase, Planner, Undo, Uninstaller
from installer.core.records import read_state

STATE_FILES = (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MANIFEST)
KEPT = (paths.STATE_DIR, paths.BACKUP_DIR)  # the backups stay, and the folder that holds them


def state_text(config, facts, decisions, ctx) -> str:
    previous = read_state(facts.files.get(paths.STATE_FILE))
    lines = [
        f"version={ctx.version}",
        f"installed_at={previous.get('installed_at') or ctx.now}",
        f"mode={decisions.mode}",
        f"webserver={webserver(decisions)}",
        f"mtls={'enabled' if config.enable_mtls else 'disabled'}",
    ]
    if config.enable_mtls and config.mtls_ca_file:  # trusted, kept elsewhere: clients are not issued here
        lines.append(f"mtls_ca_file={config.mtls_ca_file}")
        if config.mtls_crl_file:
            lines.append(f"mtls_crl_file={config.mtls_crl_file}")
    elif config.enable_mtls:
        lines.append(f"mtls_client_cn={config.mtls_client_cn}")
    return "\n".join(lines) + "\n"


def webserver(decisions) -> str:
    """What serves 80/443: in proxy mode the front (also on the first run, when the installer installs
    it and nothing listened yet: a re-run must record the same), else what listened."""
    if decisions.front is not None:
        return decisions.front.name
    return decisions.webserver if decisions.webserver != "unknown" else "none"


def plan_state(config, facts, decisions, ctx) -> List[Step]:
    return [Step("Recording installation state", (
        Directory(paths.STATE_DIR, 0o700, reason="installer state and backups"),
        Directory(paths.BACKUP_DIR, 0o700, reason="previous versions of replaced files"),
        File(paths.DOMAIN_FILE, f"{config.domain}\n".encode(), 0o644, reason="domain of this server"),
        File(paths.STATE_FILE, state_text(config, facts, decisions, ctx).encode(), 0o644,
             reason="mode and mTLS of this installation"),
    ))]


# --- uninstall ------------------------------------------------------------------------------------


def is_material(path: str) -> bool:
    """Keys and certificates users depend on: kept unless --purge."""
    return path == paths.MTLS_DIR or path.startswith(paths.MTLS_DIR + "/")


def backups_of(entries: Mapping[str, dict]) -> tuple:
    """The backups uninstall reads to put foreign files back."""
    return tuple(entry["backup"] for entry in entries.values() if entry.get("backup"))


def _undone(path: str, options) -> bool:
    """A recorded path uninstall acts on (the state, the backups and, without --purge, the material stay)."""
    return not (path in KEPT or path in STATE_FILES or (is_material(path) and not options.purge))


def missing_backups(entries, facts, options) -> List[str]:
    """One line for each replaced file uninstall keeps because its backup is gone: it cannot tell
    the installer's version from the user's, so it leaves the file there rather than delete theirs."""
    return [f"kept {path}: it replaced a file that was there before, and that file's backup {entry['backup']} "
            "is missing, so it cannot be put back; check it and edit or remove it yourself"
            for path, entry in sorted(entries.items())
            if _undone(path, options) and _backup_gone(entry, facts)]


def _backup_gone(entry: dict, facts) -> bool:
    return entry.get("origin") == manifest.REPLACED and entry["backup"] not in facts.files \
        and entry["backup"] not in facts.dirs


def uninstall_files(entries, facts, options) -> List[Step]:
    actions = []
    # deepest first, so that a folder comes after what is in it
    for path in sorted(entries, key=lambda p: (-p.count("/"), p)):
        entry = entries[path]
        if not _undone(path, options):
            continue
        if _backup_gone(entry, facts):
            continue  # kept, and said (missing_backups)
        if entry.get("origin") == manifest.REPLACED and entry.get("backup") in facts.files:
            actions.append(File(path, facts.files[entry["backup"]], int(entry.get("mode", "644"), 8),
                                entry.get("owner", "root"), entry.get("group", "root"),
                                sensitive=entry.get("sensitive", False),
                                own_lines=(),  # the user's file: none of its lines is shown (engine/diff.py)
                                reason=f"put back the original from {entry['backup']}"))
        elif entry.get("kind") == "directory":
            actions.append(Absent(path, "made by the installer", if_empty=True))
        else:
            actions.append(Absent(path, "written by the installer"))
    return [Step("Removing the installer's files", tuple(actions))] if actions else []


def kept_entries(entries: Mapping[str, dict], purge: bool) -> dict:
    """The manifest entries an uninstall leaves in place: the material, and the folders holding it."""
    if purge:
        return {}
    material = [path for path in entries if is_material(path)]
    return {path: entry for path, entry in entries.items()
            if path in material or any(other.startswith(path.rstrip("/") + "/") for other in material)
            and path not in KEPT}


def uninstall_state(entries, facts, options) -> List[Step]:
    kept = kept_entries(entries, options.purge)
    state = [Absent(path, "installer state") for path in STATE_FILES if path != paths.MANIFEST]
    if kept:  # what stays is still recorded, so that a later --purge removes it (and its folders)
        state.append(File(paths.MANIFEST, manifest.dump(kept), 0o600, reason="the kept mTLS material"))
    else:
        state.append(Absent(paths.MANIFEST, "installer state"))
    return [Step("Removing the installation state", tuple(state))]


CONCERN = Concern(
    name="state",
    reads=lambda config: STATE_FILES,
    planners=(Planner(Phase.STATE, plan_state),),
    uninstall=(Uninstaller(Undo.FILES, uninstall_files), Uninstaller(Undo.STATE, uninstall_state)),
    uninstall_reads=backups_of,
)
