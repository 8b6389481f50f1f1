"""What ``install --root`` writes, and what its dry run prints, for eight configurations, compared with
a recording (tests/golden/install/). The recording was made before the package was split into its
layers (issue 11): it proves the new shape writes the same files and prints the same plan.

Compared byte for byte, except what is new on every run: keys, certificates, CRLs and bundles (their
presence, mode and owner are compared), the CA index's serials, fingerprints and dates, and the time
of the first install. Regenerate with ``ACTVT_UPDATE_GOLDEN=1`` and review the diff.
"""

import hashlib
import io
import json
import os
import re

import pytest

from installer.commands import cli

from helpers import DOMAIN, EMAIL

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


pytestmark = pytest.mark.usefixtures("small_ca_keys")


def normalise(text: str) -> str:
    text = DIFF_PEM.sub(lambda m: m.group(1) + "\n      +<PEM>\n" + m.group(3), text)
    text = PEM.sub(lambda m: f"-----BEGIN {m.group(1)}-----<PEM>-----END {m.group(1)}-----", text)
    return TIME.sub("<TIME>", HEX.sub("<HEX>", text))


def with_gpu(monkeypatch, on: bool) -> None:
    """The GPU is a fact read on the host only: stand it in for --root."""
    from installer.core import facts

    monkeypatch.setattr(facts, "detect_gpu", lambda root: on)


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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_same_files_and_the_same_dry_run_as_recorded(name, tmp_path, monkeypatch):
    settings = dict(CONFIGS[name])
    with_gpu(monkeypatch, settings.pop("gpu", False))
    env = dict(BASE, **settings)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    dry_run = normalise(run(root, env, "--dry-run"))
    run(root, env)
    got = {"dry_run": dry_run.splitlines(), "tree": record(root)}
    path = os.path.join(GOLDEN, f"{name}.json")
    if os.environ.get("ACTVT_UPDATE_GOLDEN") == "1":
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(got, handle, indent=1, sort_keys=True)
            handle.write("\n")
    with open(path) as handle:
        expected = json.load(handle)
    assert got["tree"] == expected["tree"]
    assert got["dry_run"] == expected["dry_run"]
