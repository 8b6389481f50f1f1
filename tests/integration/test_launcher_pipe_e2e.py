"""The built launcher as root on a harness server, against a local attacker (issue 18, item 4), and cut
downloads of the built file (issue 19, item 5).

Planted modules: uid 65534 plants, in /tmp and in a home folder it owns, a module for every name the
launcher and the zipapp import (enumerated, not listed: the import statements of the zipapp's code and what
`python3 -X importtime` shows the launcher, the zipapp and the in-process run load on this server, less the
zipapp's own packages). Each would write a marker if imported. Root then starts the installer from those
folders in each documented way: through the pipe (`python3 -`, `python3 -I -`), as a file beside the
planted modules (`python3 install.pyz`, `./install.pyz`) and the kept `actvt` command, on an empty cache
(the launcher execs the zipapp) and a warm one (it runs the zipapp in its own process). No marker appears,
and every run works. One server for the file (a standalone install and re-runs).
"""
import ast
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import harness as H

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
MARKERS = "/var/tmp/actvt-markers"  # made by the attacker; root's runs would write here
FOLDERS = ("/tmp/plant", "/home/visitor")
CACHE = "/var/cache/actvt"
COMMAND = "/usr/local/bin/actvt"
#: what a dry run may have left: the cache, and its private folders wherever the launcher makes them
DRY_RUN_LEFT = "ls -d %s /var/tmp/actvt-dry-run-* /run/actvt-dry-run-* /tmp/actvt-dry-run-* /dev/shm/actvt-dry-run-* " \
               "2>/dev/null; true" % CACHE
#: run by uid 65534: argv = markers folder, the two folders, then the names
PLANT = """
import os, sys
markers, folders, names = sys.argv[1], sys.argv[2:4], sys.argv[4:]
os.makedirs(markers, exist_ok=True)
for folder in folders:
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name + ".py"), "w") as handle:
            handle.write("open(%r, 'w').close()\\n" % os.path.join(markers, name))
"""


def zipapp_own_names():
    """Top-level packages and modules the zipapp carries (they are not the standard library's)."""
    with zipfile.ZipFile(REPO / "build" / "actvt.pyz") as archive:
        names = {n.split("/")[0] for n in archive.namelist()}
        names |= {n.split("/")[1] for n in archive.namelist() if n.startswith("site-packages/") and n.count("/") > 1}
    return {re.split(r"[.-]", n)[0] for n in names} | {"_bootstrap", "_actvt_platform"}


