"""The last windows of a run (issue 18, items 5-7): a stop signal at any moment leaves the old tree or
the new one and says which; every record a command needs is checked before its first write; /proc
under ``--root`` is the tree's, read as safely as every other file there.

Each case runs the installer as a user does (``cli.main`` on a ``--root`` tree) and asserts what that
user observes: the exit status, the line that explains it, and the tree.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from installer.commands import client as client_command
from installer.commands import install as install_command
from installer.concerns import pki
from installer.core import facts as host_facts
from installer.core import fs as fsafe
from installer.core import manifest, paths
from installer.core.paths import Root
from installer.engine import engine
from installer.ui import console, report

from helpers import tree_digest
import test_hardening
from test_hardening import ENV, MTLS, REPO, as_nobody, as_root, give_to_nobody, host, install

pytestmark = pytest.mark.usefixtures("small_ca_keys")

root = test_hardening.root  # the same fixture: a --root tree holding a Debian os-release

# What a run writes whatever happens: its log, its lock, and the backups it keeps (never removed).
BOOKKEEPING = (paths.LOG_FILE, paths.LOCK_FILE, paths.BACKUP_DIR)


def kept(root):
    """The tree without the run's own bookkeeping (and the folders made to hold it)."""
    own = tuple(path.lstrip("/") for path in BOOKKEEPING)
    holders = {"/".join(path.split("/")[:depth]) for path in own for depth in range(1, path.count("/") + 1)}
    return [entry for entry in tree_digest(root) if not entry[0].startswith(own) and entry[0] not in holders]


# --- 5. a stop signal at any moment ---------------------------------------------------------------


def stop_now():
    """SIGTERM to this thread, as systemd or cloud-init sends it (the installer is one thread)."""
    signal.raise_signal(signal.SIGTERM)


def _before_apply(monkeypatch):
    real = engine.Engine.apply

    def apply(self, *args, **kwargs):
        stop_now()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(engine.Engine, "apply", apply)


def _mid_apply(monkeypatch):
    real, count = fsafe.Tree.write, []

    def write(self, path, *args, **kwargs):
        if not path.startswith(paths.BACKUP_DIR + "/"):
            count.append(path)
            if len(count) == 3:
                stop_now()
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(fsafe.Tree, "write", write)


def _after_the_last_action(monkeypatch):
    """Every action applied, the manifest not written yet."""
    real = report.Progress.after

    def after(self, item):
        real(self, item)
        if item is self.items[-1]:
            stop_now()

    monkeypatch.setattr(report.Progress, "after", after)


