"""Hostile filesystem state, runs stopped half-way, and "exit 2 means nothing changed" (issue 10).

Each case runs the installer as a user does (``cli.main`` on a ``--root`` tree) and asserts what that
user observes: the exit status, the one line that explains it, and the tree (and what lies outside
it) unchanged. Links "planted by someone else" are made by the ``nobody`` user in a folder that
allows it (these cases need root, as CI has; elsewhere they are skipped).
"""

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from installer.commands import cli
from installer.engine import engine
from installer.core import fs as fsafe
from installer.core import paths
from installer.concerns import pki
from installer.core.actions import Command, File, Plan, Step
from installer.core.errors import Interrupted
from installer.core.paths import Root

from helpers import DOMAIN, EMAIL, RecordingRunner, tree_digest

ENV = {"ACTVT_DOMAIN": DOMAIN, "ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"}
MTLS = dict(ENV, ACTVT_ENABLE_MTLS="yes")
NOBODY = 65534
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting files as another user needs root")


pytestmark = pytest.mark.usefixtures("small_ca_keys")


@pytest.fixture
def root(tmp_path):
    tree = tmp_path / "root"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    return tree


@pytest.fixture
def outside(tmp_path):
    """A folder beside the tree: nothing may ever be written there."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious").write_text("the user's\n")
    return folder


def install(root, env=ENV, *args):
    out = io.StringIO()
    status = cli.main(["--root", str(root), *args], environ=dict(env), stdout=out)
    return status, out.getvalue()


def host(root, path):
    return os.path.join(str(root), path.lstrip("/"))


def as_nobody(folder, action):
    """Run ``action()`` (e.g. ``os.symlink(…)`` of a relative name) as ``nobody`` inside ``folder``."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(folder)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child only reports failure
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, "the action as nobody failed"


def give_to_nobody(path):
    os.makedirs(path, exist_ok=True)
    os.chown(path, NOBODY, NOBODY)


def everything_outside(folder):
    return tree_digest(folder)


# --- 1. nothing follows a planted link ------------------------------------------------------------


@as_root
@pytest.mark.parametrize("folder,name", [
    ("/var/lib", "actvt"),  # the state and backups
    ("/etc/vector/certs", "mtls"),  # the CA key would be written through it
    ("/var/lib/actvt", "backups"),
])
def test_a_symlinked_folder_planted_by_another_user_is_refused(root, outside, folder, name):
    if folder == "/var/lib/actvt":  # an install first, so that the backups folder is not the first thing made
        assert install(root, MTLS)[0] == 0
        (root / "var/lib/actvt/backups").rmdir()
    give_to_nobody(host(root, folder))
    as_nobody(host(root, folder), lambda: os.symlink(str(outside), name))
    before = everything_outside(outside)
    status, out = install(root, MTLS)
    assert status == 1
    assert f"refusing to write into {folder}: it is owned by uid {NOBODY}" in out \
        or f"{folder}/{name} is a symbolic link that root did not make" in out
    assert everything_outside(outside) == before


@as_root
def test_a_link_planted_where_root_reads_is_not_followed(root, outside):
    """A link in a folder another user can write is not followed even for reading."""
    give_to_nobody(host(root, "/var/lib/actvt"))
    (outside / "install.state").write_text("mode=proxy\n")
    as_nobody(host(root, "/var/lib/actvt"), lambda: os.symlink(str(outside / "install.state"), "install.state"))
    status, out = install(root)
    assert status == 1 and "/var/lib/actvt/install.state is a symbolic link that root did not make" in out


def test_a_link_root_made_is_resolved_inside_the_root(root, outside):
    """Under --root an absolute link points into the tree (as on the server), never out of it."""
    (root / "var/lib").mkdir(parents=True)
    (root / "srv/actvt-state").mkdir(parents=True)
    os.symlink(str(outside), root / "var/lib/actvt")  # absolute: read as <root>/<outside>
    before = everything_outside(outside)
    assert install(root)[0] == 0
    assert everything_outside(outside) == before
    assert (root / str(outside).lstrip("/") / "install.state").is_file()


