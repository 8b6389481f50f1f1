"""Foundation behaviour on real hosts (issue 4, item 5): the pipe launcher on Debian 11/12/13, a dry run
that changes nothing, bad input refused without changes, and the single-run lock.

Every installer run here is the user's command, `curl -fsSL http://mirror/install.pyz | python3 -`,
inside a systemd server container.
"""
import os
import re
import subprocess
import sys
import time

import pytest

import harness as H

pytestmark = pytest.mark.e2e

GOOD_ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}
PYTHON_OF_SUITE = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
# Section 1 of the reference spec: every variable users rely on must be documented by --help.
REFERENCE_VARIABLES = (
    "ACTVT_DOMAIN", "ACTVT_EMAIL", "ACTVT_INSTALL_MODE", "ACTVT_FORCE_STANDALONE", "ACTVT_VECTOR_PORT",
    "ACTVT_NGINX_WEBROOT", "ACTVT_CONFIGURE_FIREWALL", "ACTVT_REINSTALL_VECTOR", "ACTVT_ENABLE_GPU",
    "ACTVT_REUSE_CERT", "ACTVT_CONTINUE_WITHOUT_DNS", "ACTVT_ENABLE_MTLS", "ACTVT_MTLS_CA_DAYS",
    "ACTVT_MTLS_CLIENT_DAYS", "ACTVT_MTLS_CLIENT_CN", "ACTVT_REUSE_MTLS_CA", "ACTVT_REGEN_CLIENT_CERT",
    "ACTVT_NON_INTERACTIVE",
)
LOCK = "/run/actvt/install.lock"
REFUSED = "another actvt installer is running"


