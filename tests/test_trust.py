"""Nothing another user owns or can write is taken over or trusted (issue 18, items 1, 2 and 8).

Each case is what a local attacker does on a shared server: a folder on the installer's paths that
another user owns (or a group other than root's can write), files planted in it by that user — a
real non-root uid, ``nobody``, through ``setpriv`` — then the installer run as root on the ``--root``
tree, as a user runs it (``cli.main``). What is asserted is what the user sees: the exit status, the
one line that names the folder or file and the command that fixes it, and that nothing changed.
"""

import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from installer.core import fs, manifest, paths, records
from installer.core.actions import Directory
from installer.core.errors import EXIT_FAIL
from installer.core.fs import Tree, UnsafePath
from installer.core.paths import Root
from installer.engine import engine
from installer.plans.registry import Context, build_plan

from helpers import RecordingRunner, make_config, make_facts, tree_digest
import test_hardening
from test_hardening import ENV, MTLS, NOBODY, host
from test_hardening import install as run

root = test_hardening.root  # the fixture: a --root tree with /etc/os-release

NOGROUP = 65534

pytestmark = [pytest.mark.usefixtures("small_ca_keys"),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                 reason="planting files as another user needs root and setpriv")]


def as_nobody(*argv, cwd=None):
    """Run ``argv`` as the real user nobody (uid and gid 65534, no other groups)."""
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups", *argv],
                   cwd=cwd, check=True, capture_output=True)


def give_to_nobody(root, path, mode=0o755):
    os.makedirs(host(root, path), exist_ok=True)
    os.chown(host(root, path), NOBODY, NOGROUP)
    os.chmod(host(root, path), mode)


def plant_ca(folder):
    """A CA key and certificate made by nobody, in ``folder``: whoever holds this key could mint
    client certificates that Vector accepts, if the installer took it as the server's CA."""
    as_nobody("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=planted", "-days", "30", cwd=folder)


def refusal(out):
    """The one line of a refusal (without its mark), and the fix command it names."""
    lines = [line.strip().lstrip("✗ ").strip() for line in out.splitlines() if "refusing" in line]
    assert len(lines) == 1, out
    fix = re.search(r"`([^`]*)`", lines[0])
    return lines[0], fix.group(1) if fix else None


def unchanged_but_log(before, root):
    """Nothing changed but the run's lock (/run/actvt) and its log, which records the refusal."""
    def kept(entries):
        return [e for e in entries if not e[0].startswith(("run", "var/log")) and e[0] != "var"]
    return kept(tree_digest(root)) == kept(before)


# --- 1. a folder another user owns is refused, with what fixes it ----------------------------------------


def test_a_planted_ca_in_a_foreign_mtls_folder_is_refused_then_the_fix_works(root):
    give_to_nobody(root, paths.VECTOR_CERT_DIR)
    give_to_nobody(root, paths.MTLS_DIR)
    plant_ca(host(root, paths.MTLS_DIR))
    planted = open(host(root, paths.CA_KEY), "rb").read()
    before = tree_digest(root)
    for args in (("--dry-run",), ()):  # a dry run says it too
        status, out = run(root, MTLS, *args)
        line, fix = refusal(out)
        assert status == EXIT_FAIL and unchanged_but_log(before, root)
        folder = host(root, paths.VECTOR_CERT_DIR)
        assert line == (f"refusing to write into {paths.VECTOR_CERT_DIR}: it is owned by uid 65534 "
                        "(nobody:nogroup, mode 0755), so another user could change what the installer keeps there; "
                        f"fix it with `chown root:root {folder}; chmod go-w {folder}`, then run again")
        assert "owner nobody:nogroup -> root:root" not in out
    # the documented fix, as the user runs it, for each folder named in turn; then the planted files
    # themselves are named: nobody made them, so they are moved away, not trusted
    subprocess.run(fix, shell=True, check=True)
    status, out = run(root, MTLS)
    line, fix = refusal(out)
    assert status == EXIT_FAIL and line.startswith(f"refusing to write into {paths.MTLS_DIR}: it is owned by uid 65534")
    subprocess.run(fix, shell=True, check=True)
    status, out = run(root, MTLS)
    line, _ = refusal(out)
    assert status == EXIT_FAIL and line.startswith(f"refusing to read {paths.CA_CERT}: it is owned by uid 65534 "
                                                   "(nobody:nogroup, mode 0644), not written by the installer alone")
    assert open(host(root, paths.CA_KEY), "rb").read() == planted
    for name in ("ca.crt", "ca.key"):
        os.rename(host(root, f"{paths.MTLS_DIR}/{name}"), str(root / f"planted-{name}"))
    status, out = run(root, MTLS)
    assert status == 0, out
    assert open(host(root, paths.CA_KEY), "rb").read() != planted
    st = os.stat(host(root, paths.CA_KEY))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