def test_files_the_installer_writes_are_replaced_not_followed(root, outside):
    (root / "etc/vector").mkdir(parents=True)
    os.symlink(str(outside / "precious"), root / "etc/vector/vector.toml")
    assert install(root)[0] == 0
    assert (outside / "precious").read_text() == "the user's\n"
    assert stat.S_ISREG(os.lstat(root / "etc/vector/vector.toml").st_mode)


@pytest.mark.parametrize("path", ["/var/lib/actvt/install.state", "/etc/vector/certs/mtls/index.json",
                                  "/etc/vector/vector.toml"])
def test_a_fifo_where_a_file_is_expected_is_refused_at_once(root, path):
    os.makedirs(os.path.dirname(host(root, path)))
    os.mkfifo(host(root, path))
    started = time.monotonic()
    result = {}
    worker = threading.Thread(target=lambda: result.update(zip(("status", "out"), install(root, MTLS))), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the installer hung on a FIFO"
    assert result["status"] == 1 and f"{path} is a FIFO" in result["out"]
    assert time.monotonic() - started < 20
    assert stat.S_ISFIFO(os.lstat(host(root, path)).st_mode)  # not replaced either


def test_a_socket_where_a_file_is_read_is_refused(root, tmp_path):
    os.makedirs(host(root, "/var/lib/actvt"))
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(host(root, paths.STATE_FILE))
        status, out = install(root)
    assert status == 1 and f"{paths.STATE_FILE} is a socket" in out


# --- the lock ---------------------------------------------------------------------------------------


def test_the_lock_lives_in_a_root_only_folder(root):
    assert install(root)[0] == 0
    st = os.lstat(host(root, paths.LOCK_DIR))
    assert paths.LOCK_FILE.startswith("/run/actvt/") and stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(host(root, paths.LOCK_FILE)).st_mode) == 0o600


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_lock_file_that_is_not_ours_is_refused(root, outside, plant):
    os.makedirs(host(root, paths.LOCK_DIR))
    if plant == "symlink":
        os.symlink(str(outside / "precious"), host(root, paths.LOCK_FILE))
    else:
        os.mkfifo(host(root, paths.LOCK_FILE))
    before = tree_digest(root)
    status, out = install(root)
    assert status == 1 and "not the installer's lock" in out and "remove it and run again" in out
    assert tree_digest(root) == before and (outside / "precious").read_text() == "the user's\n"


@as_root
def test_a_lock_file_of_another_user_is_refused(root):
    os.makedirs(host(root, paths.LOCK_DIR))
    with open(host(root, paths.LOCK_FILE), "w") as handle:
        handle.write("1\n")
    os.chown(host(root, paths.LOCK_FILE), NOBODY, NOBODY)
    status, out = install(root)
    assert status == 1 and "is not the installer's lock" in out


def test_a_held_lock_prints_only_a_pid_never_the_files_content(root):
    from installer.engine import lock as runlock

    with runlock.hold(Root(str(root))):
        with open(host(root, paths.LOCK_FILE), "w") as handle:
            handle.write("\x1b[2J\x1b[31mrm -rf / # from the file\n")
        status, out = install(root)
    assert status == 1 and "another actvt installer is running (pid unknown)" in out
    assert "\x1b" not in out and "from the file" not in out
    assert not os.path.exists(host(root, paths.LOG_FILE)), "a refused run writes nothing into the log"


# --- the log ----------------------------------------------------------------------------------------


def test_a_symlinked_log_is_not_followed_and_the_run_goes_on(root, outside):
    os.makedirs(host(root, "/var/log"))
    os.symlink(str(outside / "precious"), host(root, paths.LOG_FILE))
    status, out = install(root)
    assert status == 0
    assert out.count(f"cannot write the log {paths.LOG_FILE}") == 1 and "going on without a file log" in out
    assert (outside / "precious").read_text() == "the user's\n"


