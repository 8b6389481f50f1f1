"""``actvt uninstall``: remove what the installer wrote, as recorded in the manifest.

- Vector is stopped and disabled; its package is removed only with ``--remove-vector``.
- Every path of the manifest is removed when the installer created or adopted it; a foreign file the
  installer replaced is put back from its first backup. Folders the installer created go only when
  empty. Nothing the manifest does not name is touched.
- Kept unless ``--purge``: the mTLS CA, client certificates and bundles (``/etc/vector/certs/mtls``)
  and the Let's Encrypt lineage (with ``--purge``: ``certbot delete``).
- Kept always: ``/var/lib/actvt/backups``.
- nginx is checked and reloaded when its files changed; firewall rules the installer added are
  removed (see ``firewall``).
"""

from typing import List, Mapping, Optional

from installer.core import manifest
from installer.core import paths
from installer.core.actions import Absent, Command, File, Plan, Service, Step
from installer.core.facts import Facts

STATE_FILES = (paths.STATE_FILE, paths.DOMAIN_FILE, manifest.MANIFEST)
KEPT = (paths.STATE_DIR, paths.BACKUP_DIR)  # the backups stay, and the folder that holds them
NGINX_PACKAGES = ("nginx", "nginx-light", "nginx-full", "nginx-core", "nginx-extras")


def is_material(path: str) -> bool:
    """Keys and certificates users depend on: kept unless --purge."""
    return path == paths.MTLS_DIR or path.startswith(paths.MTLS_DIR + "/")


def watch(entries: Mapping[str, dict]) -> tuple:
    """The backups uninstall needs to read to put foreign files back."""
    return tuple(entry["backup"] for entry in entries.values() if entry.get("backup"))


def file_steps(entries: Mapping[str, dict], facts: Facts, purge: bool) -> List[Step]:
    actions = []
    # deepest first, so that a folder comes after what is in it
    for path in sorted(entries, key=lambda p: (-p.count("/"), p)):
        entry = entries[path]
        if path in KEPT or path in STATE_FILES or (is_material(path) and not purge):
            continue
        if entry.get("origin") == manifest.REPLACED and entry.get("backup") in facts.files:
            actions.append(File(path, facts.files[entry["backup"]], int(entry.get("mode", "644"), 8),
                                entry.get("owner", "root"), entry.get("group", "root"),
                                sensitive=entry.get("sensitive", False),
                                reason=f"put back the original from {entry['backup']}"))
        elif entry.get("kind") == "directory":
            actions.append(Absent(path, "made by the installer", if_empty=True))
        else:
            actions.append(Absent(path, "written by the installer"))
    return [Step("Removing the installer's files", tuple(actions))] if actions else []


def build_uninstall_plan(entries: Mapping[str, dict], facts: Facts, purge: bool, remove_vector: bool,
                         domain: Optional[str], extra_steps=()) -> Plan:
    steps: List[Step] = []
    if facts.has_package("vector"):
        steps.append(Step("Stopping Vector", (Service("vector", enabled=False, running=False,
                                                      reason="uninstall"),)))
    steps.extend(file_steps(entries, facts, purge))
    if purge:  # clients issued later with `actvt client issue` are not in the manifest
        steps.append(Step("Removing the mTLS material (--purge)", (Absent(paths.MTLS_DIR, "--purge"),)))
    nginx_paths = tuple(path for path in entries if path.startswith("/etc/nginx/"))
    if nginx_paths and any(facts.has_package(name) for name in NGINX_PACKAGES):
        steps.append(Step("Reloading nginx", (
            Command(("nginx", "-t"), "check nginx without the Actvt site", when_changed=nginx_paths),
            Command(("systemctl", "reload", "nginx"), "serve without the Actvt site", when_changed=nginx_paths),
        )))
    steps.extend(extra_steps)
    if purge and domain:
        steps.append(Step("Deleting the Let's Encrypt certificate", (
            Command(("certbot", "delete", "--non-interactive", "--cert-name", domain), "--purge"),)))
    if remove_vector and facts.has_package("vector"):
        manager = facts.package_manager or "apt"
        argv = ("apt-get", "remove", "-y", "vector") if manager == "apt" else (manager, "remove", "-y", "vector")
        steps.append(Step("Removing the Vector package", (Command(argv, "--remove-vector"),)))
    kept = kept_entries(entries, purge)
    state = [Absent(path, "installer state") for path in STATE_FILES if path != manifest.MANIFEST]
    if kept:  # what stays is still recorded, so that a later --purge removes it (and its folders)
        state.append(File(manifest.MANIFEST, manifest.dump(kept), 0o600, reason="the kept mTLS material"))
    else:
        state.append(Absent(manifest.MANIFEST, "installer state"))
    steps.append(Step("Removing the installation state", tuple(state)))
    return Plan(tuple(step for step in steps if step.actions))


def kept_entries(entries: Mapping[str, dict], purge: bool) -> dict:
    """The manifest entries an uninstall leaves in place: the material, and the folders holding it."""
    if purge:
        return {}
    material = [path for path in entries if is_material(path)]
    return {path: entry for path, entry in entries.items()
            if path in material or any(other.startswith(path.rstrip("/") + "/") for other in material)
            and path not in KEPT}