def test_a_foreign_state_folder_with_a_planted_manifest_is_refused_and_uninstall_deletes_nothing(root):
    assert run(root)[0] == 0
    important = root / "etc/important"
    important.write_text("the admin's\n")
    os.chown(host(root, paths.STATE_DIR), NOBODY, NOGROUP)
    os.unlink(host(root, paths.MANIFEST))
    entries = {"/etc/important": {"origin": "created", "kind": "file"}}
    as_nobody("sh", "-c", f"printf '%s' '{json.dumps({'version': 1, 'paths': entries})}' > manifest.json",
              cwd=host(root, paths.STATE_DIR))
    before = tree_digest(root)
    for args in ((), ("uninstall",), ("uninstall", "--dry-run")):
        status, out = run(root, ENV, *args)
        line, _ = refusal(out)
        assert status == EXIT_FAIL and line.startswith(
            f"refusing to write into {paths.STATE_DIR}: it is owned by uid 65534 (nobody:nogroup, mode 0700)"), out
        assert important.exists() and unchanged_but_log(before, root)
    os.chown(host(root, paths.STATE_DIR), 0, 0)  # the folder's fix: the planted record is still named
    for args in ((), ("uninstall",)):
        status, out = run(root, ENV, *args)
        line, _ = refusal(out)
        assert status == EXIT_FAIL and line.startswith(f"refusing to read {paths.MANIFEST}: it is owned by uid 65534")
        assert important.exists()


@pytest.mark.parametrize("path", [paths.STATE_FILE, paths.DOMAIN_FILE, paths.MTLS_INDEX, paths.MTLS_CRL,
                                  paths.CA_PENDING, paths.client_cert("actvt-client-001")])
def test_a_record_another_user_owns_is_not_read(root, path):
    """Every record, also one left in a root-owned folder (from when the folder was someone else's)."""
    assert run(root, MTLS)[0] == 0
    if not os.path.exists(host(root, path)):
        open(host(root, path), "w").write("{}\n")
    os.chown(host(root, path), NOBODY, NOGROUP)
    before = tree_digest(root)
    status, out = run(root, MTLS)
    line, fix = refusal(out)
    assert status == EXIT_FAIL and line.startswith(f"refusing to read {path}: it is owned by uid 65534")
    assert fix == f"chown root:root {host(root, path)}; chmod go-w {host(root, path)}"
    assert unchanged_but_log(before, root)
    if path.startswith(paths.MTLS_DIR):  # a command that only reads the mTLS records trusts it no more
        status, out = run(root, MTLS, "client", "list")
        assert status == EXIT_FAIL and f"refusing to read {path}" in out


def test_a_record_a_non_root_group_can_write_is_not_read(root):
    assert run(root)[0] == 0
    os.chown(host(root, paths.STATE_FILE), 0, NOGROUP)
    os.chmod(host(root, paths.STATE_FILE), 0o664)
    status, out = run(root)
    assert status == EXIT_FAIL and f"refusing to read {paths.STATE_FILE}: it is owned by uid 0 (root:nogroup, " \
        "mode 0664, writable by group nogroup)" in out