def test_an_existing_log_keeps_its_mode_and_nothing_falls_back_to_tmp(root):
    os.makedirs(host(root, "/var/log"))
    with open(host(root, paths.LOG_FILE), "w") as handle:
        handle.write("earlier\n")
    os.chmod(host(root, paths.LOG_FILE), 0o600)
    assert install(root)[0] == 0
    assert stat.S_IMODE(os.stat(host(root, paths.LOG_FILE)).st_mode) == 0o600
    assert open(host(root, paths.LOG_FILE)).read().startswith("earlier\n[")
    assert not os.path.exists(host(root, "/tmp"))


def test_a_world_writable_log_folder_is_not_written(root):
    os.makedirs(host(root, "/var/log"))
    os.chmod(host(root, "/var/log"), 0o1777)
    status, out = install(root)
    assert status == 0 and "cannot write the log" in out and "world-writable" in out
    assert os.listdir(host(root, "/var/log")) == [] and not os.path.exists(host(root, "/tmp"))


# --- 2. a run stopped half-way ----------------------------------------------------------------------


class Signalling(RecordingRunner):
    """Sends the test's own process a signal when the plan runs its command (a stop mid-run)."""

    def __init__(self, signum):
        super().__init__()
        self.signum = signum

    def run(self, argv, **kwargs):
        os.kill(os.getpid(), self.signum)
        time.sleep(1)  # the handler raises here
        raise AssertionError("the signal did not stop the run")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sigterm_and_sighup_roll_back_like_sigint(tmp_path, monkeypatch, signum):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/conf").write_text("old\n")
    before = tree_digest(tmp_path)
    eng = engine.Engine(Root(str(tmp_path)), Signalling(signum), manage_owner=False)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    items = eng.check(Plan((Step("s", (File("/etc/conf", b"new\n"), File("/etc/new/x", b"x"),
                                       Command(("apt-get", "install", "x")))),)))
    with cli.stop_signals(), pytest.raises(Interrupted) as info:
        eng.apply(items)
    assert info.value.exit_status == 128 + signum
    text = str(info.value)
    assert text.startswith(f"stopped by {signal.Signals(signum).name}") and "put back 3 file(s)" in text
    assert "running the installer again is safe" in text
    assert [entry for entry in tree_digest(tmp_path) if not entry[0].startswith("var")] == before


def test_the_running_command_gets_sigterm_and_time_to_end(tmp_path):
    """apt or dpkg killed outright leaves dpkg's journal; they get SIGTERM and a moment first."""
    marker = tmp_path / "ended"
    script = f"trap 'echo term > {marker}; exit 0' TERM; sleep 30 & wait"
    runner = engine.Runner()
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    with cli.stop_signals(), pytest.raises(KeyboardInterrupt):
        runner.run(["sh", "-c", script])
    assert marker.read_text() == "term\n"


DRIVER = r"""
import os, signal, sys
sys.path.insert(0, {repo!r})
from installer.commands import cli
from installer.core import fs as fsafe
from installer.concerns import pki
pki.CA_RSA_BITS = 2048
count = [0]
real = fsafe.Tree.write
def write(self, path, *args, **kwargs):
    if not path.startswith("/var/lib/actvt/backups/"):  # the plan's own targets, not their backups
        count[0] += 1
    if count[0] == {stop_at} and not path.startswith("/var/lib/actvt/backups/"):
        # mid-write: the temporary file is there, the rename is not done
        fd, name = self.parent(path, create=0o755, writable=True)
        tmp = "." + name + fsafe.TMP_MARK + "deadbeef"
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        os.kill(os.getpid(), signal.{signame})
        import time; time.sleep(5)
    return real(self, path, *args, **kwargs)
fsafe.Tree.write = write
sys.exit(cli.main(["--root", {root!r}, "--yes"], environ={env!r}))
"""


def stopped_run(root, env, stop_at, signame):
    driver = DRIVER.format(repo=REPO, stop_at=stop_at, signame=signame, root=str(root), env=dict(env))
    return subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=120)


