#!/usr/bin/env python3
"""Build ``dist/install.pyz``: one text file that runs as ``python3 install.pyz``, ``./install.pyz``
and ``curl … | python3 -``.

1. ``build.lock`` names every wheel the build installs or packs, with its sha256: the build tools
   (``tool``: pip, shiv and what shiv needs, installed into ``build/venv``), pure-Python packages
   carried in the zipapp (``site``) and, for each of Linux x86_64 and aarch64, cryptography's abi3
   build and cffi's extension for every CPython from 3.9 to 3.14. Each wheel is downloaded once into
   ``build/wheels`` with ``pip download --require-hashes``, pip ignoring the builder's configuration
   (``--isolated``, ``PIP_CONFIG_FILE=/dev/null``) and using one index (``ACTVT_BUILD_INDEX_URL``,
   default PyPI); every wheel, cached or new, is checked against the lock before it is used.
2. ``build/site``: our package and ``_actvt_platform/<arch>/`` holding the compiled parts
   (cryptography, and ``_cffi_backend.cpython-3XY-<arch>-linux-gnu.so`` for each minor, which Python
   tells apart by name); ``installer.launcher.platform_libs`` puts the machine's folder on
   ``sys.path`` at run time.
3. shiv packs it into ``build/actvt.pyz``, uncompressed; every entry is then rewritten with a fixed
   mode, time (``SOURCE_DATE_EPOCH``, default 1980-01-01) and order, so the umask, time zone, locale,
   folder and pip version of the builder do not show in the bytes.
4. The launcher (``installer/launcher/launcher.py``) carries that zipapp xz-compressed, as base64 text:
   ``dist/install.pyz`` and ``dist/install.pyz.sha256``; ``--sign KEY`` adds ``install.pyz.sig``
   (``ssh-keygen -Y sign -n file``, Ed25519), checked against ``allowed_signers``.

``--update-lock`` resolves the newest allowed versions and rewrites ``build.lock``.
"""

import argparse
import base64
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
DIST = HERE / "dist"
LOCK = HERE / "build.lock"
ALLOWED_SIGNERS = HERE / "allowed_signers"
#: The principal of release signatures in allowed_signers (README, "Publishing and pinning").
SIGNER = "releases@actvt.io"
#: The one variable that changes where wheels come from (a mirror of PyPI); the lock's hashes still apply.
INDEX_VARIABLE = "ACTVT_BUILD_INDEX_URL"
DEFAULT_INDEX = "https://pypi.org/simple"

ARCHES = ("x86_64", "aarch64")
#: The CPython minors the zipapp carries cffi for: the launcher's range (check_python_range).
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
#: What --update-lock resolves. Tools: the build environment (shiv brings click and setuptools; pip
#: is locked too, so every builder downloads with the same pip). Site: pure-Python packages carried
#: in the zipapp (cryptography imports typing_extensions on Python < 3.11, from its x509 module).
#: Platform: one cryptography abi3 build per architecture, cffi's extension per CPython minor.
TOOLS = ("pip", "shiv")
SITE = ("typing_extensions",)
CRYPTOGRAPHY, CFFI = "cryptography", "cffi"
#: manylinux_2_28 first: the lowest glibc the launcher accepts (launcher.MIN_GLIBC), and the build
#: cryptography publishes against it; 2_17 (manylinux2014) where a project publishes nothing newer
#: (cffi). pip prefers platforms in the order given.
def manylinux(arch: str) -> tuple:
    return (f"manylinux_2_28_{arch}", f"manylinux2014_{arch}", f"manylinux_2_17_{arch}")


ENTRY_POINT = "installer.commands.cli:main"
ROLES = ("tool", "site") + ARCHES
DEFAULT_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can hold


def log(message: str) -> None:
    print(f"build: {message}", flush=True)


class BuildError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"build: {message}")


# -- the lock -----------------------------------------------------------------------------------------

WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-(?P<build>\d[^-]*))?"
                   r"-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def wheel_tags(filename: str) -> dict:
    """A wheel file name's parts (PEP 427): name, version, build, py, abi, plat."""
    match = WHEEL.match(filename)
    if not match:
        raise BuildError(f"{filename}: not a wheel file name")
    parts = match.groupdict()
    parts["name"] = re.sub(r"[-_.]+", "_", parts["name"]).lower()
    return parts


class Entry:
    """One line of the lock: where the wheel goes (role), its file name and sha256."""

    def __init__(self, role: str, filename: str, sha256: str):
        self.role, self.filename, self.sha256 = role, filename, sha256
        self.tags = wheel_tags(filename)

    @property
    def name(self):
        return self.tags["name"]

    @property
    def version(self):
        return self.tags["version"]

    def line(self) -> str:
        return f"{self.role:<8} {self.filename}  sha256:{self.sha256}"

    def __repr__(self):
        return self.line()


LOCK_HEADER = """\
# Every wheel build.py installs (tool: into build/venv) or packs into install.pyz (site: pure Python;
# x86_64, aarch64: that architecture's compiled parts), with its sha256. Written by
# `python3 build.py --update-lock`; review the diff. A wheel that is not listed here, byte for byte,
# stops the build.
"""


def parse_lock(text: str, source: str = "build.lock") -> list:
    """The lock's entries; a malformed or incomplete lock stops the build naming the line."""
    entries, seen = [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source} line {number}"
        if len(fields) != 3 or not fields[2].startswith("sha256:"):
            raise BuildError(f"{where}: expected `ROLE FILE.whl sha256:HEX`, found {raw.strip()!r}")
        role, filename, digest = fields[0], fields[1], fields[2][len("sha256:"):]
        if role not in ROLES:
            raise BuildError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BuildError(f"{where}: {digest!r} is not a sha256 (64 lowercase hex digits)")
        entry = Entry(role, filename, digest)
        if (role, filename) in seen:
            raise BuildError(f"{where}: {filename} is listed twice for {role}")
        seen.add((role, filename))
        entries.append(entry)
    check_complete(entries, source)
    return entries


def platform_wheels(entries: list, arch: str) -> tuple:
    """(cryptography's entry, {python: cffi's entry}) for one architecture."""
    mine = [e for e in entries if e.role == arch]
    crypto = [e for e in mine if e.name == CRYPTOGRAPHY]
    cffi = {f"{e.tags['py'][2]}.{e.tags['py'][3:]}": e for e in mine if e.name == CFFI}
    return crypto, cffi


def check_complete(entries: list, source: str = "build.lock") -> None:
    """Every part the build needs is locked, exactly once: the tools, and per architecture one
    cryptography abi3 wheel and one cffi wheel for each supported Python."""
    names = {e.name for e in entries if e.role == "tool"}
    for tool in TOOLS:
        if tool not in names:
            raise BuildError(f"{source}: no `tool` wheel for {tool}")
    for arch in ARCHES:
        crypto, cffi = platform_wheels(entries, arch)
        if len(crypto) != 1 or crypto[0].tags["abi"] != "abi3":
            raise BuildError(f"{source}: {arch} needs exactly one cryptography abi3 wheel, found "
                             f"{[e.filename for e in crypto] or 'none'}")
        for python in PYTHONS:
            if python not in cffi:
                raise BuildError(f"{source}: {arch} has no cffi wheel for Python {python}")
        for entry in entries:
            if entry.role == arch and not any(arch in p for p in entry.tags["plat"].split(".")):
                raise BuildError(f"{source}: {entry.filename} is not a wheel for {arch}")


def read_lock(path: Path = LOCK) -> list:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BuildError(f"{path} is missing: `python3 build.py --update-lock` writes it") from None
    return parse_lock(text, path.name)