def test_every_folder_a_plan_writes_into_is_refused_when_another_user_owns_it(tmp_path):
    """The list is the plan's (proxy mode with mTLS and the firewall: the most folders), not a hand-made one."""
    cfg = make_config(install_mode="proxy", enable_mtls="yes")
    facts = make_facts(web="nginx", dirs=frozenset({"/etc/nginx/sites-enabled"}))
    plan = build_plan(cfg, facts, Context(version="1.0.0", now="2026-11-26T00:00:00Z"))
    folders = {os.path.dirname(a.path) for a in plan.actions if hasattr(a, "path")}
    folders |= {a.path for a in plan.actions if isinstance(a, Directory)}
    for expected in (paths.VECTOR_CERT_DIR, paths.MTLS_DIR, paths.PROXY_DIR, paths.STATE_DIR, paths.BACKUP_DIR,
                     os.path.dirname(paths.DEPLOY_HOOK), "/etc/nginx/sites-available", paths.LIB_DIR):
        assert expected in folders
    for number, folder in enumerate(sorted(folders)):
        for owner, group, mode in ((NOBODY, 0, 0o755), (0, NOGROUP, 0o775), (0, 0, 0o757)):
            tree = tmp_path / f"{number}-{mode:o}"
            os.makedirs(host(tree, folder))
            os.chown(host(tree, folder), owner, group)
            os.chmod(host(tree, folder), mode)
            with pytest.raises(UnsafePath) as refused:
                engine.Engine(Root(str(tree)), RecordingRunner()).check(plan)
            assert str(refused.value).startswith(f"refusing to write into {folder}: it is owned by uid {owner} "), folder
            assert f"`chown root:root {host(tree, folder)}; chmod go-w {host(tree, folder)}`" in str(refused.value)
            assert os.listdir(host(tree, folder)) == []


def test_vectors_own_account_from_the_old_installer_is_adopted_any_other_is_not(root, monkeypatch):
    """The bash installer left /etc/vector/certs/mtls vector:vector (docs/mtls.md): it is given back to
    root. ``nobody`` stands for vector here (this host has no vector user); with vector as Vector's
    account the same folder of nobody's is refused."""
    assert run(root, MTLS)[0] == 0
    os.chown(host(root, paths.MTLS_DIR), NOBODY, NOGROUP)
    os.chown(host(root, paths.CA_KEY), NOBODY, NOGROUP)
    status, out = run(root, MTLS)
    assert status == EXIT_FAIL and f"refusing to write into {paths.MTLS_DIR}" in out
    monkeypatch.setattr(records, "SERVICE_USER", "nobody")
    status, out = run(root, MTLS)
    assert status == 0, out
    assert [os.stat(host(root, p)).st_uid for p in (paths.MTLS_DIR, paths.CA_KEY)] == [0, 0]


# --- manifest entries that point elsewhere ------------------------------------------------------------


@pytest.mark.parametrize("backup", ["/var/lib/actvt/backups/../../../etc/sudoers.d/planted",
                                    "/etc/sudoers.d/planted", "backups/20260101T000000Z/etc/default/vector"])
def test_a_replaced_entry_whose_backup_is_elsewhere_is_a_damaged_record(root, backup):
    (root / "etc/sudoers.d").mkdir(parents=True)
    (root / "etc/sudoers.d/planted").write_text("nobody ALL=(ALL) NOPASSWD: ALL\n")
    assert run(root)[0] == 0
    entries = json.loads(open(host(root, paths.MANIFEST)).read())
    entries["paths"][paths.VECTOR_DEFAULTS] = {"origin": "replaced", "kind": "file", "backup": backup,
                                               "mode": "0440", "owner": "root", "group": "root"}
    open(host(root, paths.MANIFEST), "w").write(json.dumps(entries))
    before = tree_digest(root)
    for args in ((), ("uninstall",)):
        status, out = run(root, ENV, *args)
        assert status == EXIT_FAIL and f"{paths.MANIFEST} is damaged (entry '{paths.VECTOR_DEFAULTS}': its backup " \
            f"is not a path under {paths.BACKUP_DIR})" in out, out
        assert unchanged_but_log(before, root)


def test_backup_paths_are_read_normalised():
    data = json.dumps({"paths": {"/etc/x/../default/vector": {
        "origin": "replaced", "kind": "file", "backup": "/var/lib/actvt/backups/a/../b//etc/default/vector"}}})
    assert manifest.load(data.encode()) == {"/etc/default/vector": {
        "origin": "replaced", "kind": "file", "backup": "/var/lib/actvt/backups/b/etc/default/vector"}}