def assert_converged(root, env):
    status, out = install(root, env, "--json")
    summary = json.loads(out)
    assert status == 0 and summary["changed"] == 0, [a for a in summary["actions"] if a["status"] == "changed"]
    leftovers = [entry[0] for entry in tree_digest(root) if fsafe.TMP_MARK in entry[0]]
    assert leftovers == []
    files = {path: open(host(root, path), "rb").read() for path in (paths.CA_CERT, paths.CA_KEY)}
    pki.check_ca(files[paths.CA_CERT], files[paths.CA_KEY])
    assert not os.path.exists(host(root, paths.CA_PENDING))


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4, 6, 9])
def test_sigkill_anywhere_in_a_first_install_then_a_rerun_converges(root, stop_at):
    result = stopped_run(root, MTLS, stop_at, "SIGKILL")
    assert result.returncode == -signal.SIGKILL, result.stderr
    status, out = install(root, MTLS)
    assert status == 0, out
    assert_converged(root, MTLS)


def test_sigkill_between_the_ca_key_and_its_certificate_is_repaired(root):
    """The key is written, the certificate is not: provably the interrupted run's own CA."""
    # count the writes of a first install up to the CA key
    order = []
    real = fsafe.Tree.write

    def spy(self, path, *args, **kwargs):
        if not path.startswith(paths.BACKUP_DIR + "/"):
            order.append(path)
        return real(self, path, *args, **kwargs)

    fsafe.Tree.write = spy
    try:
        assert install(root, MTLS)[0] == 0
    finally:
        fsafe.Tree.write = real
    fresh = root.parent / "fresh"
    os.rename(root, root.parent / "first")
    (fresh / "etc").mkdir(parents=True)
    (fresh / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    stop_at = order.index(paths.CA_CERT) + 1  # killed while the certificate is written
    result = stopped_run(fresh, MTLS, stop_at, "SIGKILL")
    assert result.returncode == -signal.SIGKILL
    assert os.path.exists(host(fresh, paths.CA_KEY)) and not os.path.exists(host(fresh, paths.CA_CERT))
    assert os.path.exists(host(fresh, paths.CA_PENDING))
    status, out = install(fresh, MTLS)
    assert status == 0 and "made again: an interrupted run left /etc/vector/certs/mtls/ca.key" in out
    assert_converged(fresh, MTLS)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_mid_write_puts_the_tree_back(root, signame):
    assert install(root, MTLS)[0] == 0
    ca_before = open(host(root, paths.CA_CERT), "rb").read()
    kept = ("/backups", "actvt-install.log", "install.lock")  # what a run writes whatever happens
    before = [entry for entry in tree_digest(root) if not any(part in entry[0] for part in kept)]
    env = dict(MTLS, ACTVT_VECTOR_PORT="4097", ACTVT_REGEN_CLIENT_CERT="yes")
    result = stopped_run(root, env, 3, signame)
    assert result.returncode == 128 + getattr(signal, signame), result.stdout + result.stderr
    assert f"stopped by {signame}" in result.stdout and "running the installer again is safe" in result.stdout
    after = [entry for entry in tree_digest(root) if not any(part in entry[0] for part in kept)
             and fsafe.TMP_MARK not in entry[0]]
    assert after == before
    status, out = install(root, env)
    assert status == 0 and "removed 1 temporary file(s) left by an interrupted run" in out
    assert open(host(root, paths.CA_CERT), "rb").read() == ca_before, "the same CA"
    assert_converged(root, dict(MTLS, ACTVT_VECTOR_PORT="4097"))  # REGEN re-issues on every run


def test_temporary_files_of_an_interrupted_run_are_removed(root):
    assert install(root)[0] == 0
    folder = host(root, "/etc/vector")
    left = [".vector.toml.abcd1234", ".vector.toml.actvt-tmp-0123abcd", "vector.toml.actvt-tmp"]
    for name in left + [".vector.toml.keep-me"]:
        with open(os.path.join(folder, name), "w") as handle:
            handle.write("half\n")
    status, out = install(root, ENV, "--dry-run")
    assert status == 0 and "remove 3 temporary file(s) left by an interrupted run" in out
    assert install(root)[0] == 0
    assert sorted(name for name in os.listdir(folder) if "vector.toml" in name) == [".vector.toml.keep-me",
                                                                                    "vector.toml"]


# --- damaged records ------------------------------------------------------------------------------


@pytest.mark.parametrize("path,damage,expected", [
    ("/var/lib/actvt/manifest.json", b"{truncated", "manifest.json is damaged (not JSON"),
    ("/var/lib/actvt/manifest.json", b'{"paths": {"/etc/vector/vector.toml": "replaced"}}', "is damaged (entry"),
    ("/var/lib/actvt/install.state", b"mode=standalone\n\x00\x00\x00\n", "install.state is damaged (line 2"),
    ("/etc/vector/certs/mtls/index.json", b"[]", "index.json is damaged (it has no certificate list"),
    ("/etc/vector/certs/mtls/crl.pem", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
     "crl.pem is damaged (it is not a PEM CRL"),
])
def test_a_damaged_record_stops_the_run_with_the_file_and_what_to_do(root, path, damage, expected):
    assert install(root, MTLS)[0] == 0
    with open(host(root, path), "wb") as handle:
        handle.write(damage)
    before = tree_digest(root)
    status, out = install(root, MTLS)
    assert status == 1 and expected in out and f"{paths.BACKUP_DIR}/*{path}" in out
    assert [e for e in tree_digest(root) if "actvt-install.log" not in e[0]] == \
        [e for e in before if "actvt-install.log" not in e[0]]


def test_a_malformed_index_entry_is_reported_not_a_keyerror(root):
    assert install(root, MTLS)[0] == 0
    index = json.loads(open(host(root, paths.MTLS_INDEX)).read())
    del index["certificates"][0]["serial"]
    with open(host(root, paths.MTLS_INDEX), "w") as handle:
        json.dump(index, handle)
    status, out = install(root, MTLS)
    assert status == 1 and "index.json is damaged (certificate entry 1: serial is missing or not text)" in out
    status, listed = install(root, MTLS, "client", "list")
    assert "KeyError" not in listed


def test_uninstall_never_deletes_a_users_file_when_the_manifest_is_damaged(root):
    (root / "etc/vector").mkdir(parents=True)
    (root / "etc/vector/vector.toml").write_text("# the user's own configuration\n")
    assert install(root)[0] == 0
    with open(host(root, "/var/lib/actvt/manifest.json"), "w") as handle:
        handle.write("garbage")
    status, out = install(root, ENV, "uninstall")
    assert status == 1 and "manifest.json is damaged" in out
    assert (root / "etc/vector/vector.toml").exists()
    # put back from the backups as the message says: uninstall then restores the user's file
    backups = sorted(os.listdir(host(root, paths.BACKUP_DIR)))
    copies = [b for b in backups if os.path.exists(host(root, f"{paths.BACKUP_DIR}/{b}/var/lib/actvt/manifest.json"))]
    assert not copies  # the first install's manifest was new: nothing to put back, so move it away instead
    os.unlink(host(root, "/var/lib/actvt/manifest.json"))
    assert install(root, ENV, "uninstall")[0] == 0


def test_the_previous_manifest_is_backed_up_when_it_changes(root):
    assert install(root)[0] == 0
    first = open(host(root, "/var/lib/actvt/manifest.json")).read()
    assert install(root, MTLS)[0] == 0
    copies = [os.path.join(dirpath, name) for dirpath, _, names in os.walk(host(root, paths.BACKUP_DIR))
              for name in names if name == "manifest.json"]
    assert [open(copy).read() for copy in copies] == [first]


# --- 3. exit 2: nothing changed, to the byte ----------------------------------------------------------


@pytest.mark.parametrize("variable,value", [
    ("ACTVT_VECTOR_PORT", "²³"), ("ACTVT_VECTOR_PORT", "٤٠٩٦"), ("ACTVT_VECTOR_PORT", "9" * 5000),
    ("ACTVT_MTLS_CA_DAYS", "１２"), ("ACTVT_MTLS_CLIENT_DAYS", "99999999999999999999999"),
    ("ACTVT_VECTOR_PORT", "22"), ("ACTVT_VECTOR_PORT", "80"),
    ("ACTVT_NGINX_WEBROOT", "/var/www/$host"), ("ACTVT_NGINX_WEBROOT", '/var/www/"x'),
    ("ACTVT_NGINX_WEBROOT", "/var/www/a\tb"), ("ACTVT_NGINX_WEBROOT", "/var/www/a;b"),
])
def test_a_refused_value_is_one_line_exit_2_and_not_one_byte(root, capsys, variable, value):
    before = tree_digest(root)
    status, out = install(root, dict(ENV, **{variable: value, "ACTVT_DOMIAN": "typo"}))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"error: {variable}: ") and "allowed: " in err
    assert "Traceback" not in err + out
    assert tree_digest(root) == before  # no log line (not even the unknown-variable warning), no lock, no folder


