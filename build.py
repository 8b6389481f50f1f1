#!/usr/bin/env python3
"""Build ``dist/install.pyz``: one text file that runs as ``python3 install.pyz``, ``./install.pyz``
and ``curl … | python3 -``.

1. A build environment (``build/venv``) with shiv, made here from PyPI.
2. Pinned wheels, downloaded once into ``build/wheels``: for each of Linux x86_64 and aarch64
   (manylinux, glibc >= 2.28) cryptography's abi3 build and cffi's extension for every CPython from
   3.9 to 3.14.
3. ``build/site``: our package and ``_actvt_platform/<arch>/`` holding the
   compiled parts (cryptography, and ``_cffi_backend.cpython-3XY-<arch>-linux-gnu.so`` for each minor,
   which Python tells apart by name); ``installer.launcher.platform_libs`` puts the machine's folder on
   ``sys.path`` at run time.
4. shiv packs it (``--reproducible``; SOURCE_DATE_EPOCH is honoured) into ``build/actvt.pyz``,
   uncompressed.
5. The launcher (``installer/launcher/launcher.py``) carries that zipapp xz-compressed, as base64 text:
   ``dist/install.pyz`` and ``dist/install.pyz.sha256``.

Same sources, same bytes: the wheels are pinned and every timestamp and file mode is fixed.
"""

import argparse
import base64
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
DIST = HERE / "dist"
SHIV = "shiv==1.0.8"

# cryptography 43.0.3 is the newest release with a manylinux_2_28 cp39-abi3 wheel: one build per
# architecture serves CPython 3.9 to 3.14. It needs cffi's C extension, built per CPython minor.
CRYPTOGRAPHY = "cryptography==43.0.3"
CFFI = "cffi==2.0.0"
# No pure-Python dependency is carried: the installer's only HTTP (the connectivity check and the
# download of the repository key) uses urllib with the system's CA store, as apt and certbot do.
ARCHES = ("x86_64", "aarch64")
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
ENTRY_POINT = "installer.commands.cli:main"


def log(message: str) -> None:
    print(f"build: {message}", flush=True)


def build_env() -> Path:
    """``build/venv`` with shiv; made once."""
    env = BUILD / "venv"
    python = env / "bin" / "python"
    if not (env / "bin" / "shiv").exists():
        log("making the build environment (build/venv)")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(env)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SystemExit(f"build: cannot make a virtual environment with pip ({exc}); on Debian and Ubuntu "
                             "install python3-venv first") from None
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SHIV], check=True)
    return python


def download(python: Path, requirement: str, *, platforms=(), version="3.9", implementation="cp") -> Path:
    """One wheel into ``build/wheels`` (kept between builds); returns its path."""
    wheels = BUILD / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, _, pinned = requirement.partition("==")
    stem = name.replace("-", "_").lower() + "-" + pinned + "-"
    args = [str(python), "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--python-version", version, "--implementation", implementation,
            "-d", str(wheels), requirement]
    for platform in platforms:
        args[4:4] = ["--platform", platform]

    def matches():
        found = []
        for wheel in sorted(wheels.glob("*.whl")):
            tags = wheel.name[:-4].split("-")
            if not wheel.name.lower().startswith(stem):
                continue
            py_tag, abi_tag, plat_tag = tags[-3], tags[-2], tags[-1]
            if platforms and not any(p in plat_tag.split(".") for p in platforms):
                continue
            if implementation == "cp" and abi_tag != "abi3" and py_tag != "cp" + version.replace(".", ""):
                continue
            found.append(wheel)
        return found

    if not matches():
        subprocess.run(args, check=True)
    found = matches()
    if len(found) != 1:
        raise SystemExit(f"build: expected one wheel for {requirement} {platforms} {version}, found {found}")
    return found[0]


def unpack(wheel: Path, target: Path, only=None) -> None:
    """Extract a wheel's files (or only those ``only`` accepts) into ``target``."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or (only and not only(info.filename)):
                continue
            path = target / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(info))


def assemble(python: Path) -> Path:
    site = BUILD / "site"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    shutil.copytree(HERE / "installer", site / "installer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # cryptography needs only cffi's C extension (_cffi_backend), one per CPython minor; the cffi
    # Python package is left out, its licence and metadata kept once.
    cffi_any = download(python, CFFI, platforms=("manylinux2014_x86_64", "manylinux_2_17_x86_64"))
    unpack(cffi_any, site, only=lambda name: ".dist-info/" in name)
    for arch in ARCHES:
        folder = site / "_actvt_platform" / arch
        manylinux = (f"manylinux_2_28_{arch}", f"manylinux2014_{arch}", f"manylinux_2_17_{arch}")
        unpack(download(python, CRYPTOGRAPHY, platforms=manylinux), folder)
        for version in PYTHONS:
            wheel = download(python, CFFI, platforms=manylinux, version=version)
            unpack(wheel, folder, only=lambda name: name.endswith(".so") or name.startswith("cffi.libs/"))
    for path in site.rglob("*"):
        if path.is_file():
            path.chmod(0o755 if path.suffix == ".so" or ".so." in path.name else 0o644)
    return site


def shiv(python: Path, site: Path) -> Path:
    target = BUILD / "actvt.pyz"
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", "315532800")
    subprocess.run([str(python), "-m", "shiv", "--site-packages", str(site), "--reproducible", "--uncompressed",
                    "-e", ENTRY_POINT, "-p", "/usr/bin/env python3", "-o", str(target)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return target


def launcher(pyz: Path, dist: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from installer import __version__
    from installer.launcher.render import render_launcher

    data = pyz.read_bytes()
    with zipfile.ZipFile(pyz) as archive:
        import json

        build_id = json.loads(archive.read("environment.json"))["build_id"]
    # The zipapp is stored uncompressed and the whole of it compressed with xz: a third smaller than
    # a deflated zipapp (the compiled libraries compress much better together), which matters when
    # the file is read through a pipe.
    packed = lzma.compress(data, preset=6)
    text = render_launcher(__version__, build_id, hashlib.sha256(data).hexdigest(),
                           base64.b64encode(packed).decode("ascii"))
    dist.mkdir(parents=True, exist_ok=True)
    out = dist / "install.pyz"
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(text)
    tmp.chmod(0o755)
    tmp.replace(out)
    digest = hashlib.sha256(text).hexdigest()
    (dist / "install.pyz.sha256").write_text(f"{digest}  install.pyz\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST, help="folder for install.pyz and its .sha256 (default: dist)")
    args = parser.parse_args()
    import fcntl

    BUILD.mkdir(exist_ok=True)
    lock = open(BUILD / ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # two builds at once (parallel test runs) take turns
    python = build_env()
    site = assemble(python)
    pyz = shiv(python, site)
    out = launcher(pyz, args.out.resolve())
    size = out.stat().st_size
    log(f"{out}: {size / 1e6:.1f} MB (zipapp {pyz.stat().st_size / 1e6:.1f} MB), "
        f"sha256 {(out.parent / 'install.pyz.sha256').read_text().split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