def format_lock(entries: list) -> str:
    order = {role: i for i, role in enumerate(ROLES)}
    body = sorted(entries, key=lambda e: (order[e.role], e.name, e.filename))
    return LOCK_HEADER + "".join(e.line() + "\n" for e in body)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, entry: Entry) -> None:
    """``path`` is the locked wheel, byte for byte; otherwise stop naming it."""
    got = sha256_file(path)
    if got != entry.sha256:
        raise BuildError(f"{path}: sha256 {got}, but build.lock says {entry.sha256} for {entry.filename}; "
                         f"the file is not the locked wheel (delete it to download the locked one)")


# -- pip, isolated from the builder's configuration ---------------------------------------------------

def index_url() -> str:
    return os.environ.get(INDEX_VARIABLE) or DEFAULT_INDEX


def pip_env() -> dict:
    """No pip configuration file is read (PIP_CONFIG_FILE=/dev/null skips them all) and no PIP_*
    variable (dropped here, and --isolated ignores them too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    return env


def pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pip quietly; on failure its own error (which names the file and both hashes on a
    mismatch) is shown, then one line of ours."""
    command = [str(python), "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input",
               "--no-cache-dir", *args]
    result = subprocess.run(command, env=pip_env(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise BuildError(f"pip {args[0]} failed (exit {result.returncode}), see above")
    return result


def target_options(tags: dict, python: str = "") -> list:
    """pip download's options that select exactly this wheel's tags (none for a pure wheel)."""
    if tags["abi"] == "none" and tags["plat"] == "any":
        return []
    py = tags["py"].split(".")[0]
    options = ["--implementation", py[:2], "--python-version", python or f"{py[2]}.{py[3:]}",
               "--abi", tags["abi"]]
    for platform in tags["plat"].split("."):
        options += ["--platform", platform]
    return options


def fetch(python: Path, entries: list, wheels: Path) -> dict:
    """Each entry's wheel in ``wheels`` (downloaded when missing), checked against the lock: {filename: path}."""
    wheels.mkdir(parents=True, exist_ok=True)
    found = {}
    for entry in entries:
        path = wheels / entry.filename
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise BuildError(f"{path}: not a regular file")
        if not path.exists():
            download(python, entry, wheels)
        verify(path, entry)
        found[entry.filename] = path
    return found


def download(python: Path, entry: Entry, wheels: Path) -> None:
    """Download one locked wheel into ``wheels``: into a fresh folder first, where it must be the
    only file and match the lock, so nothing else pip fetched can be used."""
    with tempfile.TemporaryDirectory(prefix="download-", dir=wheels) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{entry.name}=={entry.version} --hash=sha256:{entry.sha256}\n")
        target = Path(tmp) / "wheel"
        log(f"downloading {entry.filename}")
        try:
            pip(python, "download", "-q", "--no-deps", "--only-binary=:all:", "--ignore-requires-python",
                "--require-hashes", "--index-url", index_url(), *target_options(entry.tags), "-d", str(target),
                "-r", str(requirements))
        except BuildError as exc:
            raise BuildError(f"{entry.filename} could not be downloaded as build.lock has it from {index_url()} "
                             f"({exc.code[len('build: '):]})") from None
        got = sorted(p.name for p in target.iterdir())
        if got != [entry.filename]:
            strays = [name for name in got if name != entry.filename] or got
            raise BuildError(f"pip downloaded {', '.join(strays) or 'nothing'} for {entry.name}=={entry.version}; "
                             f"build.lock names {entry.filename}")
        verify(target / entry.filename, entry)
        os.replace(target / entry.filename, wheels / entry.filename)


# -- the build environment ----------------------------------------------------------------------------

def build_env(entries: list, wheels: Path) -> Path:
    """``build/venv`` with exactly the locked tools, installed from checked wheels; remade when the
    lock's tools change."""
    env = BUILD / "venv"
    python = env / "bin" / "python"
    tools = [e for e in entries if e.role == "tool"]
    stamp = env / "actvt-build-tools.lock"
    wanted = "".join(e.line() + "\n" for e in tools)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log("making the build environment (build/venv)")
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"cannot make a virtual environment with pip ({exc}); on Debian and Ubuntu "
                         "install python3-venv first") from None
    # ensurepip's pip (whatever this Python bundles) only downloads the locked tools, hash-checked;
    # they are then installed offline from exactly those files
    paths = fetch(python, tools, wheels)
    with tempfile.TemporaryDirectory(prefix="tools-", dir=BUILD) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{e.name}=={e.version} --hash=sha256:{e.sha256}\n" for e in tools))
        for entry in tools:
            shutil.copyfile(paths[entry.filename], Path(tmp) / entry.filename)
        pip(python, "install", "-q", "--require-hashes", "--only-binary=:all:", "--no-index", "--find-links", tmp,
            "-r", str(requirements))
    stamp.write_text(wanted)
    return python


# -- the zipapp ---------------------------------------------------------------------------------------

def unpack(wheel: Path, target: Path, only=None) -> None:
    """Extract a wheel's files (or only those ``only`` accepts) into ``target``."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or (only and not only(info.filename)):
                continue
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise BuildError(f"{wheel.name}: unsafe path {info.filename!r}")
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(info))


def runtime_requirements(wheel: Path) -> set:
    """The names a wheel's metadata requires at run time (Requires-Dist without an extra)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    names = set()
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            names.add(re.sub(r"[-_.]+", "_", re.match(r"[A-Za-z0-9_.-]+", line.split(":", 1)[1].strip()).group()).lower())
    return names


def assemble(entries: list, paths: dict) -> Path:
    site = BUILD / "site"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    shutil.copytree(HERE / "installer", site / "installer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for entry in entries:
        if entry.role == "site":
            unpack(paths[entry.filename], site)
    for arch in ARCHES:
        folder = site / "_actvt_platform" / arch
        (crypto,), cffi = platform_wheels(entries, arch)
        missing = runtime_requirements(paths[crypto.filename]) - {e.name for e in entries if e.role in ("site", arch)}
        if missing:
            raise BuildError(f"{crypto.filename} requires {', '.join(sorted(missing))}, which build.lock does not carry")
        unpack(paths[crypto.filename], folder)
        # cryptography needs only cffi's C extension (_cffi_backend), one per CPython minor; the cffi
        # Python package is left out, its licence and metadata kept once
        for python in PYTHONS:
            unpack(paths[cffi[python].filename], folder,
                   only=lambda name: name.endswith(".so") or name.startswith("cffi.libs/"))
        if arch == ARCHES[0]:
            unpack(paths[cffi[PYTHONS[0]].filename], site, only=lambda name: ".dist-info/" in name)
    return site


# -- the Pythons the wheels allow -------------------------------------------------------------------------

SPECIFIER = re.compile(r"\s*(~=|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")


def requires_python(wheel: Path) -> str:
    """A wheel's Requires-Python (PEP 345), or "" when it states none."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    for line in text.splitlines():
        if not line.strip():
            break  # the body (the description) starts
        if line.lower().startswith("requires-python:"):
            return line.split(":", 1)[1].strip()
    return ""


def python_allowed(version: tuple, requires: str, source: str = "") -> bool:
    """Whether the final release ``version`` (major, minor, micro) meets a Requires-Python of plain
    release numbers (PEP 440: ``>=3.9, !=3.9.0, !=3.9.*, ~=3.9``); any other clause stops the build."""
    for clause in filter(str.strip, requires.split(",")):
        match = SPECIFIER.match(clause)
        if not match or (match.group(3) and match.group(1) not in ("==", "!=")):
            raise BuildError(f"{source}: cannot read the Requires-Python clause {clause.strip()!r}")
        op, text, prefix = match.groups()
        wanted = tuple(int(n) for n in text.split("."))
        if prefix:
            ok = (version[:len(wanted)] == wanted) == (op == "==")
        else:
            width = max(len(wanted), len(version))
            have, want = version + (0,) * (width - len(version)), wanted + (0,) * (width - len(wanted))
            ok = {"==": have == want, "!=": have != want, "<": have < want, "<=": have <= want,
                  ">": have > want, ">=": have >= want,
                  "~=": have >= want and version[:len(wanted) - 1] == wanted[:-1]}[op]
        if not ok:
            return False
    return True


def launcher_range() -> tuple:
    """(OLDEST, NEWEST) as installer/launcher/launcher.py states them: the Pythons it runs the zipapp with."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from installer.launcher import launcher as module

    return tuple(module.OLDEST), tuple(module.NEWEST)


#: patch releases looked at per minor: far beyond any CPython's (3.9 stopped at 3.9.25)
MICROS = 100


def check_python_range(wheels: dict, oldest: tuple, newest: tuple) -> None:
    """The launcher's range is exactly the one the carried wheels ({file name: path}) allow: its oldest
    is the first release they all accept, none between it and its newest minor is excluded, and PYTHONS
    is its minors. Otherwise a Python the launcher accepts would fail to import cryptography, or one the
    wheels allow be refused."""
    requires = {name: requires_python(path) for name, path in sorted(wheels.items())}
    minors = tuple(f"3.{minor}" for minor in range(oldest[1], newest[1] + 1))
    if minors != PYTHONS:
        raise BuildError(f"PYTHONS is {', '.join(PYTHONS)}, but the launcher accepts {', '.join(minors)}")

    def refusing(version):
        return [name for name, spec in requires.items() if not python_allowed(version, spec, name)]

    first = next((micro for micro in range(MICROS) if not refusing((3, oldest[1], micro))), None)
    if first is None or (3, oldest[1], first) != oldest:
        floor = f"3.{oldest[1]}.{first}" if first is not None else f"no 3.{oldest[1]}"
        deciding = set(refusing(oldest)).union(*(refusing((3, oldest[1], m)) for m in range(first or MICROS)))
        stated = "; ".join(f"{name}: {requires[name]}" for name in sorted(deciding)) or "none refuses it"
        raise BuildError(f"installer/launcher/launcher.py's OLDEST is {dotted(oldest)}, but the carried wheels' "
                         f"Requires-Python allow {floor} first ({stated}): make OLDEST {floor}")
    for minor in range(oldest[1], newest[1] + 1):
        for micro in range(first if minor == oldest[1] else 0, MICROS):
            names = refusing((3, minor, micro))
            if names:
                raise BuildError(f"{', '.join(names)} refuse Python 3.{minor}.{micro}, which the launcher accepts "
                                 f"({dotted(oldest)} to {dotted(newest)})")


def dotted(version: tuple) -> str:
    return ".".join(map(str, version))


def epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_EPOCH)


def shiv(python: Path, site: Path) -> Path:
    target = BUILD / "actvt.pyz"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch())}
    subprocess.run([str(python), "-m", "shiv", "--site-packages", str(site), "--reproducible", "--uncompressed",
                    "-e", ENTRY_POINT, "-p", "/usr/bin/env python3", "-o", str(target)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    normalize(target, epoch())
    return target


def entry_mode(name: str) -> int:
    base = name.rsplit("/", 1)[-1]
    return 0o755 if base.endswith(".so") or ".so." in base else 0o644


def normalize(pyz: Path, when: int) -> None:
    """Rewrite the zipapp with every entry's mode, time and order fixed: shiv copies its own
    ``_bootstrap`` files with their on-disk modes (the builder's umask), and files keep whatever
    order and attributes the folder gave them."""
    date_time = time.gmtime(max(when, DEFAULT_EPOCH))[:6]
    data = pyz.read_bytes()
    prefix = data[:data.index(b"PK\x03\x04")]  # shiv's shebang line
    with zipfile.ZipFile(pyz) as source:
        items = sorted((info.filename, source.read(info)) for info in source.infolist() if not info.is_dir())
    tmp = pyz.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(prefix)
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, content in items:
                info = zipfile.ZipInfo(name, date_time)
                info.create_system = 3  # Unix, so that the mode below is read
                info.external_attr = (0o100000 | entry_mode(name)) << 16
                archive.writestr(info, content)
    tmp.replace(pyz)


def launcher(pyz: Path, dist: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from installer import __version__
    from installer.launcher.render import render_launcher

    data = pyz.read_bytes()
    with zipfile.ZipFile(pyz) as archive:
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
    stale = dist / "install.pyz.sig"
    if stale.exists():  # a signature of an earlier build would not verify
        stale.unlink()
    return out


# -- signing ------------------------------------------------------------------------------------------

def signature_public_key(sig: bytes) -> tuple:
    """(key type, public key blob) inside an OpenSSH signature (PROTOCOL.sshsig: "SSHSIG", a uint32
    version, then the public key as an SSH string whose first field is its type)."""
    body = b"".join(line for line in sig.splitlines() if line and not line.startswith(b"-----"))
    blob = base64.b64decode(body)
    if not blob.startswith(b"SSHSIG"):
        raise BuildError("ssh-keygen wrote something that is not an OpenSSH signature")
    length = int.from_bytes(blob[10:14], "big")
    key = blob[14:14 + length]
    kind_length = int.from_bytes(key[:4], "big")
    return key[4:4 + kind_length].decode("ascii"), key


def allowed_signer_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def sign(out: Path, key: Path, allowed: Path = ALLOWED_SIGNERS, identity: str = SIGNER) -> Path:
    """``install.pyz.sig`` beside ``out``, made with an Ed25519 key and checked with ssh-keygen."""
    if not shutil.which("ssh-keygen"):
        raise BuildError("--sign needs ssh-keygen (OpenSSH)")
    sig = out.with_name(out.name + ".sig")
    if sig.exists():
        sig.unlink()
    result = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "file", str(out)],
                            capture_output=True, text=True)
    if result.returncode != 0 or not sig.exists():
        raise BuildError(f"ssh-keygen could not sign with {key}: {result.stderr.strip()}")
    kind, public = signature_public_key(sig.read_bytes())
    if kind != "ssh-ed25519":
        sig.unlink()
        raise BuildError(f"{key} is a {kind} key; release signatures are made with an Ed25519 key "
                         "(ssh-keygen -t ed25519)")
    line = f'{identity} namespaces="file" {kind} {base64.b64encode(public).decode("ascii")}'
    if not allowed_signer_lines(allowed.read_text() if allowed.exists() else ""):
        with open(out, "rb") as stdin:
            check = subprocess.run(["ssh-keygen", "-Y", "check-novalidate", "-n", "file", "-s", str(sig)],
                                   stdin=stdin, capture_output=True, text=True)
        if check.returncode != 0:
            raise BuildError(f"the signature does not check: {check.stderr.strip()}")
        log(f"{allowed.name} lists no release key yet: add this line to it (and to the README) "
            f"before publishing:\n{line}")
        return sig
    with open(out, "rb") as stdin:
        verified = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", identity, "-n", "file",
                                   "-s", str(sig)], stdin=stdin, capture_output=True, text=True)
    if verified.returncode != 0:
        sig.unlink()
        raise BuildError(f"{key} is not a release key of {allowed.name} for {identity} "
                         f"({verified.stderr.strip() or verified.stdout.strip()}); its line would be:\n{line}")
    log(f"{sig}: {verified.stdout.strip()}")
    return sig