def test_443_is_refused_for_vector_in_proxy_mode(root, capsys):
    before = tree_digest(root)
    status, _ = install(root, dict(ENV, ACTVT_INSTALL_MODE="proxy", ACTVT_VECTOR_PORT="443"))
    assert status == 2 and "ACTVT_VECTOR_PORT: 443 is nginx's port in proxy mode" in capsys.readouterr().err
    assert tree_digest(root) == before


def test_a_dry_run_writes_nothing_at_all(root):
    assert install(root, MTLS)[0] == 0
    before = tree_digest(root)
    status, out = install(root, dict(MTLS, ACTVT_VECTOR_PORT="4097"), "--dry-run")
    assert status == 0 and "Dry run:" in out
    assert tree_digest(root) == before  # the log included


def test_a_refused_run_writes_nothing_into_the_running_runs_log(root, capsys):
    from installer.engine import lock as runlock

    assert install(root)[0] == 0
    log_before = open(host(root, paths.LOG_FILE)).read()
    with runlock.hold(Root(str(root))):
        assert install(root, dict(ENV, ACTVT_DOMIAN="x"))[0] == 1  # lock held (with a warning to log)
        assert install(root, dict(ENV, ACTVT_VECTOR_PORT="x"))[0] == 2  # bad input
    assert open(host(root, paths.LOG_FILE)).read() == log_before


