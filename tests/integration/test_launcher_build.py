"""The built file: dist/install.pyz through a pipe, as a file and as an executable; its cache; the
build itself (every platform carried, reproducible). Needs the build (``python3 build.py``, which the
README's test command runs first), not Docker."""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from installer import __version__
from installer.core import config
from installer.launcher import launcher

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION_LINE = f"actvt-installer {__version__}\n"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ACTVT_", "SHIV_"))}
ENV.update(NO_COLOR="1")


@pytest.fixture(scope="module")
def pyz(pyz):  # noqa: F811 - the session fixture of conftest.py, as a str
    return str(pyz)


def pipe(pyz, *args, env=None, **kwargs):
    with open(pyz, "rb") as handle:
        return subprocess.run([sys.executable, "-", *args], stdin=handle, capture_output=True, text=True,
                              env={**ENV, **(env or {})}, **kwargs)


def test_pipe_version(pyz):
    result = pipe(pyz, "--version")
    assert (result.returncode, result.stdout) == (0, VERSION_LINE)


def test_pipe_help_lists_every_variable(pyz):
    result = pipe(pyz, "--help")
    assert result.returncode == 0
    for var in config.VARIABLES:
        assert var.name in result.stdout


def test_file_and_executable(pyz):
    assert subprocess.run([sys.executable, pyz, "--version"], capture_output=True, text=True,
                          env=ENV).stdout == VERSION_LINE
    assert subprocess.run([pyz, "--version"], capture_output=True, text=True, env=ENV).stdout == \
        VERSION_LINE


def test_sha256_file_matches(pyz):
    with open(pyz, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with open(pyz + ".sha256") as handle:
        assert handle.read() == f"{digest}  install.pyz\n"


def test_pipe_dry_run_into_a_root_then_bad_value_changes_nothing(pyz, tmp_path):
    sys.path.insert(0, os.path.join(HERE, "tests"))
    from helpers import tree_digest

    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "you@example.com", "ACTVT_ENABLE_MTLS": "yes"}
    result = pipe(pyz, "--dry-run", "--root", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert "Dry run:" in result.stdout and "+mtls=enabled" in result.stdout
    assert os.listdir(tmp_path) == []
    result = pipe(pyz, "--root", str(tmp_path), env={**env, "ACTVT_VECTOR_PORT": "99999"})
    assert result.returncode == 2 and result.stderr.startswith("error: ACTVT_VECTOR_PORT: ")
    assert tree_digest(tmp_path) == []


def test_install_under_root_keeps_the_installer_and_removes_old_extractions(pyz, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the shared cache /var/cache/actvt is root's")
    stale_pyz = os.path.join(launcher.SYSTEM_CACHE, "pyz", "0000000000000000")
    stale_site = os.path.join(launcher.SYSTEM_CACHE, "shiv", "actvt.pyz_stale")
    os.makedirs(stale_pyz, exist_ok=True)
    os.makedirs(stale_site, exist_ok=True)
    env = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "you@example.com"}
    result = pipe(pyz, "--root", str(tmp_path), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not os.path.exists(stale_pyz) and not os.path.exists(stale_site)
    kept = tmp_path / "usr/local/lib/actvt/actvt.pyz"
    assert kept.exists() and oct(kept.stat().st_mode & 0o777) == "0o755"
    command = tmp_path / "usr/local/bin/actvt"
    assert oct(command.stat().st_mode & 0o777) == "0o755"
    again = pipe(pyz, "--root", str(tmp_path), "--json", env=env)
    assert '"changed": 0' in again.stdout, again.stdout
    # the kept command runs the kept zipapp (pointed into the root for this test)
    text = command.read_text().replace('"/usr/local/lib/actvt/actvt.pyz"', repr(str(kept)))
    command.write_text(text)
    result = subprocess.run([sys.executable, str(command), "--version"], capture_output=True, text=True, env=ENV)
    assert result.stdout == VERSION_LINE, result.stderr


SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a python under /root


def _as_nobody(args, env, stdin=None):
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run as another user")
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *args],
                          capture_output=True, text=True, env=env, stdin=stdin)


