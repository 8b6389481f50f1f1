"""build.py's lock, wheel checks, zip normalisation and signing, without network: pip runs for real
against an index of files in a temporary folder, ssh-keygen against throwaway keys."""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("actvt_build", HERE / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

LOCK_TEXT = (HERE / "build.lock").read_text()


def make_wheel(folder: Path, filename: str, extra: dict = None, metadata: str = "") -> Path:
    """A small valid wheel (metadata pip accepts) named ``filename``."""
    tags = build.wheel_tags(filename)
    dist_info = f"{tags['name']}-{tags['version']}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{tags['name']}/__init__.py", "")
        archive.writestr(f"{dist_info}/METADATA",
                         f"Metadata-Version: 2.1\nName: {tags['name']}\nVersion: {tags['version']}\n{metadata}")
        archive.writestr(f"{dist_info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                               f"Tag: {tags['py']}-{tags['abi']}-{tags['plat']}\n")
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
        archive.writestr(f"{dist_info}/RECORD", "")
    return path


def entry_for(path: Path, role: str = "x86_64"):
    return build.Entry(role, path.name, hashlib.sha256(path.read_bytes()).hexdigest())


# -- the lock ---------------------------------------------------------------------------------------

def test_the_repository_lock_is_complete_and_in_its_written_form():
    entries = build.parse_lock(LOCK_TEXT)
    assert build.format_lock(entries) == LOCK_TEXT  # what --update-lock writes: no hand edits
    names = {e.name for e in entries if e.role == "tool"}
    assert {"pip", "shiv", "click", "setuptools"} <= names
    for arch in build.ARCHES:
        (crypto,), cffi = build.platform_wheels(entries, arch)
        # the build shipped is the manylinux_2_28 one (the README's glibc 2.28), one abi3 for every Python
        assert crypto.tags["plat"] == f"manylinux_2_28_{arch}" and crypto.tags["abi"] == "abi3"
        assert crypto.tags["py"] == "cp39"
        assert sorted(cffi) == sorted(build.PYTHONS)
        assert len({e.version for e in cffi.values()}) == 1
    assert all(e.tags["build"] is None for e in entries)


def test_a_wheel_name_with_a_build_tag_is_read_as_one():
    tags = build.wheel_tags("cffi-2.0.0-1-cp39-cp39-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
    assert (tags["name"], tags["version"], tags["build"], tags["plat"]) == \
        ("cffi", "2.0.0", "1", "manylinux2014_x86_64.manylinux_2_17_x86_64")


def _replace(old, new):
    assert old in LOCK_TEXT
    return LOCK_TEXT.replace(old, new, 1)


CRYPTO_AARCH64 = next(line for line in LOCK_TEXT.splitlines() if line.startswith("aarch64") and "cryptography-" in line)
CFFI314_AARCH64 = next(line for line in LOCK_TEXT.splitlines() if line.startswith("aarch64") and "-cp314-" in line)


@pytest.mark.parametrize("text, message", [
    (lambda: _replace("tool     pip-", "tools    pip-"), "build.lock line 6: role 'tools' is not one of tool, site"),
    (lambda: _replace("sha256:63c1", "sha256:63C1"), "is not a sha256 (64 lowercase hex digits)"),
    (lambda: _replace("  sha256:63c1", "  md5:63c1"), "line 5: expected `ROLE FILE.whl sha256:HEX`"),
    (lambda: _replace(CFFI314_AARCH64 + "\n", ""), "build.lock: aarch64 has no cffi wheel for Python 3.14"),
    (lambda: LOCK_TEXT + CRYPTO_AARCH64.replace("51.0.1", "50.0.0") + "\n",
     "aarch64 needs exactly one cryptography abi3 wheel"),
    (lambda: LOCK_TEXT + CRYPTO_AARCH64 + "\n", "is listed twice for aarch64"),
    (lambda: LOCK_TEXT + CFFI314_AARCH64.replace("aarch64 ", "x86_64 ", 1) + "\n", "is not a wheel for x86_64"),
    (lambda: "\n".join(line for line in LOCK_TEXT.splitlines() if " shiv-" not in line), "no `tool` wheel for shiv"),
])
def test_a_malformed_or_incomplete_lock_stops_naming_what_is_wrong(text, message):
    with pytest.raises(SystemExit) as raised:
        build.parse_lock(text())
    assert str(raised.value.code).startswith("build: build.lock") and message in str(raised.value.code)


def test_the_run_time_requirements_of_a_wheel_are_read_from_its_metadata(tmp_path):
    """What assemble() compares with the lock: a new run-time dependency of cryptography stops the build."""
    wheel = make_wheel(tmp_path, "cryptography-51.0.1-cp39-abi3-manylinux_2_28_x86_64.whl", metadata=(
        "Requires-Dist: cffi>=2.0.0; platform_python_implementation != 'PyPy'\n"
        "Requires-Dist: typing-extensions>=4.13.2; python_full_version < '3.11'\n"
        "Requires-Dist: bcrypt>=3.1.5; extra == \"ssh\"\n"))
    assert build.runtime_requirements(wheel) == {"cffi", "typing_extensions"}


# -- wheels: the cache and pip ------------------------------------------------------------------------

def test_a_cached_wheel_is_used_only_when_it_is_the_locked_one(tmp_path):
    cache = tmp_path / "wheels"
    good = make_wheel(cache, "demo-1.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    entry = entry_for(good)
    assert build.fetch(Path("/nonexistent/python"), [entry], cache) == {good.name: good}  # no pip run
    make_wheel(cache, good.name, extra={"demo/planted.py": "print('planted')\n"})
    with pytest.raises(SystemExit) as raised:
        build.fetch(Path("/nonexistent/python"), [entry], cache)
    message = str(raised.value.code)
    assert message.startswith(f"build: {good}: sha256 ") and f"build.lock says {entry.sha256}" in message


def test_a_link_in_the_cache_is_refused(tmp_path):
    cache = tmp_path / "wheels"
    real = make_wheel(tmp_path / "elsewhere", "demo-1.0-py3-none-any.whl")
    cache.mkdir()
    (cache / real.name).symlink_to(real)
    with pytest.raises(SystemExit, match="not a regular file"):
        build.fetch(Path(sys.executable), [entry_for(real, "site")], cache)


def _index(root: Path, *wheels: Path) -> str:
    """A PEP 503 index of files (what ACTVT_BUILD_INDEX_URL may name): root/<project>/index.html."""
    for wheel in wheels:
        project = root / build.wheel_tags(wheel.name)["name"]
        project.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, project / wheel.name)
        (project / "index.html").write_text("".join(f'<a href="{p.name}">{p.name}</a>\n'
                                                    for p in sorted(project.glob("*.whl"))))
    return f"file://{root}"


@pytest.fixture
def hostile_pip(tmp_path, monkeypatch):
    """The builder's pip configuration points at a folder holding a preferred wheel (a build tag)."""
    links = tmp_path / "links"
    make_wheel(links, "demo-1.0-9-cp39-abi3-manylinux_2_28_x86_64.whl", extra={"demo/planted.py": ""})
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {links}\nno-index = true\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return links


def test_pip_downloads_the_locked_wheel_from_the_index_and_ignores_the_builders_configuration(
        tmp_path, monkeypatch, hostile_pip):
    locked = make_wheel(tmp_path / "published", "demo-1.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    other_arch = make_wheel(tmp_path / "published", "demo-1.0-cp39-abi3-manylinux_2_28_aarch64.whl")
    monkeypatch.setenv(build.INDEX_VARIABLE, _index(tmp_path / "index", locked, other_arch))
    cache = tmp_path / "wheels"
    paths = build.fetch(Path(sys.executable), [entry_for(locked)], cache)
    assert paths[locked.name].read_bytes() == locked.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == [locked.name]  # nothing else kept, no temporary folder


@pytest.mark.parametrize("served", ["demo-1.0-cp39-abi3-manylinux_2_28_x86_64.whl",  # same name, other bytes
                                    "demo-1.0-1-cp39-abi3-manylinux_2_28_x86_64.whl"])  # a build tag
def test_a_mirror_serving_another_file_stops_the_download_naming_it(tmp_path, monkeypatch, capfd, served):
    locked = make_wheel(tmp_path / "published", "demo-1.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    swapped = make_wheel(tmp_path / "swapped", served, extra={"demo/planted.py": ""})
    monkeypatch.setenv(build.INDEX_VARIABLE, _index(tmp_path / "index", swapped))
    cache = tmp_path / "wheels"
    with pytest.raises(SystemExit) as raised:
        build.fetch(Path(sys.executable), [entry_for(locked)], cache)
    assert str(raised.value.code).startswith(f"build: {locked.name} could not be downloaded as build.lock has it "
                                             f"from file://{tmp_path}/index")
    err = capfd.readouterr().err
    assert "DO NOT MATCH THE HASHES" in err and served in err
    assert list(cache.iterdir()) == []


def test_pip_runs_without_the_builders_variables_and_configuration(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://elsewhere.example/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/etc/pip.conf")
    env = build.pip_env()
    assert env["PIP_CONFIG_FILE"] == os.devnull and "PIP_INDEX_URL" not in env
    assert build.index_url() == "https://pypi.org/simple"
    monkeypatch.setenv(build.INDEX_VARIABLE, "https://mirror.example/simple")
    assert build.index_url() == "https://mirror.example/simple"


def test_download_options_select_exactly_the_locked_tags():
    entries = build.parse_lock(LOCK_TEXT)
    (crypto,), cffi = build.platform_wheels(entries, "aarch64")
    assert build.target_options(crypto.tags) == ["--implementation", "cp", "--python-version", "3.9", "--abi", "abi3",
                                                 "--platform", "manylinux_2_28_aarch64"]
    assert build.target_options(cffi["3.14"].tags)[:6] == ["--implementation", "cp", "--python-version", "3.14",
                                                            "--abi", "cp314"]
    assert build.target_options(build.wheel_tags("shiv-1.0.8-py2.py3-none-any.whl")) == []
    # --update-lock asks pip for manylinux_2_28 first (pip prefers the platforms in the order given)
    assert build.manylinux("x86_64")[0] == "manylinux_2_28_x86_64"


# -- the zipapp's entries -----------------------------------------------------------------------------

def _zipapp(path: Path, names, mode: int, date_time):
    with open(path, "wb") as handle:
        handle.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(handle, "w") as archive:
            for name in names:
                info = zipfile.ZipInfo(name, date_time)
                info.external_attr = (0o100000 | mode) << 16
                archive.writestr(info, f"content of {name}")


def test_every_entry_gets_a_fixed_mode_time_and_order(tmp_path):
    names = ["site-packages/b.py", "_bootstrap/__init__.py", "site-packages/_x.cpython-39-x86_64-linux-gnu.so",
             "__main__.py"]
    one, two = tmp_path / "one.pyz", tmp_path / "two.pyz"
    _zipapp(one, names, 0o600, (2026, 12, 7, 13, 0, 0))  # what umask 077 and a clock give
    _zipapp(two, list(reversed(names)), 0o664, (1999, 1, 1, 0, 0, 0))
    assert one.read_bytes() != two.read_bytes()
    for path in (one, two):
        build.normalize(path, build.DEFAULT_EPOCH)
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(one) as archive:
        got = [(i.filename, (i.external_attr >> 16) & 0o777, i.date_time) for i in archive.infolist()]
        assert archive.read("__main__.py") == b"content of __main__.py"
    assert got == [(name, 0o755 if name.endswith(".so") else 0o644, (1980, 1, 1, 0, 0, 0)) for name in sorted(names)]


def test_the_entry_time_follows_source_date_epoch_in_utc(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    path = tmp_path / "one.pyz"
    _zipapp(path, ["a.py"], 0o644, (2026, 1, 1, 0, 0, 0))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build.normalize(path, build.epoch())
    with zipfile.ZipFile(path) as archive:
        assert archive.infolist()[0].date_time == (2023, 11, 14, 22, 13, 20)


# -- signing ------------------------------------------------------------------------------------------

needs_ssh_keygen = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen (OpenSSH)")


def _key(folder: Path, name: str, kind: str = "ed25519") -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def _verify(allowed: Path, pyz: Path, identity=build.SIGNER):
    """The README's command, as a user runs it."""
    with open(pyz, "rb") as stdin:
        return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", identity, "-n", "file",
                               "-s", f"{pyz}.sig"], stdin=stdin, capture_output=True, text=True)


@pytest.fixture
def release(tmp_path):
    pyz = tmp_path / "dist" / "install.pyz"
    pyz.parent.mkdir()
    pyz.write_bytes(b"#!/usr/bin/env python3\nprint('installer')\n")
    key = _key(tmp_path, "release")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"# release keys\n{build.SIGNER} namespaces=\"file\" {(tmp_path / 'release.pub').read_text()}")
    return pyz, key, allowed


@needs_ssh_keygen
def test_a_signed_release_verifies_and_a_changed_byte_does_not(release, capsys):
    pyz, key, allowed = release
    sig = build.sign(pyz, key, allowed)
    assert sig == Path(f"{pyz}.sig") and sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    good = _verify(allowed, pyz)
    assert good.returncode == 0 and f'Good "file" signature for {build.SIGNER}' in good.stdout + good.stderr
    pyz.write_bytes(pyz.read_bytes().replace(b"installer", b"installeR"))
    bad = _verify(allowed, pyz)
    assert bad.returncode != 0 and "Good" not in bad.stdout + bad.stderr
    assert _verify(allowed, pyz, identity="someone@example.com").returncode != 0


@needs_ssh_keygen
def test_a_key_that_is_not_in_allowed_signers_is_refused(release, tmp_path):
    pyz, _, allowed = release
    other = _key(tmp_path, "other")
    with pytest.raises(SystemExit) as raised:
        build.sign(pyz, other, allowed)
    message = str(raised.value.code)
    assert message.startswith(f"build: {other} is not a release key of allowed_signers for {build.SIGNER}")
    assert (tmp_path / "other.pub").read_text().split()[1] in message  # the line to add, if it should be
    assert not Path(f"{pyz}.sig").exists()
    # and a signature by that key, made by hand, does not verify with the README's command
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(other), "-n", "file", str(pyz)], check=True)
    assert _verify(allowed, pyz).returncode != 0


@needs_ssh_keygen
def test_only_ed25519_keys_sign(release, tmp_path):
    pyz, _, allowed = release
    with pytest.raises(SystemExit, match="is a ecdsa-sha2-nistp256 key; release signatures are made with an Ed25519"):
        build.sign(pyz, _key(tmp_path, "ecdsa", "ecdsa"), allowed)
    assert not Path(f"{pyz}.sig").exists()


@needs_ssh_keygen
def test_the_first_signed_release_prints_the_line_for_allowed_signers(release, tmp_path, capsys):
    pyz, key, _ = release
    empty = tmp_path / "empty_signers"
    empty.write_text((HERE / "allowed_signers").read_text())  # the repository's file: no key yet
    build.sign(pyz, key, empty)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f'{build.SIGNER} namespaces="file" ' + " ".join((tmp_path / "release.pub").read_text().split()[:2])
    empty.write_text(empty.read_text() + line + "\n")
    assert _verify(empty, pyz).returncode == 0


# -- the Pythons the launcher accepts are the ones the wheels allow ----------------------------------------

@pytest.mark.parametrize("version, requires, allowed", [
    ((3, 9, 2), ">=3.9, !=3.9.0, !=3.9.1", True), ((3, 9, 1), ">=3.9, !=3.9.0, !=3.9.1", False),
    ((3, 9, 0), ">=3.9", True), ((3, 8, 19), ">=3.9", False), ((3, 11, 4), "!=3.11.*", False),
    ((3, 12, 0), "!=3.11.*", True), ((3, 10, 1), "~=3.9", True), ((3, 14, 0), "<3.14", False), ((3, 9, 5), "", True),
    ((3, 13, 0), "==3.13.*", True), ((3, 9, 2), ">3.9.1", True),
])
def test_requires_python_is_read_as_pep_440_says(version, requires, allowed):
    assert build.python_allowed(version, requires) is allowed


@pytest.mark.parametrize("requires", [">=3.9rc1", "<=3.*", "foo"])
def test_a_requires_python_the_build_cannot_read_stops_it(requires):
    with pytest.raises(SystemExit, match="cannot read the Requires-Python clause"):
        build.python_allowed((3, 9, 2), requires, "x.whl")


def _carried(tmp_path, requires):
    """A cffi wheel for each of PYTHONS (>=3.9) and a cryptography wheel stating ``requires``."""
    wheels = {}
    for python in build.PYTHONS:
        tag = "cp" + python.replace(".", "")
        path = make_wheel(tmp_path, f"cffi-2.0.0-{tag}-{tag}-manylinux2014_x86_64.whl", metadata="Requires-Python: >=3.9\n")
        wheels[path.name] = path
    crypto = make_wheel(tmp_path, "cryptography-51.0.1-cp39-abi3-manylinux_2_28_x86_64.whl",
                        metadata=f"Requires-Python: {requires}\n\nRequires-Python: <3\n" if requires else "")
    wheels[crypto.name] = crypto
    return wheels


def test_the_build_stops_when_the_launchers_oldest_python_is_not_the_wheels(tmp_path):
    """The launcher's OLDEST (3.9.2) is what cryptography's Requires-Python allows first (it excludes 3.9.0 and
    3.9.1): the build checks it against the carried wheels, so the two cannot drift apart."""
    oldest, newest = build.launcher_range()
    assert (oldest, newest) == ((3, 9, 2), (3, 14))
    wheels = _carried(tmp_path, ">=3.9, !=3.9.0, !=3.9.1")
    build.check_python_range(wheels, oldest, newest)
    with pytest.raises(SystemExit) as stop:
        build.check_python_range(wheels, (3, 9, 0), newest)
    assert str(stop.value.code) == (
        "build: installer/launcher/launcher.py's OLDEST is 3.9.0, but the carried wheels' Requires-Python allow "
        "3.9.2 first (cryptography-51.0.1-cp39-abi3-manylinux_2_28_x86_64.whl: >=3.9, !=3.9.0, !=3.9.1): "
        "make OLDEST 3.9.2")
    with pytest.raises(SystemExit, match="allow 3.9.0 first .none refuses it.: make OLDEST 3.9.0"):
        build.check_python_range(_carried(tmp_path / "newer", ""), oldest, newest)  # a floor that went away
    with pytest.raises(SystemExit, match=r"cryptography-51.0.1-\S+ refuse Python 3.12.0, which the launcher accepts "
                                         r"\(3.9.2 to 3.14\)"):
        build.check_python_range(_carried(tmp_path / "hole", ">=3.9.2, !=3.12.*"), oldest, newest)
    with pytest.raises(SystemExit, match="PYTHONS is 3.9, .*, 3.14, but the launcher accepts 3.9, .*, 3.13$"):
        build.check_python_range(wheels, oldest, (3, 13))