# --- 4. conflicts ----------------------------------------------------------------------------------


def fake_listener(root, port, process, pid=4242, inode=987654):
    """/proc of the tree: something listens on ``port`` (a socket of ``process``)."""
    os.makedirs(host(root, "/proc/net"), exist_ok=True)
    line = f"   0: 00000000:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode}"
    with open(host(root, "/proc/net/tcp"), "w") as handle:
        handle.write("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                     + line + "\n")
    os.makedirs(host(root, f"/proc/{pid}/fd"))
    with open(host(root, f"/proc/{pid}/comm"), "w") as handle:
        handle.write(process + "\n")
    os.symlink(f"socket:[{inode}]", host(root, f"/proc/{pid}/fd/3"))


def test_a_vector_port_another_program_holds_is_refused(root, capsys):
    fake_listener(root, 4096, "sshd")
    before = tree_digest(root)
    status, _ = install(root)
    err = capsys.readouterr().err
    assert status == 2 and "ACTVT_VECTOR_PORT: port 4096 is already used by sshd" in err
    assert tree_digest(root) == before


def test_vector_itself_on_its_port_is_no_conflict(root):
    fake_listener(root, 4096, "vector")
    assert install(root)[0] == 0


def test_a_socket_of_the_vector_user_whose_process_cannot_be_seen_is_vectors():
    """In a container root may not read /proc/<pid>/fd of another user: the socket's owner tells."""
    from installer.core.facts import Facts, Listener
    from installer.plans.registry import decide, port_conflicts

    from helpers import make_config

    cfg = make_config()
    for listener, conflict in ((Listener(4096, "0.0.0.0", "", "vector"), False),
                               (Listener(4096, "0.0.0.0", "", "www-data"), True)):
        facts = Facts(listeners=(listener,))
        found = port_conflicts(cfg, facts, decide(cfg, facts))
        assert bool(found) == conflict
    assert "used by a program of user www-data" in found[0]


def test_force_standalone_with_an_explicit_proxy_mode_warns(root):
    status, out = install(root, dict(ENV, ACTVT_FORCE_STANDALONE="yes", ACTVT_INSTALL_MODE="proxy"))
    assert status == 0 and "ACTVT_FORCE_STANDALONE=yes wins over ACTVT_INSTALL_MODE=proxy" in out
    assert "mode=standalone" in open(host(root, paths.STATE_FILE)).read()


def test_client_certificates_do_not_outlive_their_ca(root):
    env = dict(MTLS, ACTVT_MTLS_CA_DAYS="30", ACTVT_MTLS_CLIENT_DAYS="365")
    status, out = install(root, env)
    assert status == 0 and "ACTVT_MTLS_CLIENT_DAYS=365 outlives the CA" in out
    ca = pki.load_cert(open(host(root, paths.CA_CERT), "rb").read())
    client = pki.load_cert(open(host(root, paths.client_cert("actvt-client-001")), "rb").read())
    assert client.not_valid_after_utc == ca.not_valid_after_utc


# --- 5. a revoked client never comes back by itself ----------------------------------------------------


def test_a_revoked_first_client_is_not_issued_again_by_a_rerun(root):
    assert install(root, MTLS)[0] == 0
    status, _ = install(root, MTLS, "client", "revoke", "actvt-client-001", "--yes")
    assert status == 0
    status, out = install(root, MTLS)
    assert status == 0 and "actvt-client-001 was revoked; the installer does not issue it again by itself" in out
    assert "actvt client issue actvt-client-001" in out
    assert not os.path.exists(host(root, paths.client_cert("actvt-client-001")))
    assert install(root, MTLS, "client", "issue", "actvt-client-001")[0] == 0  # asked for explicitly: issued
    assert os.path.exists(host(root, paths.client_cert("actvt-client-001")))


def test_a_replaced_client_certificate_is_denied_by_the_crl(root):
    assert install(root, MTLS)[0] == 0
    old = open(host(root, paths.client_cert("actvt-client-001")), "rb").read()
    status, out = install(root, dict(MTLS, ACTVT_REGEN_CLIENT_CERT="yes"))
    assert status == 0
    # standalone: Vector reads no CRL, and the output says the old one stays valid
    assert "the previous certificate of actvt-client-001 stays valid until" in out
    ca = pki.load_cert(open(host(root, paths.CA_CERT), "rb").read())
    info = pki.read_crl(open(host(root, paths.MTLS_CRL), "rb").read(), ca)
    assert info.entries[pki.load_cert(old).serial_number][1] == pki.SUPERSEDED
    result = subprocess.run(["openssl", "verify", "-crl_check", "-CRLfile", host(root, paths.MTLS_CRL), "-CAfile",
                             host(root, paths.CA_CERT), "/dev/stdin"], input=old, capture_output=True)
    assert result.returncode != 0 and b"revoked" in result.stdout + result.stderr


# --- 6. modes whatever the umask ----------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_folders_get_their_stated_modes_whatever_the_umask(root, umask):
    previous = os.umask(umask)
    try:
        assert install(root, MTLS)[0] == 0
        (root / "direct").mkdir()
        eng = engine.Engine(Root(str(root / "direct")), RecordingRunner(), manage_owner=False)
        os.umask(umask)  # cli.main tightened a 000 umask: the engine must not rely on that
        eng.apply(eng.check(Plan((Step("s", (File("/a/b/c/file", b"x", 0o640),)),))))
    finally:
        os.umask(previous)
    expected = {"/var/lib/actvt": 0o700, "/var/lib/actvt/backups": 0o700, "/etc/vector/certs/mtls": 0o755,
                "/etc/vector/certs/mtls/clients": 0o755, "/etc/vector/certs": 0o755, "/etc/vector": 0o755,
                "/usr/share/keyrings": 0o755 if os.path.exists(host(root, "/usr/share/keyrings")) else None,
                "/run/actvt": 0o755, "/etc/letsencrypt/renewal-hooks/deploy": 0o755}
    for path, mode in expected.items():
        if mode is not None:
            assert stat.S_IMODE(os.stat(host(root, path)).st_mode) == mode, path
    for path in ("/a", "/a/b", "/a/b/c"):
        assert stat.S_IMODE(os.stat(host(root / "direct", path)).st_mode) == 0o755, path
    assert stat.S_IMODE(os.stat(host(root / "direct", "/a/b/c/file")).st_mode) == 0o640


# --- the launcher's cache, and a package installation stopped half-way ----------------------------------


def test_the_launcher_removes_copies_of_killed_launchers_only(tmp_path):
    from installer.launcher import launcher

    dead = subprocess.Popen(["true"])
    dead.wait()
    names = [f"actvt.pyz.{dead.pid}.tmp", f"actvt.pyz.{os.getpid()}.tmp", "actvt.pyz", "other.tmp"]
    for name in names:
        (tmp_path / name).write_text("x")
    launcher.remove_stale_copies(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])


