"""Uninstall removes exactly what the installer wrote, puts foreign files back, keeps material."""

import json
import os

from installer.core import manifest
from installer.core import paths

from helpers import tree_digest
from helpers import run_cli as run


def make_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    (tmp_path / "etc/keep.conf").write_text("a foreign file\n")
    return tmp_path


def test_install_records_a_manifest(tmp_path):
    root = make_root(tmp_path)
    assert run(["--root", str(root)])[0] == 0
    entries = json.loads((root / manifest.MANIFEST.lstrip("/")).read_text())["paths"]
    assert entries[paths.STATE_FILE]["origin"] == "created"
    assert entries[paths.STATE_DIR] == {"origin": "created", "kind": "directory"}
    assert oct(os.stat(root / manifest.MANIFEST.lstrip("/")).st_mode & 0o777) == "0o600"


def test_uninstall_dry_run_then_uninstall(tmp_path):
    root = make_root(tmp_path)
    empty = tree_digest(root)
    assert run(["--root", str(root), "--json"], {"ACTVT_ENABLE_MTLS": "yes"})[0] == 0
    before = tree_digest(root)
    status, out = run(["uninstall", "--dry-run", "--root", str(root)])
    assert status == 0 and "remove /var/lib/actvt/install.state" in out and tree_digest(root) == before
    assert paths.CA_KEY not in out  # material is kept without --purge
    status, out = run(["uninstall", "--root", str(root)])
    assert status == 0, out
    left = {entry[0] for entry in tree_digest(root)}
    assert (root / "etc/keep.conf").read_text() == "a foreign file\n"
    assert not (root / "var/lib/actvt/install.state").exists() and not (root / "var/lib/actvt/domain").exists()
    assert (root / paths.CA_KEY.lstrip("/")).exists() and (root / paths.CA_CERT.lstrip("/")).exists()
    assert (root / "var/lib/actvt/backups").is_dir()
    assert not any(name.startswith("usr/local") for name in left)
    # with --purge the mTLS material goes too, and nothing the installer did not write is touched
    assert run(["--root", str(root), "--yes"], {"ACTVT_ENABLE_MTLS": "yes"})[0] == 0
    assert run(["uninstall", "--purge", "--root", str(root)])[0] == 0
    remaining = {entry[0] for entry in tree_digest(root)}
    assert not any(name.startswith("etc/vector") for name in remaining), remaining
    assert {e[0] for e in empty} <= remaining


def test_a_replaced_foreign_file_is_put_back(tmp_path):
    root = make_root(tmp_path)
    (root / "etc/vector").mkdir(parents=True)
    mine = "# the user's own Vector configuration\n[sources.in]\ntype = \"stdin\"\n"
    (root / "etc/vector/vector.toml").write_text(mine)
    os.chmod(root / "etc/vector/vector.toml", 0o640)
    assert run(["--root", str(root)])[0] == 0
    assert (root / "etc/vector/vector.toml").read_text() != mine
    entries = json.loads((root / manifest.MANIFEST.lstrip("/")).read_text())["paths"]
    assert entries[paths.VECTOR_CONFIG]["origin"] == "replaced" and entries[paths.VECTOR_CONFIG]["mode"] == "0640"
    assert run(["uninstall", "--root", str(root)])[0] == 0
    # the user's file is back, with its content and its mode; everything else foreign is as it was
    assert (root / "etc/vector/vector.toml").read_text() == mine
    assert oct(os.stat(root / "etc/vector/vector.toml").st_mode & 0o777) == "0o640"
    assert (root / "etc/keep.conf").read_text() == "a foreign file\n"


def test_nothing_installed(tmp_path):
    root = make_root(tmp_path)
    status, out = run(["uninstall", "--root", str(root)])
    assert status == 0 and "nothing to remove" in out