def source_imports():
    """Every module named by an import statement in the installer's code (what the zipapp runs, lazy imports
    included) that is in the standard library."""
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    names = set()
    for path in (REPO / "installer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n in stdlib}


def imported(result):
    assert result.rc == 0, result
    return {n.split(".")[0] for n in re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", result.err, re.M)}


@pytest.fixture(scope="module")
def server(harness):
    host = harness.server()
    host.trust_acme_ca()
    yield host
    harness.remove(host)


def test_no_planted_module_runs_as_root(server):
    env = server.installer_env(ENV)
    pipe = "curl -fsSL %s | python3 " % H.PIPE_URL
    # what a run imports: the launcher (empty cache: a dry run unpacks into a private folder and runs the
    # zipapp in a child; a real run fills the cache and execs it), the zipapp itself, the warm run
    names = imported(server.exec(["sh", "-c", pipe + "-X importtime - --dry-run"], env=env))
    assert server.sh(DRY_RUN_LEFT).out == "", "the dry run left files behind"
    names |= imported(server.exec(["sh", "-c", pipe + "-X importtime - --version"], env=env))
    names |= imported(server.exec(["sh", "-c", "SHIV_ROOT=%s/shiv python3 -X importtime -I %s/pyz/*/actvt.pyz "
                                   "--dry-run" % (CACHE, CACHE)], env=env))
    names |= imported(server.exec(["sh", "-c", pipe + "-X importtime - --dry-run"], env=env))
    names = (names | source_imports()) - zipapp_own_names() - {"__main__"}
    assert {"base64", "hashlib", "lzma", "shutil", "zipfile", "subprocess", "json", "ssl"} <= names, sorted(names)

    server.sh("mkdir -p /home/visitor && chown 65534:65534 /home/visitor && rm -rf %s" % CACHE)
    server.sh(NOBODY + ["python3", "-I", "-c", PLANT, MARKERS] + list(FOLDERS) + sorted(names), workdir="/")
    assert server.sh("stat -c %u /tmp/plant/base64.py /home/visitor/os.py").out.split() == ["65534", "65534"]
    # the planted modules work: a Python started there without the launcher's care imports them
    server.sh(["sh", "-c", "cd /tmp/plant && python3 -c 'import base64' && rm %s/base64" % MARKERS])

    runs = [
        ("/tmp/plant", pipe + "- --yes"),  # empty cache: the launcher execs the zipapp; a real install
        ("/tmp/plant", "curl -fsSLo install.pyz %s && chmod +x install.pyz && python3 install.pyz --yes --json"
         % H.PIPE_URL),
        ("/tmp/plant", "./install.pyz --dry-run"),
        ("/home/visitor", pipe + "- --dry-run"),
        ("/home/visitor", pipe + "-I - --dry-run"),
        ("/home/visitor", "cp /tmp/plant/install.pyz . && ./install.pyz --dry-run"),
        ("/home/visitor", COMMAND + " status"),
        ("/tmp/plant", COMMAND + " --version"),
    ]
    for folder, command in runs:
        r = server.exec(["sh", "-c", "cd %s && %s" % (folder, command)], env=env, timeout=900)
        server.harness.record(server, r)
        assert r.rc == 0, r
        assert server.sh("ls -A %s" % MARKERS).out == "", (command, server.sh("ls %s" % MARKERS).out)
        if "--json" in command:
            assert r.json()["changed"] == 0, r
    assert server.is_active("vector")


def test_a_damaged_extraction_is_extracted_again(server):
    """shiv trusts its extraction folder; the launcher checks it against the zipapp and has it redone."""
    env = server.installer_env(ENV)
    site = server.sh("ls -d %s/shiv/actvt.pyz_*/site-packages" % CACHE).out.strip()
    target = site + "/installer/__init__.py"
    good = server.sha256(target)
    server.sh("printf 'raise SystemExit(\"damaged\")\\n' >> %s" % target)
    r = server.exec(["sh", "-c", "curl -fsSL %s | python3 - --version" % H.PIPE_URL], env=env)
    assert r.rc == 0 and r.out.startswith("actvt-installer "), r
    assert server.sha256(target) == good
    server.sh("touch %s/planted.pth" % site)
    r = server.exec([COMMAND, "--version"])
    assert r.rc == 0 and not server.exists(site + "/planted.pth"), r


def test_a_cut_download_of_the_built_file_fails(pyz):
    """The built file through the pipe, cut at each line boundary outside the payload, inside the payload at
    a sample of lines and bytes, and at each of its last 20 bytes: every run fails (tests/test_launcher.py
    covers every line boundary of the launcher itself). No Docker: the host's Python."""
    data = Path(pyz).read_bytes()
    lines = [m.end() for m in re.finditer(b"\n", data)]
    start, end = data.index(b'PAYLOAD = """'), data.rindex(b'"""')
    outside = [o for o in lines if o < start or o > end]
    inside = [o for o in lines if start < o < end]
    rng = random.Random(19)
    offsets = set(outside[1::9] + outside[-8:] + rng.sample(inside, 4) + rng.sample(range(start, end), 4)
                  + list(range(len(data) - 20, len(data))))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ACTVT_", "SHIV_"))}
    for offset in sorted(offsets):
        r = subprocess.run([sys.executable, "-", "--version"], input=data[:offset], capture_output=True, env=env)
        assert r.returncode == 1 and r.stdout == b"", (offset, data[offset - 20:offset], r.stderr[-300:])


#: an interpreter that says it is 3.6 (issue 21, item 4): a real python3 whose own site-packages carry a .pth
#: line that replaces sys.version_info (a venv of the server's python3, so nothing else on it changes)
OLD_PYTHON = "/opt/old-python"
OLD_PTH = ("import sys; exec(\"class _Version(tuple):\\n    major = property(lambda self: self[0])\\n"
           "    minor = property(lambda self: self[1])\\nsys.version_info = _Version((3, 6, 15, 'final', 0))\")\n")
UBUNTU_2004 = 'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="20.04"\n'


def test_an_old_python3_runs_the_installer_with_a_supported_one(server):
    """`python3` on PATH is "3.6": through the pipe the launcher finds the server's real python3.X, says so,
    and the run goes through it (a whole run, changed=0 on this installed server), as does the kept `actvt`
    command (its `#!/usr/bin/env python3` finds the old one too). With no supported interpreter left, on an
    Ubuntu 20.04 os-release: the one line naming the command, status 1, nothing written."""
    env = server.installer_env(ENV)
    real = server.sh("readlink -f /usr/bin/python3").out.strip()
    version = server.sh([real, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).out.strip()
    micro = server.sh([real, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]).out.strip()
    site = "%s/lib/python%s/site-packages" % (OLD_PYTHON, version)
    server.sh("python3 -m venv --without-pip " + OLD_PYTHON)
    # a script, not a link: a venv's python is one only when run by its own path (pyvenv.cfg beside it)
    server.put_file("/usr/local/bin/python3", b'#!/bin/sh\nexec %s/bin/python3 "$@"\n' % OLD_PYTHON.encode(),
                    mode=0o755)
    server.put_file(site + "/old-version.pth", OLD_PTH.encode())
    release = server.sh("readlink /etc/os-release").out.strip()  # Debian's is a link to /usr/lib/os-release
    assert release
    try:
        assert server.sh("command -v python3 && python3 -I -c 'import sys; print(sys.version_info[:2])'").out \
            == "/usr/local/bin/python3\n(3, 6)\n"
        said = "actvt-installer: this Python is 3.6.15; running with %s (%s)" % (real, micro)
        r = server.exec(["sh", "-c", "curl -fsSL %s | python3 -I - --yes --json" % H.PIPE_URL], env=env,
                        timeout=900)
        server.harness.record(server, r)
        assert r.rc == 0 and r.json()["changed"] == 0, r
        assert r.err.splitlines()[0] == said, r
        r = server.exec([COMMAND, "status"])
        assert r.rc == 0 and r.err.splitlines()[0] == said, r
        assert server.is_active("vector")

        # none left: the server's own python3.X says 3.6 too (its dist-packages, which the venv does not see)
        server.put_file("/usr/lib/python3/dist-packages/old-version.pth", OLD_PTH.encode())
        server.sh("rm /etc/os-release")
        server.put_file("/etc/os-release", UBUNTU_2004.encode())
        before = server.sh("find %s /usr/local /etc/actvt /var/lib/actvt -printf '%%p %%s %%T@\\n' | sort"
                           % CACHE).out
        r = server.exec(["sh", "-c", "curl -fsSL %s | python3 -I - --yes" % H.PIPE_URL], env=env)
        assert r.rc == 1 and r.out == "", r
        assert r.err == ("actvt-installer: needs Python 3.9.2 to 3.14 (this is 3.6.15) and found none of python3.9 to "
                         "python3.14 on this system; install one with `apt-get install -y python3.9`, then run "
                         "the same command again\n"), r
        assert server.sh("find %s /usr/local /etc/actvt /var/lib/actvt -printf '%%p %%s %%T@\\n' | sort"
                         % CACHE).out == before
    finally:
        server.sh("rm -rf %s /usr/local/bin/python3 /usr/lib/python3/dist-packages/old-version.pth" % OLD_PYTHON)
        server.sh(["ln", "-sfn", release, "/etc/os-release"])
