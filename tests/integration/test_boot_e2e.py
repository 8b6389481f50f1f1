"""A cloud image's first boot (issue 14, items 1 and 2), on one fresh Debian 12 server, in order:

1. the repository key is not the one declared (ACTVT_VECTOR_KEY_FINGERPRINTS names Datadog's key, the
   mirror serves its own): the run is refused, naming both fingerprints, and every folder the
   install's plan writes to (from its dry run: /etc, /var/lib, /usr/local, /usr/share/keyrings, and
   /var/cache for the launcher's cache) is byte for byte as before;
2. a process named like unattended-upgrades holds dpkg's frontend lock (a real fcntl lock, as apt takes
   it) for 20 s when the installer starts, and ACTVT_PACKAGE_LOCK_TIMEOUT is 3: one line names the
   holder and its pid, then the run fails saying so and that a re-run is safe; the holder still holds
   the lock and Vector is not installed;
3. the re-run, with the lock held again for 20 s from its start and the default bound: the same one
   line, the install waits for the lock and completes, and Vector runs.

Budget: about a minute and a half (one server; the first run unpacks the launcher's cache).
"""
import re
import time

import pytest

import harness as H

pytestmark = pytest.mark.e2e

ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}
DATADOG_KEY = "5F1E256061D813B125E156E8E6266D4AC0962C7D"
HOLD_SECONDS = 20
# A script is named after its file by the kernel (/proc/PID/comm: 15 characters), as
# /usr/bin/unattended-upgrade is: "unattended-upgr" is what apt itself prints for the real one.
HOLDER = "/root/unattended-upgrade"
HOLDER_SCRIPT = b"""#!/usr/bin/python3
import fcntl, os, sys, time
fd = os.open("/var/lib/dpkg/lock-frontend", os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)  # F_SETLKW, whole file: what apt's GetLock takes
with open("/tmp/holder.pid.tmp", "w") as handle:
    handle.write(str(os.getpid()))
os.rename("/tmp/holder.pid.tmp", "/tmp/holder.pid")
time.sleep(float(sys.argv[1]))
"""
WAIT_LINE = re.compile(r"^  ⚠ another package manager is running: (.*)$", re.M)


def hold_dpkg_lock(server, seconds=HOLD_SECONDS):
    """Start the holder in the background; returns its pid once it holds the lock."""
    server.sh(["rm", "-f", "/tmp/holder.pid"])
    server.container.exec_run([HOLDER, str(seconds)], detach=True)
    deadline = time.time() + 20
    while not server.exists("/tmp/holder.pid"):
        assert time.time() < deadline, "the lock holder did not start"
        time.sleep(0.1)
    return int(server.read_text("/tmp/holder.pid"))


def holds(server, pid):
    return server.exec(["test", "-d", "/proc/%d" % pid]).rc == 0


# Without --json the installer's console is its standard output.
def test_first_boot_a_foreign_key_then_a_busy_package_manager(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    server.put_file(HOLDER, HOLDER_SCRIPT, mode=0o755)
    mirror_key = harness.vector_key_fingerprint

    # 1. a key that is not the declared one: refused, nothing changed in any folder the install's plan
    # writes to (the keyring's /usr/share/keyrings, the launcher's /var/cache/actvt, /etc, /var/lib, ...)
    roots = H.snapshot_roots(server.planned_paths(ENV))
    assert "/usr/share/keyrings" in roots, roots
    before = server.snapshot(roots)
    r = server.run_installer("--yes", env=dict(ENV, ACTVT_VECTOR_KEY_FINGERPRINTS=DATADOG_KEY))
    assert r.rc == 1, r
    assert ("refused the key from %s: its fingerprint %s is not one of the pinned %s"
            % (H.VECTOR_KEY_URL, mirror_key, DATADOG_KEY)) in r.out, r
    assert "running the installer again is safe" in r.out, r
    assert H.diff_snapshots(before, server.snapshot(roots)) == {"added": [], "removed": [], "changed": []}

    # 2. the package manager is busy for longer than the bound
    pid = hold_dpkg_lock(server)
    r = server.run_installer("--yes", env=dict(ENV, ACTVT_PACKAGE_LOCK_TIMEOUT="3"))
    assert r.rc == 1, r
    holder = "unattended-upgr (pid %d) holds /var/lib/dpkg/lock-frontend" % pid
    assert WAIT_LINE.findall(r.out) == [holder + "; waiting for it, at most 3 s (ACTVT_PACKAGE_LOCK_TIMEOUT)"], r
    assert "another package manager still holds its lock after 3 s: %s" % holder in r.out, r
    assert "running the installer again is safe" in r.out, r
    assert holds(server, pid), "the run ended after the lock was released: the bound was not what stopped it"
    assert server.exec(["dpkg-query", "-W", "vector"]).rc != 0, "Vector was installed after all"
    assert not server.exists("/etc/apt/sources.list.d/vector.list"), "the failed run left its repository file"
    server.sh(["kill", str(pid)])

    # 3. the re-run waits for a holder that lets go, and completes
    pid = hold_dpkg_lock(server)
    started = time.time()
    r = server.run_installer("--yes", env=ENV)
    assert r.rc == 0, r
    holder = "unattended-upgr (pid %d) holds /var/lib/dpkg/lock-frontend" % pid
    assert WAIT_LINE.findall(r.out) == [holder + "; waiting for it, at most 600 s (ACTVT_PACKAGE_LOCK_TIMEOUT)"], r
    assert "Installation complete" in r.out, r
    assert time.time() - started >= HOLD_SECONDS - 1 and not holds(server, pid)
    waited = re.search(r"package lock: free after ([0-9.]+) s", server.installer_log())
    assert waited and float(waited.group(1)) > 1, server.installer_log()[-3000:]
    assert server.unit("vector.service")["ActiveState"] == "active"