def _when_apply_returns(monkeypatch):
    """Where issue 18 item 5 found the SIGTERM: the actions done, the manifest (written after this,
    before) missing, and "stopped before anything was changed"."""
    real = engine.Engine.apply

    def apply(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        stop_now()
        return result

    monkeypatch.setattr(engine.Engine, "apply", apply)


def _while_the_manifest_is_written(monkeypatch):
    real = install_command.write_manifest

    def write_manifest(*args):
        stop_now()
        return real(*args)

    monkeypatch.setattr(install_command, "write_manifest", write_manifest)


def _after_the_manifest(monkeypatch):
    monkeypatch.setattr(install_command, "remove_old_extractions", lambda build_id: stop_now())


def _during_the_report(monkeypatch):
    real = console.Console.plain

    def plain(self, text="", *args, **kwargs):
        real(self, text, *args, **kwargs)
        if text.startswith("  Connection URL:"):
            stop_now()

    monkeypatch.setattr(console.Console, "plain", plain)


OLD, NEW = "old", "new"
BOUNDARIES = [
    (_before_apply, OLD, "✗ stopped by SIGTERM before anything was changed"),
    (_mid_apply, OLD, "✗ stopped by SIGTERM\n"),
    (_after_the_last_action, OLD, "✗ stopped by SIGTERM\n"),
    (_while_the_manifest_is_written, NEW, "✗ stopped by SIGTERM after the run was complete: its "),
    (_when_apply_returns, NEW, "✗ stopped by SIGTERM after the run was complete: its "),
    (_after_the_manifest, NEW, "✗ stopped by SIGTERM after the run was complete: its "),
    (_during_the_report, NEW, "✗ stopped by SIGTERM after the run was complete: its "),
]


def assert_new_and_converged(root, env):
    """The tree is the complete new one: a run without a stop finds nothing to do and writes nothing
    (a missing or stale manifest would be written now)."""
    before = kept(root)
    status, out = install(root, env, "--json")
    assert status == 0 and json.loads(out)["changed"] == 0, out
    assert kept(root) == before
    recorded = manifest.load(open(host(root, paths.MANIFEST), "rb").read())
    assert recorded[paths.CA_KEY]["origin"] == manifest.CREATED


@pytest.mark.parametrize("inject,state,message", BOUNDARIES, ids=[b[0].__name__.strip("_") for b in BOUNDARIES])
def test_a_stop_at_any_moment_leaves_the_old_tree_or_the_new_one_and_says_which(root, monkeypatch, inject, state,
                                                                               message):
    """An installed server gets mTLS (new CA, client, index, CRL, a changed vector.toml, state and
    manifest); SIGTERM arrives at one boundary of that run."""
    assert install(root)[0] == 0
    old = kept(root)
    with monkeypatch.context() as patch:
        inject(patch)
        status, out = install(root, MTLS)
    assert status == 128 + signal.SIGTERM, out
    assert message in out, out
    if state == OLD:
        assert kept(root) == old, "every file (the manifest too) as before the run"
        if "before anything" not in message:
            assert "put back" in out and "running the installer again is safe" in out
        assert "after the run was complete" not in out
        assert ("before anything was changed" in out) == ("before anything" in message)
        status, out = install(root, MTLS)
        assert status == 0, out
    else:
        assert "only its report was cut short" in out and "before anything was changed" not in out
        assert f"(previous versions in {paths.BACKUP_DIR}/" in out and "put back" not in out
    assert_new_and_converged(root, MTLS)


def test_a_failure_once_the_manifest_is_written_puts_the_previous_manifest_back(root, monkeypatch):
    """The manifest is part of what a rollback puts back: the disk fills up as its folder is synced."""
    import errno

    assert install(root)[0] == 0
    old = kept(root)
    real, failed = fsafe.Tree.write, []

    def write(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        if path == paths.MANIFEST and not failed:  # once: the rollback's own write of it succeeds
            failed.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(fsafe.Tree, "write", write)
        status, out = install(root, MTLS)
    assert status == 1 and "No space left on device" in out and "put back" in out, out
    assert kept(root) == old, "the first install's manifest, not the new one"


COMMIT_DRIVER = r"""
import os, signal, sys
sys.path.insert(0, {repo!r})
from installer.commands import cli, install
from installer.concerns import pki
pki.CA_RSA_BITS = 2048
real = install.write_manifest
def write_manifest(*args):
    os.kill(os.getpid(), signal.SIGTERM)  # to the process, as systemd and cloud-init send it
    return real(*args)
install.write_manifest = write_manifest
sys.exit(cli.main(["--root", {root!r}, "--yes"], environ={env!r}))
"""


def test_a_stop_sent_to_the_process_while_the_manifest_is_written_waits_for_the_commit(root):
    """The in-process cases signal their own thread; here the signal goes to the process, as from outside."""
    assert install(root)[0] == 0
    script = COMMIT_DRIVER.format(repo=REPO, root=str(root), env=dict(MTLS))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 128 + signal.SIGTERM, result.stdout + result.stderr
    assert "✗ stopped by SIGTERM after the run was complete: its " in result.stdout
    assert_new_and_converged(root, MTLS)


def test_a_stop_where_the_manifest_was_missing_leaves_a_replaced_file_to_put_back(root, monkeypatch):
    """Before: files written, no manifest, "stopped before anything was changed"; the re-run then
    recorded the user's vector.toml as adopted and uninstall deleted it."""
    theirs = b"# the user's own Vector configuration\n[sources.mine]\ntype = \"host_metrics\"\n"
    os.makedirs(host(root, "/etc/vector"))
    with open(host(root, paths.VECTOR_CONFIG), "wb") as handle:
        handle.write(theirs)
    with monkeypatch.context() as patch:
        _when_apply_returns(patch)
        status, out = install(root)
    assert status == 128 + signal.SIGTERM and "after the run was complete" in out, out
    entry = manifest.load(open(host(root, paths.MANIFEST), "rb").read())[paths.VECTOR_CONFIG]
    assert entry["origin"] == manifest.REPLACED
    assert install(root)[0] == 0
    status, out = install(root, ENV, "uninstall")
    assert status == 0, out
    assert open(host(root, paths.VECTOR_CONFIG), "rb").read() == theirs


def test_a_second_signal_does_not_cut_the_first_ones_report_short(root, monkeypatch):
    """systemd's SIGTERM during the summary, then a Ctrl-C while the stop is reported: one line says
    what the first found, and the exit status is the first's."""
    assert install(root)[0] == 0
    real = console.Console.fail

    def fail(self, text):
        signal.raise_signal(signal.SIGINT)
        return real(self, text)

    with monkeypatch.context() as patch:
        _during_the_report(patch)
        patch.setattr(console.Console, "fail", fail)
        status, out = install(root, MTLS)
    assert status == 128 + signal.SIGTERM and "SIGINT" not in out, out
    assert "stopped by SIGTERM after the run was complete" in out
    assert_new_and_converged(root, MTLS)


def test_a_stop_after_a_client_is_issued_says_it_is_issued(root, monkeypatch):
    """Every changing command commits through the engine: ``client issue`` too."""
    assert install(root, MTLS)[0] == 0
    with monkeypatch.context() as patch:
        patch.setattr(client_command, "_issued", lambda *args: stop_now())
        status, out = install(root, MTLS, "client", "issue", "carol", "--yes")
    assert status == 128 + signal.SIGTERM
    assert "stopped by SIGTERM after the run was complete: its " in out, out
    assert os.path.exists(host(root, paths.client_bundle("carol")))
    index = json.loads(open(host(root, paths.MTLS_INDEX)).read())
    assert [item["name"] for item in index["certificates"] if item["status"] == "active"].count("carol") == 1


# --- 6. every record is checked before the first write --------------------------------------------


DAMAGED = {
    paths.STATE_FILE: (b"mode=bogus\n", "install.state is damaged (line 1"),
    paths.DOMAIN_FILE: (b"not a host name!\n", "domain is damaged (it does not hold a host name)"),
    paths.MANIFEST: (b"{truncated", "manifest.json is damaged (not JSON"),
    paths.MTLS_INDEX: (b"[]", "index.json is damaged (it has no certificate list)"),
    paths.MTLS_CRL: (b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "crl.pem is damaged"),
    paths.CA_KEY: (b"not a key\n", "cannot read the CA key"),
    paths.CA_CERT: (b"not a certificate\n", "cannot read the CA certificate"),
}
SERVER_COMMANDS = {
    "client issue": (("client", "issue", "carol", "--yes"),
                     (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MTLS_INDEX, paths.MTLS_CRL, paths.CA_KEY,
                      paths.CA_CERT)),
    "client renew": (("client", "renew", "bob"),
                     (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MTLS_INDEX, paths.MTLS_CRL, paths.CA_KEY,
                      paths.CA_CERT)),
    "client renew --all-expiring": (("client", "renew", "--all-expiring", "400"),
                                    (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MTLS_INDEX, paths.MTLS_CRL,
                                     paths.CA_KEY)),
    "client revoke": (("client", "revoke", "bob", "--yes"),
                      (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MTLS_INDEX, paths.MTLS_CRL, paths.CA_KEY,
                       paths.CA_CERT)),
    # uninstall reads the manifest and the domain (certbot's certificate); the others it only removes
    "uninstall --purge": (("uninstall", "--purge"), (paths.MANIFEST, paths.DOMAIN_FILE)),
    "install": ((), (paths.STATE_FILE, paths.DOMAIN_FILE, paths.MANIFEST, paths.MTLS_INDEX, paths.MTLS_CRL,
                     paths.CA_KEY)),
}
SERVER_CASES = [(name, record) for name, (_, records) in SERVER_COMMANDS.items() for record in records]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A server with mTLS and a second client, bob (made once; each case works on a copy)."""
    tree = tmp_path_factory.mktemp("installed") / "root"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pki, "CA_RSA_BITS", 2048)
        assert install(tree, MTLS)[0] == 0
        assert install(tree, MTLS, "client", "issue", "bob", "--yes")[0] == 0
    return tree


def damage(tree, path):
    with open(host(tree, path), "wb") as handle:
        handle.write(DAMAGED[path][0])


@pytest.mark.parametrize("command,record", SERVER_CASES, ids=[f"{c}-{os.path.basename(r)}" for c, r in SERVER_CASES])
def test_a_damaged_record_stops_a_command_before_its_first_write(installed, tmp_path, command, record):
    tree = tmp_path / "root"
    shutil.copytree(installed, tree, symlinks=True)
    damage(tree, record)
    before = tree_digest(tree)
    status, out = install(tree, MTLS, *SERVER_COMMANDS[command][0])
    assert status == 1 and DAMAGED[record][1] in out, out
    assert "nothing was changed" in out
    own = (paths.LOG_FILE.lstrip("/"), paths.LOCK_FILE.lstrip("/"))  # the run's log and the lock's pid
    assert [e for e in tree_digest(tree) if e[0] not in own] == [e for e in before if e[0] not in own]


@pytest.fixture(scope="module")
def ca_folders(tmp_path_factory):
    """A CA folder with a client, and a copy of it in the middle of a rollover."""
    base = tmp_path_factory.mktemp("ca")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pki, "CA_RSA_BITS", 2048)
        assert install(base, {}, "ca", "init", "--dir", str(base / "plain"))[0] == 0
        assert install(base, {}, "client", "issue", "bob", "--ca-dir", str(base / "plain"), "--yes")[0] == 0
        shutil.copytree(base / "plain", base / "rolling")
        assert install(base, {}, "ca", "rotate", "--dir", str(base / "rolling"))[0] == 0
    return base


FOLDER_DAMAGE = {"index.json": b"[]", "crl.pem": DAMAGED[paths.MTLS_CRL][0], "ca.key": b"not a key\n",
                 "previous/ca.crt": b"not a certificate\n"}
FOLDER_CASES = [(folder, argv, name) for folder, argv, names in (
    ("plain", ("ca", "rotate", "--dir"), ("index.json", "crl.pem", "ca.key")),
    ("rolling", ("ca", "finish", "--dir"), ("index.json", "crl.pem", "ca.key", "previous/ca.crt")),
    ("rolling", ("client", "issue", "carol", "--yes", "--ca-dir"), ("index.json", "crl.pem", "ca.key",
                                                                    "previous/ca.crt")),
) for name in names]


@pytest.mark.parametrize("folder,argv,name", FOLDER_CASES,
                         ids=[f"{' '.join(a[:2])}-{f}-{n}" for f, a, n in FOLDER_CASES])
def test_a_damaged_record_of_a_ca_folder_stops_before_the_first_write(ca_folders, tmp_path, folder, argv, name):
    tree = tmp_path / "ca"
    shutil.copytree(ca_folders / folder, tree)
    with open(tree / name, "wb") as handle:
        handle.write(FOLDER_DAMAGE[name])
    before = tree_digest(tree)
    status, out = install(tmp_path, {}, *argv, str(tree))
    assert status == 1 and "nothing was changed" in out, out
    assert [e for e in tree_digest(tree) if e[0] != ".lock"] == [e for e in before if e[0] != ".lock"]


# --- 7. /proc under --root ------------------------------------------------------------------------


DRY_RUN = r"""
import sys
sys.path.insert(0, {repo!r})
from installer.commands import cli
sys.exit(cli.main(["--root", {root!r}, "--dry-run"], environ={env!r}))
"""


def dry_run(root):
    """A dry run in its own process, bounded: a planted FIFO that is opened hangs it, and the test fails."""
    script = DRY_RUN.format(repo=REPO, root=str(root), env=dict(ENV))
    try:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the dry run hung on what was planted in /proc")


def listening_on_4096():
    return ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 00000000:1000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242\n")


@as_root
def test_a_fifo_planted_at_proc_1_comm_is_named_not_opened(root):
    give_to_nobody(host(root, "/proc/1"))
    as_nobody(host(root, "/proc/1"), lambda: os.mkfifo("comm"))
    result = dry_run(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "/proc/1/comm is a FIFO" in result.stdout and "it was not read" in result.stdout


@as_root
@pytest.mark.parametrize("name,content,followed", [
    ("meminfo", "MemTotal:        1024 kB\n", "MB of memory"),
    ("net/tcp", listening_on_4096(), "port 4096 is already used"),
])
def test_a_link_planted_in_proc_is_not_followed_out_of_the_tree(root, tmp_path, name, content, followed):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / os.path.basename(name)).write_text(content)
    folder = host(root, os.path.dirname(f"/proc/{name}"))
    give_to_nobody(host(root, "/proc"))
    give_to_nobody(folder)
    target = str(outside / os.path.basename(name))
    as_nobody(folder, lambda: os.symlink(target, os.path.basename(name)))
    result = dry_run(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"refusing /proc/{name}: /proc/{name} is a symbolic link that root did not make" in result.stdout
    assert followed not in result.stdout + result.stderr


@as_root
def test_a_pid_folder_planted_as_a_link_does_not_name_a_ports_holder(root, tmp_path):
    """/proc/<pid> -> a folder outside whose fd/ holds the listening socket and comm says nginx: followed,
    the run would take nginx for the web server on port 80 and go into proxy mode."""
    fake = tmp_path / "outside/4242"
    (fake / "fd").mkdir(parents=True)
    (fake / "comm").write_text("nginx\n")
    os.symlink("socket:[4242]", fake / "fd/3")
    os.makedirs(host(root, "/proc/net"))
    with open(host(root, "/proc/net/tcp"), "w") as handle:
        handle.write(listening_on_4096().replace(":1000 ", ":0050 "))  # port 80
    give_to_nobody(host(root, "/proc"))
    as_nobody(host(root, "/proc"), lambda: os.symlink(str(fake), "4242"))
    status, out = install(root, ENV, "--dry-run")
    assert status == 1 and "refusing /proc/4242/fd: /proc/4242 is a symbolic link that root did not make" in out, out
    assert "mode: proxy" not in out


def test_a_link_root_made_in_proc_stays_inside_the_tree(root, tmp_path):
    """A link root could alone have made is followed, but inside DIR: an absolute target is DIR/<target>."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "meminfo").write_text("MemTotal:        1024 kB\n")
    os.makedirs(host(root, "/proc"))
    os.symlink(str(outside / "meminfo"), host(root, "/proc/meminfo"))
    facts = host_facts.gather(Root(str(root)), {})
    assert facts.mem_total_mb is None  # DIR/<outside>/meminfo does not exist; the file outside is not read
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    (root / str(outside).lstrip("/") / "meminfo").write_text("MemTotal:        2097152 kB\n")
    assert host_facts.gather(Root(str(root)), {}).mem_total_mb == 2048


def test_without_root_the_kernels_proc_is_read():
    with open("/proc/meminfo") as handle:
        total = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1]) // 1024
    facts = host_facts.gather(Root("/"), {})
    assert facts.mem_total_mb == total
    with open("/proc/1/comm", "rb") as handle:
        assert facts.systemd_running == (handle.read().strip() == b"systemd")