def test_the_launcher_cache_must_be_a_real_folder_nobody_else_can_write(tmp_path):
    from installer.launcher import launcher

    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "link")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert launcher._usable(str(real)) and not launcher._usable(str(tmp_path / "link"))
    assert not launcher._usable(str(shared))


def test_the_umask_is_never_looser_than_022():
    from installer.launcher import launcher

    previous = os.umask(0o000)
    try:
        launcher.safe_umask()
        assert os.umask(0o077) == 0o022
        launcher.safe_umask()
        assert os.umask(previous) == 0o077  # a stricter one is kept
    finally:
        os.umask(previous)


def test_an_interrupted_dpkg_is_finished_before_any_package_is_installed():
    from installer.plans.registry import Context, build_plan

    from helpers import make_config, make_facts

    facts = make_facts(files={"/var/lib/dpkg/updates/0003": b"Package: vector\n"})
    plan = build_plan(make_config(), facts, Context(version="1.0.0", now="2026-12-01T00:00:00Z"))
    first = plan.steps[0]
    assert first.title == "Finishing an interrupted package installation"
    assert first.actions[0].argv == ("dpkg", "--configure", "-a")
    assert build_plan(make_config(), make_facts(), Context(version="1.0.0", now="2026-12-01T00:00:00Z")) \
        .steps[0].title != first.title