# -- the lock, rewritten ------------------------------------------------------------------------------

def resolve(python: Path, requirements: list, options: list, tmp: Path) -> list:
    """Files pip picks for ``requirements`` with ``options``, downloaded into a fresh folder of ``tmp``."""
    folder = Path(tempfile.mkdtemp(prefix="resolve-", dir=tmp))
    pip(python, "download", "-q", "--only-binary=:all:", "--index-url", index_url(), *options, "-d", str(folder),
        *requirements)
    return sorted(folder.iterdir())


def update_lock(python: Path, lock: Path = LOCK) -> None:
    """Resolve the newest wheels allowed (for the oldest supported Python: what resolves there runs on
    every newer one) and rewrite the lock."""
    entries = []

    def add(role, path):
        entries.append(Entry(role, path.name, sha256_file(path)))

    oldest_python = dotted(launcher_range()[0])
    oldest = ["--python-version", oldest_python]
    with tempfile.TemporaryDirectory(prefix="lock-", dir=BUILD) as name:
        tmp = Path(name)
        for path in resolve(python, list(TOOLS), oldest, tmp):
            add("tool", path)
        for path in resolve(python, list(SITE), ["--no-deps", *oldest], tmp):
            add("site", path)
        for arch in ARCHES:
            platforms = [option for p in manylinux(arch) for option in ("--platform", p)]
            (crypto,) = resolve(python, [CRYPTOGRAPHY], ["--no-deps", "--implementation", "cp", *oldest,
                                                          "--abi", "abi3", *platforms], tmp)
            add(arch, crypto)
            cffi_version = None
            for python_version in PYTHONS:
                abi = "cp" + python_version.replace(".", "")
                version = oldest_python if python_version == PYTHONS[0] else python_version
                # one cffi release for every Python: the newest the oldest Python has
                requirement = f"{CFFI}=={cffi_version}" if cffi_version else CFFI
                (wheel,) = resolve(python, [requirement], ["--no-deps", "--implementation", "cp",
                                                           "--python-version", version, "--abi", abi, *platforms], tmp)
                cffi_version = cffi_version or wheel_tags(wheel.name)["version"]
                add(arch, wheel)
    text = format_lock(entries)
    parse_lock(text)
    old = lock.read_text() if lock.exists() else ""
    lock.write_text(text)
    log(f"{lock.name}: {'unchanged' if old == text else 'rewritten; review `git diff ' + lock.name + '`'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST, help="folder for install.pyz and its .sha256 (default: dist)")
    parser.add_argument("--wheels", type=Path, default=BUILD / "wheels",
                        help="folder of downloaded wheels, kept between builds; each is checked against "
                             "build.lock before use, so it can be shared (default: build/wheels)")
    parser.add_argument("--sign", type=Path, metavar="KEY",
                        help="sign install.pyz with this Ed25519 OpenSSH key: install.pyz.sig")
    parser.add_argument("--update-lock", action="store_true",
                        help="resolve the newest allowed wheels and rewrite build.lock (then build)")
    args = parser.parse_args(argv)
    import fcntl

    BUILD.mkdir(exist_ok=True)
    lock = open(BUILD / ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # two builds at once (parallel test runs) take turns
    if args.update_lock:
        update_lock(build_env(read_lock(), args.wheels) if LOCK.exists() else bootstrap_env())
    entries = read_lock()
    wheels = args.wheels.resolve()
    python = build_env(entries, wheels)
    paths = fetch(python, [e for e in entries if e.role != "tool"], wheels)
    check_python_range(paths, *launcher_range())
    site = assemble(entries, paths)
    pyz = shiv(python, site)
    out = launcher(pyz, args.out.resolve())
    size = out.stat().st_size
    digest = (out.parent / "install.pyz.sha256").read_text().split()[0]
    log(f"{out}: {size / 1e6:.1f} MB (zipapp {pyz.stat().st_size / 1e6:.1f} MB)")
    if args.sign:
        sign(out, args.sign)
    print(f"sha256 {digest}  install.pyz", flush=True)
    return 0


def bootstrap_env() -> Path:
    """With no lock yet: a venv with ensurepip's pip, only to resolve the first lock."""
    env = BUILD / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    return env / "bin" / "python"


if __name__ == "__main__":
    sys.exit(main())
