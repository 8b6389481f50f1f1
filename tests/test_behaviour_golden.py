"""What ``install --root`` writes, and what its dry run prints, for eight configurations, compared with
a recording (tests/golden/install/).

The recording was first made before the package was split into its layers (issue 11), to show the
split changed nothing. It has been re-recorded since by every commit that changed what an install
writes or prints (`git log -- tests/golden` lists them and says why), so what it pins now is the
behaviour as of its last deliberate update: any change to a written file, a mode, a link or a line
of the dry run fails here until the recording is updated on purpose.

Compared byte for byte, except what is new on every run: keys, certificates, CRLs and bundles (their
presence, mode and owner are compared), the CA index's serials, fingerprints and dates, and the time
of the first install. The test only compares: the files are rewritten by ``python
scripts/update_golden.py`` (never by a test run; ACTVT_UPDATE_GOLDEN fails the test), the diff
reviewed, and a commit that runs that command names it in its message.
"""

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
from unittest import mock

import pytest

from installer.commands import cli
from installer.concerns import pki
from installer.core import facts

from helpers import DOMAIN, EMAIL, recorded

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "install")
BASE = {"ACTVT_DOMAIN": DOMAIN, "ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"}
CONFIGS = {
    "standalone-tls": {},
    "standalone-mtls": {"ACTVT_ENABLE_MTLS": "yes"},
    "proxy-tls": {"ACTVT_INSTALL_MODE": "proxy"},
    "proxy-mtls": {"ACTVT_INSTALL_MODE": "proxy", "ACTVT_ENABLE_MTLS": "yes"},
    "standalone-mtls-gpu": {"ACTVT_ENABLE_MTLS": "yes", "gpu": True},
    "proxy-tls-gpu-ecdsa": {"ACTVT_INSTALL_MODE": "proxy", "ACTVT_ENABLE_MTLS": "yes", "ACTVT_MTLS_KEY_TYPE": "ecdsa",
                            "gpu": True},
    "bake": {"ACTVT_BAKE": "yes"},
    "no-firewall-port": {"ACTVT_CONFIGURE_FIREWALL": "no", "ACTVT_VECTOR_PORT": "8443"},
}
RANDOM = re.compile(r"(\.crt|\.key|\.pem|bundle\.tar\.gz)$")  # made anew on every run
PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
DIFF_PEM = re.compile(r"(^ *\+-----BEGIN ([A-Z0-9 ]+)-----$).*?(^ *\+-----END \2-----$)", re.S | re.M)
HEX = re.compile(r"\b[0-9A-Fa-f]{16,}\b|\b(?:[0-9A-F]{2}:){15,}[0-9A-F]{2}\b")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\d{8}T\d{6}Z(?:-\d+)?")


def normalise(text: str) -> str:
    text = DIFF_PEM.sub(lambda m: m.group(1) + "\n      +<PEM>\n" + m.group(3), text)
    text = PEM.sub(lambda m: f"-----BEGIN {m.group(1)}-----<PEM>-----END {m.group(1)}-----", text)
    return TIME.sub("<TIME>", HEX.sub("<HEX>", text))


def record(root) -> dict:
    """Every path under ``root``: kind, mode, and (for files that do not change between runs) sha256."""
    listing = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            rel = "/" + os.path.relpath(path, root)
            if rel.startswith(("/var/log/", "/run/", "/var/lib/actvt/backups/")):
                continue
            st = os.lstat(path)
            entry = {"mode": oct(st.st_mode & 0o7777)}
            if os.path.islink(path):
                entry.update(kind="link", target=os.readlink(path))
            elif os.path.isdir(path):
                entry.update(kind="dir")
            else:
                entry.update(kind="file")
                with open(path, "rb") as handle:
                    data = handle.read()
                if RANDOM.search(rel):
                    entry["content"] = "(made anew on every run)"
                elif rel.endswith(("index.json", "install.state")):
                    entry["content"] = normalise(data.decode())
                else:
                    entry["sha256"] = hashlib.sha256(data).hexdigest()
            listing[rel] = entry
    return listing


def run(root, env, *args):
    out = io.StringIO()
    status = cli.main(["--root", str(root), *args], environ=env, stdout=out)
    assert status == 0, out.getvalue()
    return out.getvalue().replace(str(root), "<ROOT>")


def observe(name, root) -> dict:
    """The dry run and the tree of an install of CONFIGS[name] into ``root`` (made empty here, with a
    Debian 12 os-release). The GPU is a fact read on the host only, so it is stood in for --root; CA keys
    are 2048 bits (as with the small_ca_keys fixture; their bytes are not compared anyway)."""
    settings = dict(CONFIGS[name])
    gpu = settings.pop("gpu", False)
    env = dict(BASE, **settings)
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc/os-release"), "w") as handle:
        handle.write('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    with mock.patch.object(facts, "detect_gpu", lambda _root: gpu), mock.patch.object(pki, "CA_RSA_BITS", 2048):
        dry_run = normalise(run(root, env, "--dry-run"))
        run(root, env)
    return {"dry_run": dry_run.splitlines(), "tree": record(root)}


def golden_bytes(observed: dict) -> bytes:
    """The golden file's text for what ``observe`` returned (scripts/update_golden.py writes it)."""
    return (json.dumps(observed, indent=1, sort_keys=True) + "\n").encode()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_same_files_and_the_same_dry_run_as_recorded(name, tmp_path):
    got = observe(name, str(tmp_path / "root"))
    expected = json.loads(recorded(os.path.join(GOLDEN, f"{name}.json")))
    assert got["tree"] == expected["tree"]
    assert got["dry_run"] == expected["dry_run"]


def test_every_recording_is_compared():
    assert sorted(os.listdir(GOLDEN)) == sorted(f"{name}.json" for name in CONFIGS)


def test_the_update_command_writes_what_the_tests_compare(tmp_path):
    """scripts/update_golden.py on the unchanged code: the recordings it makes are the checked-in ones,
    byte for byte, and a recording no test compares any more is removed."""
    spec = importlib.util.spec_from_file_location("update_golden", os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "update_golden.py"))
    update_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_golden)
    checked_in = os.path.dirname(GOLDEN)
    copy = tmp_path / "golden"
    shutil.copytree(checked_in, copy)
    (copy / "install" / "dropped-config.json").write_text("{}\n")
    assert update_golden.update(str(copy)) == ["install/dropped-config.json"]
    assert sorted(os.listdir(copy / "install")) == sorted(os.listdir(GOLDEN))
    for folder in ("install", "nginx"):
        for name in os.listdir(copy / folder):
            assert (copy / folder / name).read_bytes() == recorded(os.path.join(checked_in, folder, name)), name