def test_a_restore_takes_mode_and_owner_from_the_record_not_from_the_backup(root):
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/vector").write_text("SECRET=1\n")
    os.chmod(host(root, paths.VECTOR_DEFAULTS), 0o600)
    assert run(root)[0] == 0
    backup = json.loads(open(host(root, paths.MANIFEST)).read())["paths"][paths.VECTOR_DEFAULTS]["backup"]
    os.chown(host(root, backup), NOBODY, NOGROUP)  # the copy's own mode and owner are not the record
    os.chmod(host(root, backup), 0o666)
    status, out = run(root, ENV, "uninstall")
    assert status == 0, out
    st = os.stat(host(root, paths.VECTOR_DEFAULTS))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert open(host(root, paths.VECTOR_DEFAULTS)).read() == "SECRET=1\n"


# --- 2. a folder a group other than root's can write ---------------------------------------------------


def test_a_deploy_hook_folder_a_non_root_group_can_write_is_refused(root):
    hooks = os.path.dirname(paths.DEPLOY_HOOK)
    os.makedirs(host(root, hooks))
    os.chown(host(root, hooks), 0, NOGROUP)
    os.chmod(host(root, hooks), 0o775)
    before = tree_digest(root)
    status, out = run(root)
    line, fix = refusal(out)
    assert status == EXIT_FAIL and unchanged_but_log(before, root) and os.listdir(host(root, hooks)) == []
    assert line.startswith(f"refusing to write into {hooks}: it is owned by uid 0 (root:nogroup, mode 0775, "
                           "writable by group nogroup)")
    subprocess.run(fix, shell=True, check=True)
    assert run(root)[0] == 0 and os.path.exists(host(root, paths.DEPLOY_HOOK))


def test_group_write_by_roots_own_group_is_allowed(root):
    """gid 0's members are root's peers (they could as well be given root): its g+w is no one else's."""
    hooks = os.path.dirname(paths.DEPLOY_HOOK)
    os.makedirs(host(root, hooks))
    os.chmod(host(root, hooks), 0o775)
    assert run(root)[0] == 0 and os.path.exists(host(root, paths.DEPLOY_HOOK))


def test_the_write_rule_refuses_a_non_root_group_as_the_link_rule_does(tmp_path):
    """Tree.write itself, for a folder that became group-writable after the plan was checked."""
    tree = Tree(Root(str(tmp_path)))
    (tmp_path / "shared").mkdir()
    os.chown(tmp_path / "shared", 0, NOGROUP)
    os.chmod(tmp_path / "shared", 0o770)
    with pytest.raises(UnsafePath, match="refusing to write into /shared: it is owned by uid 0 .*group nogroup"):
        tree.write("/shared/file", b"x", 0o644)
    assert os.listdir(tmp_path / "shared") == []
    os.symlink("/elsewhere", tmp_path / "shared/link")  # root's link, in that folder: not followed either
    with pytest.raises(UnsafePath, match="symbolic link that root did not make"):
        tree.read("/shared/link/file")
    assert fs.trusted(os.stat(tmp_path)) and not fs.trusted(os.stat(tmp_path / "shared"))


# --- 8. uninstall keeps a replaced file whose backup is gone --------------------------------------------


def test_uninstall_keeps_a_replaced_file_whose_backup_is_gone_and_says_so(root):
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/vector").write_text("# the admin's own settings\n")
    assert run(root)[0] == 0
    written = open(host(root, paths.VECTOR_DEFAULTS)).read()
    for name in os.listdir(host(root, paths.BACKUP_DIR)):  # cleaned by hand, or by a disk-space tool
        shutil.rmtree(host(root, f"{paths.BACKUP_DIR}/{name}"))
    backup = json.loads(open(host(root, paths.MANIFEST)).read())["paths"][paths.VECTOR_DEFAULTS]["backup"]
    said = (f"kept {paths.VECTOR_DEFAULTS}: it replaced a file that was there before, and that file's backup {backup} "
            "is missing, so it cannot be put back; check it and edit or remove it yourself")
    status, out = run(root, ENV, "uninstall", "--dry-run")
    assert status == 0 and said in out and f"remove {paths.VECTOR_DEFAULTS}" not in out
    status, out = run(root, ENV, "uninstall", "--json")
    assert status == 0 and said in out
    assert json.loads(out[out.index("{"):])["notes"] == [said]
    assert open(host(root, paths.VECTOR_DEFAULTS)).read() == written
    assert not os.path.exists(host(root, paths.VECTOR_CONFIG))  # what it made itself is gone
