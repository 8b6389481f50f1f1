"""A server set up by the oldest supported release (releases.json) is upgraded by this build (issue 19).

The old release is built from its commit as a release is: `git worktree add` of that commit into a
temporary folder outside the checkout, its own `build.py --out`, then the worktree is removed and pruned
(nothing is written into the checkout; the wheels already downloaded into build/wheels are copied, not
fetched again). The file is cached under ACTVT_E2E_STATE by commit, so a machine builds it once.

Two servers, one per mode, each: the old release through the pipe with mTLS, then this build through the
pipe. The upgrade converges (a re-run changes nothing), keeps the CA, the clients and their bundles (the
bundle downloaded before the upgrade still connects), restarts Vector at most once, and `actvt uninstall`
afterwards leaves only what it documents it keeps.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import harness as H

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("ACTVT_E2E_STATE", "/var/tmp/actvt-e2e"))
MTLS_DIR = "/etc/vector/certs/mtls"
FIRST = "actvt-client-001"
COMMAND = "/usr/local/bin/actvt"
MTLS = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL, "ACTVT_ENABLE_MTLS": "yes"}
OLD_URL = H.MIRROR_URL + "/release/install.pyz"
#: what `uninstall` keeps without --purge (README, "Commands"), and what apt and dpkg keep of the Vector
#: package it installed (kept unless --remove-vector); nothing else it wrote may remain
KEPT = (MTLS_DIR, "/etc/letsencrypt", "/var/lib/letsencrypt", "/var/lib/actvt/backups")
#: the package database, and what the packages' maintainer scripts make (certbot's timer enabled, Vector's data
#: folder): the packages stay after uninstall
PACKAGE_DB = ("/var/lib/apt/", "/var/lib/dpkg/", "/var/lib/systemd/deb-systemd-helper-enabled/",
              "/etc/systemd/system/timers.target.wants/certbot.timer", "/var/lib/vector")
ACCOUNTS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid",
            "/etc/ld.so.cache")
MANIFEST = "/var/lib/actvt/manifest.json"
STATE = "/var/lib/actvt"


def oldest_release():
    with open(REPO / "releases.json") as handle:
        releases = json.load(handle)["releases"]
    return [r for r in releases if r["supported"]][0]


def git(*args, **kw):
    return subprocess.run(["git", *args], cwd=str(REPO), capture_output=True, text=True, check=True, **kw)


def registered_worktrees():
    return sorted(line for line in git("worktree", "list", "--porcelain").stdout.splitlines()
                  if line.startswith("worktree "))


def build_release(commit):
    """dist/install.pyz of `commit`, built in a worktree outside the checkout that is removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="actvt-release-"))
    source, out = work / "src", work / "out"
    git("worktree", "add", "--detach", str(source), commit)
    try:
        wheels = REPO / "build" / "wheels"
        if wheels.is_dir():  # the pinned wheels of that build, where this checkout already has them
            shutil.copytree(wheels, source / "build" / "wheels")
        r = subprocess.run([sys.executable, "build.py", "--out", str(out)], cwd=str(source), capture_output=True,
                           text=True, env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
        assert r.returncode == 0, "building %s failed:\n%s\n%s" % (commit, r.stdout[-2000:], r.stderr[-2000:])
        return (out / "install.pyz").read_bytes()
    finally:
        git("worktree", "remove", "--force", str(source))
        git("worktree", "prune")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def old_release(harness):
    release = oldest_release()
    commit = git("rev-parse", release["commit"] + "^{commit}").stdout.strip()
    assert commit == release["commit"], "releases.json names a commit by its full hash"
    cached = STATE_DIR / ("release-%s-%s.pyz" % (release["version"], commit[:12]))
    worktrees = registered_worktrees()
    if not cached.exists():
        data = build_release(commit)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        Path(str(cached) + ".tmp").write_bytes(data)
        os.replace(str(cached) + ".tmp", cached)
    assert registered_worktrees() == worktrees, "a worktree was left registered"
    harness.mirror.put_file("/srv/mirror/release/install.pyz", cached.read_bytes())
    return release


def pipe(server, url, args, env):
    r = server.exec(["sh", "-c", "curl -fsSL %s | python3 - %s" % (url, " ".join(args))],
                    env=server.installer_env(env), timeout=900)
    server.harness.record(server, r)
    return r


def vector_starts(server):
    """How many times systemd started vector.service on this server."""
    log = server.exec(["journalctl", "-u", "vector.service", "-o", "cat", "--no-pager"]).out
    return len(re.findall(r"^Started (vector\.service|Vector)", log, re.M))


def mtls_files(server):
    """The CA, the clients, their bundles, index and CRL (generate-client.sh names the installer's version)."""
    snap = server.snapshot((MTLS_DIR,))
    return {path: info for path, info in snap.items() if not path.endswith("/generate-client.sh")}


def not_from_packages(server, paths):
    """Of paths, those no installed package owns (dpkg -S)."""
    if not paths:
        return []
    out = server.exec(["dpkg", "-S"] + list(paths)).out
    owned = {line.split(": ", 1)[1] for line in out.splitlines() if ": " in line}
    return [p for p in paths if p not in owned]


def connects_with(harness, server_bundle, url):
    """wsclient from the client container with the certificate and key of a downloaded bundle."""
    client = harness.client_host
    client.put_file("/tmp/issuer.pem", harness.pebble_issuer_pem())
    client.put_file("/tmp/old-bundle.tar.gz", server_bundle, mode=0o600)
    client.sh("rm -rf /tmp/old-bundle && mkdir /tmp/old-bundle && tar -xzf /tmp/old-bundle.tar.gz -C /tmp/old-bundle")
    return client.exec(["wsclient", url, "--ca", "/tmp/issuer.pem", "--cert", "/tmp/old-bundle/clients/%s.crt" % FIRST,
                        "--key", "/tmp/old-bundle/clients/%s.key" % FIRST, "--count", "2"], timeout=60)


@pytest.mark.parametrize("kind,url", [
    ("server", "wss://%s:4096" % H.DOMAIN),
    ("server-nginx-other", "wss://%s/actvt" % H.DOMAIN),
], ids=["standalone-mtls", "proxy-mtls"])
def test_upgrade_from_the_oldest_supported_release(harness, new_server, old_release, kind, url):
    server = new_server(kind)
    server.trust_acme_ca()
    before = server.snapshot()

    r = pipe(server, OLD_URL, ["--yes"], MTLS)
    assert r.rc == 0, r
    assert server.sh([COMMAND, "--version"]).out == "actvt-installer %s\n" % old_release["version"]
    bundle = server.read_file("%s/%s-bundle.tar.gz" % (MTLS_DIR, FIRST))
    mtls = mtls_files(server)
    assert MTLS_DIR + "/ca.key" in mtls and MTLS_DIR + "/clients/%s.key" % FIRST in mtls
    starts = vector_starts(server)

    r = pipe(server, H.PIPE_URL, ["--yes", "--json"], MTLS)
    assert r.rc == 0, r
    from installer import __version__

    assert server.sh([COMMAND, "--version"]).out == "actvt-installer %s\n" % __version__
    assert mtls_files(server) == mtls, "the CA, a client or a bundle changed"
    assert vector_starts(server) - starts <= 1
    assert server.is_active("vector")
    r = connects_with(harness, bundle, url)
    assert r.rc == 0, r

    pid = server.unit("vector.service")["MainPID"]
    r = pipe(server, H.PIPE_URL, ["--yes", "--json"], MTLS)
    assert r.rc == 0 and r.json()["changed"] == 0, r
    assert server.unit("vector.service")["MainPID"] == pid

    recorded = json.loads(server.read_text(MANIFEST))["paths"]
    r = server.exec([COMMAND, "uninstall"], timeout=300)
    assert r.rc == 0, r
    after = server.snapshot()
    kept = json.loads(server.read_text(MANIFEST))["paths"]
    # what the 1.0.0 install and the upgrade recorded: gone, put back, or the mTLS material kept
    assert sorted(kept) == sorted(p for p in recorded if p.startswith(MTLS_DIR) or MTLS_DIR.startswith(p)), kept
    for path, entry in recorded.items():
        if path in kept or path == MANIFEST:
            continue
        if entry["origin"] == "created":
            assert path not in after, path
        elif entry["origin"] == "replaced":  # put back from its first backup
            assert after[path][4] == after[entry["backup"]][4], path
    # nothing else on the server is gone or different, apart from the packages' own work (the accounts
    # Vector's package adds, the linker cache) and what the packages installed (kept unless --remove-vector)
    diff = H.diff_snapshots(before, after, H.SELF_CHANGING + H.PER_CONTAINER)
    assert diff["removed"] == [], diff["removed"]
    assert [p for p in diff["changed"] if p.rstrip("-") not in ACCOUNTS and not p.startswith(PACKAGE_DB)] == [], \
        diff["changed"]
    # ... and what uninstall keeps on purpose: the mTLS material and its folders (still in the manifest, for a
    # later --purge), the Let's Encrypt certificate, the backups
    added = [p for p in diff["added"] if not p.startswith(KEPT + PACKAGE_DB) and p not in kept
             and p not in (MANIFEST, STATE)]
    left = not_from_packages(server, added)
    assert left == [], "\n".join(left)
    assert mtls_files(server) == mtls
    assert not server.is_active("vector")
    assert hashlib.sha256(bundle).hexdigest() == server.sha256("%s/%s-bundle.tar.gz" % (MTLS_DIR, FIRST))
