"""A real install stopped with SIGTERM half-way, as cloud-init, systemd or `timeout` stop it (issue 10).

The installer gets SIGTERM while apt (first install) or certbot (an update) runs: it stops the command
with SIGTERM, puts back what it wrote, exits 128 + 15 and says a re-run is safe. The re-run converges
(a dpkg the stop interrupted is finished first), with the same CA, and the app keeps connecting.
"""
import time

import pytest

import harness as H
from installer.core import paths
from test_wiring_e2e import MTLS, MTLS_DIR, App, FIRST, assert_no_changes, install, main_pid

pytestmark = pytest.mark.e2e


def start_in_background(server, env, tag):
    """The pipe command in the background; its exit status lands in /tmp/<tag>.rc."""
    exports = " ".join("%s=%s" % (k, H.shlex.quote(v)) for k, v in server.installer_env(env).items())
    script = ("curl -fsSL %s | env %s python3 - --yes >/tmp/%s.out 2>&1; echo $? >/tmp/%s.rc"
              % (H.PIPE_URL, exports, tag, tag))
    server.container.exec_run(["sh", "-c", script], detach=True)


def stop_when_running(server, pattern, tag, timeout=240):
    """SIGTERM to the installer (only its own process, as `timeout` sends it) once a command line
    matching `pattern` (pgrep's extended regular expression) runs."""
    deadline = time.time() + timeout
    while server.exec(["pgrep", "-f", "[%s]%s" % (pattern[0], pattern[1:])]).rc != 0:
        assert time.time() < deadline, "%s never ran:\n%s" % (pattern, server.exec(["cat", "/tmp/%s.out" % tag]).out)
        assert not server.exists("/tmp/%s.rc" % tag), "the run ended before %s:\n%s" % (
            pattern, server.read_text("/tmp/%s.out" % tag))
        time.sleep(0.2)
    # the launcher's process (it runs the zipapp itself once extracted, else execs it with -I); "[p]"
    # keeps the pattern from matching the command line of the `timeout` that runs pgrep
    pid = server.sh(["pgrep", "-of", r"^\S*[p]ython3 (-I \S*actvt\.pyz|-) --yes"]).out.split()[0]
    server.sh(["kill", "-TERM", pid])
    deadline = time.time() + 120
    while not server.exists("/tmp/%s.rc" % tag):
        assert time.time() < deadline, "the stopped installer did not end"
        time.sleep(0.3)
    return int(server.read_text("/tmp/%s.rc" % tag)), server.read_text("/tmp/%s.out" % tag)


def ours(server, written):
    """What the installer writes (``written``: the plan's paths, H.Host.planned_paths), as it is now;
    the snapshot covers every folder of those paths (/usr/share/keyrings, /var/cache/actvt, ...)."""
    return H.within(server.snapshot(H.snapshot_roots(written)), written, ignore=(paths.BACKUP_DIR,))


def left_behind(server, before, after):
    """Paths of ours a stopped run added, removed or changed, except the files a package ships, which
    the stopped apt's dpkg unpacked (the next run finishes it first; our line in /etc/default/vector is
    checked on its own)."""
    diff = H.diff_snapshots(before, after)
    return [path for path in diff["added"] + diff["removed"] + diff["changed"]
            if server.exec(["dpkg-query", "-S", path]).rc != 0]


def our_defaults_line(server):
    """The installer's line in /etc/default/vector (dpkg owns the file itself)."""
    if not server.exists("/etc/default/vector"):
        return None
    return "VECTOR_CONFIG=/etc/vector/vector.toml" in server.read_text("/etc/default/vector")


def test_sigterm_in_a_real_install_rolls_back_and_the_rerun_converges_with_the_same_ca(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    server.sh("mkdir -p /usr/share/keyrings")
    written = server.planned_paths(MTLS)
    assert any(path.startswith("/usr/share/keyrings/") for path in written), written
    before = ours(server, written)

    # 1. a first install, stopped while apt installs a package
    start_in_background(server, MTLS, "first")
    # apt-get's options come before its verb (-o DPkg::Lock::Timeout=N: core/packaging.py)
    rc, out = stop_when_running(server, "apt-get .*install", "first")
    assert rc == 143, out
    assert "stopped by SIGTERM" in out and "put back" in out and "running the installer again is safe" in out, out
    assert left_behind(server, before, ours(server, written)) == [], "the stopped first install left files of its own"
    assert not server.exists("/etc/vector/vector.toml") and not our_defaults_line(server)

    # 2. the re-run converges (dpkg, if the stop interrupted it, is finished first)
    r, summary = install(server, MTLS)
    assert summary["status"] == "ok", r
    ca = server.sha256(MTLS_DIR + "/ca.crt")
    app = App(harness, "hardening")
    bundle = app.take_bundle(server, FIRST)
    app.metrics("wss://%s:4096" % H.DOMAIN, bundle)

    # 3. an update stopped while certbot renews: every file of ours is as it was
    update = dict(MTLS, ACTVT_REUSE_CERT="no", ACTVT_VECTOR_PORT="4097")
    written = sorted(set(server.planned_paths(update)) | set(server.written_paths()))
    settled = ours(server, written)
    settled_defaults = server.read_text("/etc/default/vector")
    pid = main_pid(server)
    start_in_background(server, update, "update")
    rc, out = stop_when_running(server, "certbot certonly", "update")
    assert rc == 143, out
    assert "stopped by SIGTERM" in out and "running the installer again is safe" in out, out
    assert H.diff_snapshots(settled, ours(server, written)) == {"added": [], "removed": [], "changed": []}
    assert server.read_text("/etc/default/vector") == settled_defaults
    assert main_pid(server) == pid, "Vector was restarted by a run that was stopped"

    # 4. the re-run converges with the same CA, and the app's bundle still connects
    r, summary = install(server, MTLS)
    assert summary["status"] == "ok", r
    assert server.sha256(MTLS_DIR + "/ca.crt") == ca
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, main_pid(server))
    app.metrics("wss://%s:4096" % H.DOMAIN, bundle)