def test_replacing_a_client_with_client_issue_says_what_happens_to_the_old_certificate(root):
    assert install(root, MTLS)[0] == 0
    assert install(root, MTLS, "client", "issue", "laptop")[0] == 0
    status, out = install(root, MTLS, "client", "issue", "laptop", "--force")
    assert status == 0 and "the previous certificate of laptop stays valid until" in out  # standalone
    with open(host(root, paths.STATE_FILE), "a") as handle:
        handle.write("mode=proxy\n")
    status, out = install(root, MTLS, "client", "issue", "laptop", "--force")
    assert status == 0 and f"The previous certificate of laptop is in {paths.MTLS_CRL} (superseded)" in out


def test_a_folder_made_meanwhile_by_another_run_is_taken_as_it_is(tmp_path, monkeypatch):
    """Two runs at once both make /run/actvt: the second finds it made between its look and its mkdir."""
    real = os.mkdir

    def racing(path, mode=0o777, *, dir_fd=None):
        real(path, mode, dir_fd=dir_fd)  # the other run was first
        raise FileExistsError(17, "File exists", path)

    monkeypatch.setattr(os, "mkdir", racing)
    fsafe.Tree(Root(str(tmp_path))).make_dir(paths.LOCK_DIR, 0o755)
    monkeypatch.undo()
    assert stat.S_IMODE(os.stat(tmp_path / "run/actvt").st_mode) == 0o755