def test_the_isolated_pipe_runs_no_code_from_python_variables(pyz):
    """`… | python3 -I -` (the README's form): a PYTHONPATH holding a sitecustomize.py is loaded neither
    by the launcher nor by the interpreter it execs (an empty cache: the launcher execs one)."""
    planted = tempfile.mkdtemp(prefix="actvt-pythonpath-")
    cache = tempfile.mkdtemp(prefix="actvt-cache-")
    marker = os.path.join(planted, "loaded")
    try:
        os.chmod(planted, 0o777)
        os.chown(cache, 65534, 65534)
        with open(os.path.join(planted, "sitecustomize.py"), "w") as handle:
            handle.write("open(%r, 'a').write('loaded\\n')\n" % marker)
        os.chmod(os.path.join(planted, "sitecustomize.py"), 0o644)
        env = {**ENV, "HOME": "/nonexistent", "XDG_CACHE_HOME": cache, "PYTHONPATH": planted,
               "PYTHONUNBUFFERED": "1"}
        assert _as_nobody([SYSTEM_PYTHON, "-c", "pass"], env).returncode == 0
        assert os.path.exists(marker), "the planted module is not loaded even without -I: the test proves nothing"
        os.unlink(marker)
        with open(pyz, "rb") as handle:
            result = _as_nobody([SYSTEM_PYTHON, "-I", "-", "--version"], env, stdin=handle)
        assert result.stdout == VERSION_LINE, result.stderr
        assert os.path.isdir(os.path.join(cache, "actvt", "shiv")), "the launcher did not exec the zipapp"
        assert not os.path.exists(marker), "code from PYTHONPATH ran"
    finally:
        shutil.rmtree(planted, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def test_a_user_without_a_writable_home_still_runs(pyz):
    os.chmod(os.path.dirname(pyz), 0o755)
    result = _as_nobody([SYSTEM_PYTHON, pyz, "--version"], {**ENV, "HOME": "/nonexistent"})
    assert result.stdout == VERSION_LINE, result.stderr
    assert os.path.isdir("/var/tmp/actvt-65534/shiv")
    shutil.rmtree("/var/tmp/actvt-65534")


def test_a_noexec_cache_folder_is_passed_over(pyz):
    noexec = tempfile.mkdtemp(prefix="actvt-noexec-")
    os.chmod(noexec, 0o777)
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,mode=0777", "tmpfs", noexec],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a noexec tmpfs here")
        try:
            result = _as_nobody([SYSTEM_PYTHON, pyz, "--version"],
                                {**ENV, "HOME": "/nonexistent", "XDG_CACHE_HOME": noexec})
            assert result.stdout == VERSION_LINE, result.stderr
            assert os.listdir(noexec) == [] or not os.listdir(os.path.join(noexec, "actvt"))
        finally:
            subprocess.run(["umount", noexec])
    finally:
        os.rmdir(noexec)
        shutil.rmtree("/var/tmp/actvt-65534", ignore_errors=True)


def test_the_zipapp_carries_every_platform(pyz):
    import zipfile

    with zipfile.ZipFile(os.path.join(HERE, "build", "actvt.pyz")) as archive:
        names = set(archive.namelist())
    for arch in ("x86_64", "aarch64"):
        assert f"site-packages/_actvt_platform/{arch}/cryptography/hazmat/bindings/_rust.abi3.so" in names
        for minor in range(9, 15):
            assert f"site-packages/_actvt_platform/{arch}/_cffi_backend.cpython-3{minor}-{arch}-linux-gnu.so" in names


def _other_python():
    """For the second build, an interpreter (3.9 or newer) that bundles another pip than this one (the
    build environment's first pip comes from ensurepip), if the machine has one."""
    probe = "import ensurepip, sys; print(ensurepip.version(), sys.version_info >= (3, 9))"
    mine = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    for candidate in ("/usr/bin/python3", *(shutil.which(f"python3.{minor}") for minor in range(9, 15))):
        found = subprocess.run([candidate, "-c", probe], capture_output=True, text=True) \
            if candidate and os.access(candidate, os.X_OK) else None
        if found and found.returncode == 0 and found.stdout.endswith("True\n") and found.stdout != mine:
            return candidate
    return sys.executable


@pytest.fixture(scope="module")
def wheels(pyz, tmp_path_factory):
    """The checkout's downloaded wheels, copied outside any checkout: the fresh clones' builds share
    them (each build re-checks every wheel against build.lock, so sharing cannot change the bytes)."""
    folder = tmp_path_factory.mktemp("wheels")
    for wheel in (pathlib.Path(HERE) / "build" / "wheels").glob("*.whl"):
        shutil.copyfile(wheel, folder / wheel.name)
    return folder


def _clone(where, umask=0o022):
    """A fresh clone of this checkout's HEAD (committed sources only, as a release is built), made under
    ``umask`` (its files get that umask's modes)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", HERE, str(where)], check=True,
                   preexec_fn=lambda: os.umask(umask))
    return where


def _build(checkout, wheels, python=sys.executable, umask=0o022, env=None):
    return subprocess.run([python, "build.py", "--wheels", str(wheels)], cwd=str(checkout), capture_output=True,
                          text=True, env={**ENV, **(env or {})}, preexec_fn=lambda: os.umask(umask))


def _built(result, checkout):
    """install.pyz's sha256, which build.py prints as its last line."""
    assert result.returncode == 0, result.stdout + result.stderr
    digest = hashlib.sha256((checkout / "dist" / "install.pyz").read_bytes()).hexdigest()
    assert result.stdout.splitlines()[-1] == f"sha256 {digest}  install.pyz"
    return digest