@pytest.fixture(scope="module")
def host_version(pyz):
    r = subprocess.run([sys.executable, str(pyz), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


#: the launcher's cache and the private folders a dry run unpacks into (installer/launcher/launcher.py)
LEFT_BY_DRY_RUN = ("ls -d /var/cache/actvt /var/tmp/actvt-dry-run-* /run/actvt-dry-run-* /tmp/actvt-dry-run-* "
                   "/dev/shm/actvt-dry-run-* 2>/dev/null; true")


def assert_unchanged(before, after, what):
    diff = H.diff_snapshots(before, after)
    assert diff == {"added": [], "removed": [], "changed": []}, "%s changed the host: %s" % (what, diff)


def plan_roots(server, warm_cache=True):
    """Every folder an install may write to on ``server`` (its dry run's paths: /usr/share/keyrings and
    /var/cache besides /etc, /var/lib and /usr/local), the launcher's cache filled first unless not
    warm_cache (H.Host.planned_paths)."""
    roots = H.snapshot_roots(server.planned_paths(GOOD_ENV, warm_cache=warm_cache))
    assert "/usr/share/keyrings" in roots and "/var/cache" in roots, roots
    return roots


# ------------------------------------------------------------------------------------------------
# The pipe launcher on each Debian release
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", H.SUITES)
def test_pipe_launcher_version_and_help(new_server, suite, host_version):
    server = new_server(suite=suite, wait=False)
    assert server.sh("python3 --version").out.split()[1].startswith(PYTHON_OF_SUITE[suite] + ".")

    r = server.run_installer("--version")
    assert r.rc == 0, r
    assert r.out.splitlines() == [host_version], r
    assert re.fullmatch(r"actvt-installer \S+", host_version)

    r = server.run_installer("--help")
    assert r.rc == 0, r
    missing = [v for v in REFERENCE_VARIABLES if v not in r.out]
    assert not missing, "--help does not list %s" % missing


def test_launcher_runs_as_file_and_through_python(new_server, host_version):
    server = new_server(wait=False)
    for via in ("file", "python"):
        r = server.run_installer("--version", via=via)
        assert r.rc == 0 and r.out.strip() == host_version, r


def test_pipe_launcher_with_unbuffered_python(new_server, host_version):
    """PYTHONUNBUFFERED=1 (set by many images and shells) makes `python3 -` read stdin byte by byte."""
    server = new_server(wait=False)
    server.run_installer("--version")  # warm the extraction cache: measure the pipe itself
    r = server.run_installer("--version", env={"PYTHONUNBUFFERED": "1"})
    assert r.rc == 0 and r.out.strip() == host_version, r
    print("pipe --version with PYTHONUNBUFFERED=1: %.1f s" % r.seconds)
    assert r.seconds < 60, "the pipe took %.1f s with PYTHONUNBUFFERED=1" % r.seconds


# ------------------------------------------------------------------------------------------------
# --dry-run changes nothing
# ------------------------------------------------------------------------------------------------
def test_dry_run_on_bare_server_prints_plan_and_changes_nothing(new_server):
    server = new_server()
    roots = plan_roots(server, warm_cache=False)
    # the launcher unpacked into a private folder and removed it: no cache, no folder left
    assert server.sh(LEFT_BY_DRY_RUN).out == "", "the dry run left files behind"
    before = server.snapshot(roots)

    r = server.run_installer("--dry-run", env=GOOD_ENV)
    assert r.rc == 0, r
    assert re.search(r"dry run", r.out, re.I), r
    assert "/var/lib/actvt" in r.out, "the plan does not show what it would create:\n%s" % r.out

    r = server.run_installer("--dry-run", "--json", env=GOOD_ENV)
    assert r.rc == 0, r
    summary = r.json()
    assert summary["dry_run"] is True
    assert summary["would_change"] > 0

    after = server.snapshot(roots)
    assert_unchanged(before, after, "--dry-run")
    assert not server.exists("/var/log/actvt-install.log"), "--dry-run wrote the log"
    assert server.sh(LEFT_BY_DRY_RUN).out == "", "the dry run left files behind"
    assert not server.is_active("vector.service")


# ------------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the variable, nothing changed
# ------------------------------------------------------------------------------------------------
BAD_INPUTS = [
    ("ACTVT_VECTOR_PORT", "99999"),
    ("ACTVT_VECTOR_PORT", "http"),
    ("ACTVT_ENABLE_MTLS", "ture"),
    ("ACTVT_DOMAIN", "bad_domain!"),
    ("ACTVT_EMAIL", "nope"),
    ("ACTVT_INSTALL_MODE", "sideways"),
]


def test_bad_input_exits_2_and_changes_nothing(new_server):
    server = new_server()
    roots = plan_roots(server)
    before = server.snapshot(roots)
    for variable, value in BAD_INPUTS:
        env = dict(GOOD_ENV, **{variable: value})
        for args in ((), ("--dry-run",)):
            r = server.run_installer(*args, "--yes", env=env)
            assert r.rc == 2, "%s=%r %s:\n%s" % (variable, value, args, r)
            lines = r.err.strip().splitlines()
            assert len(lines) == 1 and variable in lines[0], "%s=%r: stderr must be one line naming it:\n%s" % (
                variable, value, r)
    r = server.run_installer("--yes", env={"ACTVT_EMAIL": H.EMAIL})  # ACTVT_DOMAIN missing
    assert r.rc == 2 and "ACTVT_DOMAIN" in r.err, r
    assert_unchanged(before, server.snapshot(roots), "bad input")
    assert not server.exists("/var/log/actvt-install.log")


# ------------------------------------------------------------------------------------------------
# One installer at a time
# ------------------------------------------------------------------------------------------------
def test_second_installer_is_refused_while_the_lock_is_held(new_server):
    server = new_server()
    roots = plan_roots(server)
    before = server.snapshot(roots)
    # hold the installer's lock with util-linux flock, as a running installer does
    server.sh(["mkdir", "-p", "-m", "0755", "/run/actvt"])
    server.container.exec_run(["flock", "-x", LOCK, "sleep", "120"], detach=True)
    deadline = time.time() + 10
    while server.exec(["flock", "-n", LOCK, "true"]).rc == 0:
        assert time.time() < deadline, "flock never took the lock"
        time.sleep(0.1)
    r = server.run_installer("--yes", env=GOOD_ENV)
    assert r.rc == 1, r
    assert REFUSED in r.out + r.err, r
    assert_unchanged(before, server.snapshot(roots), "a refused installer")


def _race(server, env):
    """Two pipe installers at once: the second starts while the first holds the lock (so they really
    overlap); return [(rc, out, err) of the first, (rc, out, err) of the second]."""
    exports = " ".join("%s=%s" % (k, H.shlex.quote(v)) for k, v in server.installer_env(env).items())
    one = "curl -fsSL %s | env %s python3 - --yes >/tmp/race.$1.out 2>/tmp/race.$1.err; echo $? >/tmp/race.$1.rc" % (
        H.PIPE_URL, exports)
    server.sh("cat > /tmp/race.sh <<'EOF'\n%s\nEOF\n" % one)
    server.container.exec_run(["sh", "/tmp/race.sh", "a"], detach=True)
    deadline = time.time() + 120
    while server.exec(["sh", "-c", "[ -e %s ] && ! flock -n %s true" % (LOCK, LOCK)]).rc != 0:
        assert time.time() < deadline and not server.exists("/tmp/race.a.rc"), "the first installer never held the lock"
        time.sleep(0.05)
    server.sh("sh /tmp/race.sh b", timeout=900)
    deadline = time.time() + 900
    while not server.exists("/tmp/race.a.rc"):
        assert time.time() < deadline, "the first installer did not finish"
        time.sleep(1)
    return [(int(server.read_text("/tmp/race.%s.rc" % n)), server.read_text("/tmp/race.%s.out" % n),
             server.read_text("/tmp/race.%s.err" % n)) for n in "ab"]


def _unstable(a, b):
    """What differs between two hosts that ran the same installer alone: folders whose listing differs
    (random names such as certbot's account id) and files whose content differs (keys, timestamps)."""
    folders = tuple(sorted({os.path.dirname(p) + "/" for p in set(a) ^ set(b)}))
    contents = {p for p in set(a) & set(b) if a[p] != b[p] and a[p][:4] == b[p][:4]}
    return folders, contents


def test_two_installers_at_once_one_refused_nothing_corrupted(harness, new_server):
    solo1, solo2, raced = new_server(domain=None), new_server(domain=None), new_server(domain=None)
    refs = []
    for host in (solo1, solo2):
        host.trust_acme_ca()  # so that a full install can complete, certbot included
        harness.give_domain(host)  # Pebble's http-01 challenge must reach this host
        refs.append(host.run_installer("--yes", env=GOOD_ENV))
    ref1, ref2 = refs
    assert ref1.rc == ref2.rc, (ref1, ref2)

    raced.trust_acme_ca()
    harness.give_domain(raced)
    assert raced.run_installer("--version").rc == 0  # warm the extraction cache: both start together
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = _race(raced, GOOD_ENV)
    assert rc_a == ref1.rc == 0 and REFUSED not in out_a + err_a, (rc_a, out_a, err_a)  # the first completes
    assert rc_b == 1 and REFUSED in out_b + err_b, (rc_b, out_b, err_b)  # the second, started meanwhile, is refused

    # the raced host ends like a host that ran one installer: same paths, modes, owners and contents,
    # except what differs between two such hosts anyway
    s1, s2, sr = solo1.snapshot(), solo2.snapshot(), raced.snapshot()
    folders, contents = _unstable(s1, s2)
    diff = H.diff_snapshots(s1, sr, ignore=H.SELF_CHANGING + H.PER_CONTAINER + folders)
    diff["changed"] = [p for p in diff["changed"] if not (p in contents and s1[p][:4] == sr[p][:4])]
    assert diff == {"added": [], "removed": [], "changed": []}, diff
    assert raced.read_text("/var/lib/actvt/domain").strip() == H.DOMAIN
    # and a run after the race finds a consistent host
    r = raced.run_installer("--yes", env=GOOD_ENV)
    assert r.rc == ref1.rc, r
