"""The built file: dist/install.pyz through a pipe, as a file and as an executable; its cache; the
build itself (every platform carried, reproducible). Needs the build (``python3 build.py``, which the
README's test command runs first), not Docker."""

import hashlib
import os
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


def test_build_is_reproducible(tmp_path):
    """Two builds of the same sources give the same bytes (SOURCE_DATE_EPOCH fixes every timestamp)."""
    outputs = []
    for name in ("one", "two"):
        subprocess.run([sys.executable, os.path.join(HERE, "build.py"), "--out", str(tmp_path / name)], check=True,
                       cwd=HERE, capture_output=True, env={**ENV, "SOURCE_DATE_EPOCH": "1700000000"})
        outputs.append((tmp_path / name / "install.pyz").read_bytes())
    assert outputs[0] == outputs[1]