def _planted(root, wheel, name):
    """A copy of ``wheel`` with one extra file, named ``name``, under ``root``."""
    import zipfile

    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(root / name, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("cffi/planted.txt", b"planted\n")
    return root / name


def _mirror(root, *wheels):
    """An index of files (what ACTVT_BUILD_INDEX_URL may name) serving only ``wheels``."""
    shutil.rmtree(root / "cffi", ignore_errors=True)
    (root / "cffi").mkdir(parents=True)
    for wheel in wheels:
        shutil.copyfile(wheel, root / "cffi" / wheel.name)
    (root / "cffi" / "index.html").write_text("".join(f'<a href="{w.name}">{w.name}</a>\n' for w in wheels))
    return f"file://{root}"


def _lock_name(start, arch="x86_64"):
    with open(os.path.join(HERE, "build.lock")) as handle:
        return next(line.split()[1] for line in handle if line.startswith(arch) and line.split()[1].startswith(start))


CFFI = _lock_name("cffi-")


@pytest.fixture(scope="module")
def hostile(wheels, tmp_path_factory):
    """A builder's pip configuration and PIP_FIND_LINKS offering a cffi wheel with a build tag and an
    extra file (which pip would prefer), a shared cache without the locked cffi wheel, and a mirror
    (ACTVT_BUILD_INDEX_URL) serving the locked one."""
    root = tmp_path_factory.mktemp("hostile")
    links = root / "links"
    _planted(links, wheels / CFFI, CFFI.replace("2.0.0-", "2.0.0-1-", 1))
    (root / "pip.conf").write_text(f"[global]\nfind-links = {links}\nno-index = true\n")
    cache = root / "wheels"
    shutil.copytree(wheels, cache)
    (cache / CFFI).unlink()
    env = {"PIP_FIND_LINKS": str(links), "PIP_CONFIG_FILE": str(root / "pip.conf"), "PIP_NO_INDEX": "1",
           "ACTVT_BUILD_INDEX_URL": _mirror(root / "mirror", wheels / CFFI)}
    return root, cache, env


@pytest.fixture(scope="module")
def clone(hostile, wheels, tmp_path_factory):
    """A fresh clone built under umask 022, UTC, by this interpreter, with the hostile pip setup: the
    reference bytes of this module's other builds."""
    root, cache, env = hostile
    checkout = _clone(tmp_path_factory.mktemp("clone") / "actvt")
    digest = _built(_build(checkout, cache, env={**env, "TZ": "UTC", "LC_ALL": "C.UTF-8"}), checkout)
    # the locked wheel came from the mirror, byte for byte; nothing from the find-links folder
    assert (cache / CFFI).read_bytes() == (wheels / CFFI).read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in wheels.iterdir())
    return checkout, digest


def test_two_fresh_clones_build_the_same_bytes(clone, wheels, tmp_path):
    """A second clone of the same commit, with its own build environment, made and built under umask
    077, another time zone and locale, in another folder, by an interpreter bundling another pip, without
    the hostile pip setup: the same install.pyz, with nothing of the planted wheel in it."""
    reference, digest = clone
    other = _other_python()
    checkout = _clone(tmp_path / "a folder" / "two", 0o077)
    second = _built(_build(checkout, wheels, other, 0o077, {"TZ": "Pacific/Kiritimati", "LC_ALL": "C", "LANG": "C"}),
                    checkout)
    print(f"reproducible build: sha256 {digest} (umask 022, UTC, {sys.executable}) and {second} "
          f"(umask 077, UTC+14, {other})")
    assert second == digest
    import zipfile

    with zipfile.ZipFile(checkout / "build" / "actvt.pyz") as archive:
        infos = archive.infolist()
        names = archive.namelist()
    assert {(info.external_attr >> 16) & 0o777 for info in infos} == {0o644, 0o755}
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)} and names == sorted(names)
    assert not any("planted" in name for name in names)


def test_a_changed_wheel_in_the_cache_stops_the_build(clone, wheels, tmp_path):
    checkout, _ = clone
    reference = (checkout / "dist" / "install.pyz").read_bytes()
    cache = tmp_path / "wheels"
    shutil.copytree(wheels, cache)
    (cache / CFFI).unlink()
    _planted(cache, wheels / CFFI, CFFI)
    result = _build(checkout, cache)
    assert result.returncode == 1
    assert result.stderr.startswith(f"build: {cache / CFFI}: sha256 "), result.stderr
    assert "build.lock says" in result.stderr and "is not the locked wheel" in result.stderr
    assert (checkout / "dist" / "install.pyz").read_bytes() == reference


@pytest.mark.parametrize("served", [CFFI, CFFI.replace("2.0.0-", "2.0.0-1-", 1)])  # other bytes; a build tag
def test_a_mirror_cannot_swap_a_wheel(clone, hostile, wheels, tmp_path, served):
    checkout, _ = clone
    reference = (checkout / "dist" / "install.pyz").read_bytes()
    _, _, env = hostile
    cache = tmp_path / "wheels"
    shutil.copytree(wheels, cache)
    (cache / CFFI).unlink()
    mirror = _mirror(tmp_path / "mirror", _planted(tmp_path / "planted", wheels / CFFI, served))
    result = _build(checkout, cache, env={**env, "ACTVT_BUILD_INDEX_URL": mirror})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"build: {CFFI} could not be downloaded as build.lock has it from {mirror}" in result.stderr
    assert "DO NOT MATCH THE HASHES" in result.stderr and served in result.stderr, result.stderr
    assert not (cache / CFFI).exists() and not (cache / served).exists()
    assert (checkout / "dist" / "install.pyz").read_bytes() == reference
