"""The launcher's own checks (platform, cache folders), without a build: the built file itself is
tested in tests/integration/test_launcher_build.py."""

import pytest

from installer.launcher import launcher


@pytest.mark.parametrize("kwargs,message", [
    ({"machine": "riscv64"}, "supports x86_64 and aarch64 (this machine is riscv64)"),
    ({"version": (3, 8, 10)}, "needs Python 3.9.2 to 3.14 (this is 3.8.10)"),
    ({"version": (3, 9, 1)}, "needs Python 3.9.2 to 3.14 (this is 3.9.1)"),
    ({"version": (3, 9, 0)}, "needs Python 3.9.2 to 3.14 (this is 3.9.0)"),
    ({"version": (3, 15, 0)}, "needs Python 3.9.2 to 3.14 (this is 3.15.0)"),
    ({"libc": "glibc 2.17"}, "needs glibc 2.28 or newer (found: glibc 2.17)"),
    ({"libc": ""}, "needs glibc 2.28 or newer (found: no glibc)"),
    ({"system": "darwin"}, "runs on Linux servers only (this is darwin)"),
    ({"implementation": "pypy"}, "needs CPython (this is pypy)"),
])
def test_unsupported_platforms_get_a_clear_message(capsys, kwargs, message):
    args = dict(machine="x86_64", version=(3, 11), libc="glibc 2.36", system="linux", implementation="cpython")
    args.update(kwargs)
    with pytest.raises(SystemExit):
        launcher.check_platform(**args)
    assert capsys.readouterr().err == f"actvt-installer: {message}\n"


def test_supported_platforms():
    for machine, arch in (("x86_64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64")):
        for version in ((3, 9, 2), (3, 12, 0), (3, 14, 0), (3, 14, 9)):
            assert launcher.check_platform(machine, version, "glibc 2.28", "linux", "cpython") == arch


# --- the rendered file: a launcher carrying a tiny zipapp (no build needed) ---------------------------------

import ast  # noqa: E402
import base64  # noqa: E402
import hashlib  # noqa: E402
import lzma  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import zipapp  # noqa: E402

from installer.launcher import render  # noqa: E402

TEMPLATE = render._TEMPLATE
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a python under /root
#: no PYTHONUNBUFFERED (it makes CPython read a script on stdin one byte at a time) nor any other PYTHON*
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SHIV_", "ACTVT_"))}


@pytest.fixture
def shared_tmp():
    """A folder every user can enter (tmp_path is root's 0700), removed afterwards."""
    path = tempfile.mkdtemp(prefix="actvt-launcher-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user():
    """Run as uid 65534 when root (so that a test launcher never touches root's /var/cache/actvt), else as is."""
    if os.geteuid() != 0:
        return [], sys.executable
    if not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs setpriv and /usr/bin/python3 to run as another user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], SYSTEM_PYTHON


TINY_BUILD = "tinybuild"
#: the tiny zipapp's `installer.commands.cli`, which the launcher imports when it runs in its own process
TINY_CLI = "import sys\ndef main():\n    print('ran', *sys.argv[1:])\n    sys.stderr.write(repr(sys.path))\n    return 0\n"


#: the tiny zipapp's __main__.py; with TINY_REPORT it also writes where it runs from and whether Python may write
#: byte code, then waits TINY_SLEEP seconds (a run to stop)
TINY_MAIN = ("import os, sys, time\nprint('ran', *sys.argv[1:], flush=True)\nreport = os.environ.get('TINY_REPORT')\n"
             "if report:\n    with open(report + '.tmp', 'w') as handle:\n"
             "        handle.write(repr((sys.argv[0], sys.flags.dont_write_bytecode)))\n"
             "    os.rename(report + '.tmp', report)\n    time.sleep(float(os.environ.get('TINY_SLEEP', '0')))\n")


def tiny_launcher(folder):
    """install.pyz and the `actvt` command as render.py makes them, around a zipapp that prints `ran` (through
    __main__.py when the launcher execs it, through installer.commands.cli when it runs it in-process)."""
    app = os.path.join(folder, "app")
    os.makedirs(os.path.join(app, "site-packages", "installer", "commands"))
    for name, body in (("__main__.py", TINY_MAIN),
                       ("site-packages/installer/__init__.py", ""),
                       ("site-packages/installer/commands/__init__.py", ""),
                       ("site-packages/installer/commands/cli.py", TINY_CLI)):
        with open(os.path.join(app, name), "w") as handle:
            handle.write(body)
    pyz = os.path.join(folder, "tiny.pyz")
    zipapp.create_archive(app, pyz)
    data = open(pyz, "rb").read()
    text = render.render_launcher("9.9.9", TINY_BUILD, hashlib.sha256(data).hexdigest(),
                                  base64.b64encode(lzma.compress(data)).decode())
    command = render.render_command(pyz, TINY_BUILD)
    paths = {}
    for name, body in (("install.pyz", text), ("actvt", command)):
        paths[name] = os.path.join(folder, name)
        with open(paths[name], "wb") as handle:
            handle.write(body)
        os.chmod(paths[name], 0o755)
    os.chmod(pyz, 0o644)
    return paths["install.pyz"], paths["actvt"]


def extract_tiny(launcher_file, cache):
    """What shiv would have extracted of the tiny zipapp (it has no shiv bootstrap to do it itself)."""
    import zipfile

    site = os.path.join(cache, "shiv", "actvt.pyz_" + TINY_BUILD)
    with zipfile.ZipFile(os.path.join(os.path.dirname(launcher_file), "tiny.pyz")) as archive:
        archive.extractall(site, [n for n in archive.namelist() if n.startswith("site-packages/")])
    return os.path.join(site, "site-packages")


def test_the_launcher_parses_on_python_3_6(shared_tmp):
    """Issue 21 adds a message for old interpreters: the file must stay in syntax they can read."""
    launcher_file, command = tiny_launcher(shared_tmp)
    for path in (TEMPLATE, launcher_file, command):
        with open(path, encoding="utf-8") as handle:
            ast.parse(handle.read(), feature_version=(3, 6))


def test_the_rendered_file_ends_with_its_end_marker(shared_tmp):
    launcher_file, command = tiny_launcher(shared_tmp)
    for path in (launcher_file, command):
        assert open(path, "rb").read().endswith(b"\n        (main(PAYLOAD))")


def test_a_file_cut_anywhere_does_not_run(shared_tmp):
    """Every line boundary, every byte of the last lines and a sample of the others: no prefix parses, except
    the first line alone (an empty program, which any Python runs with status 0) and a keyword cut short into a
    name that is not defined; a sample through the pipe, as cloud-init runs it, exits 1 and leaves no cache."""
    launcher_file, _ = tiny_launcher(shared_tmp)
    data = open(launcher_file, "rb").read()
    first_line = data.index(b"\n") + 1
    lines = [m.end() for m in re.finditer(b"\n", data)]
    offsets = set(lines) | set(range(len(data) - 120, len(data))) | set(random.Random(7).sample(range(len(data)), 300))
    offsets = sorted(o for o in offsets if first_line < o < len(data))
    assert len(offsets) > 500
    parsed = []
    for offset in offsets:
        try:
            compile(data[:offset], "install.pyz", "exec")
            parsed.append(offset)
        except SyntaxError:
            pass
    # `t`, `tr` (of the opening `try:`) and `    i` (of the closing `if`): names, which fail when run
    assert all(data[:o].endswith((b"\nt", b"\ntr", b"\n    i")) for o in parsed), [data[o - 9:o] for o in parsed]
    sample = (parsed + lines[1:3] + lines[len(lines) // 2:len(lines) // 2 + 2] + lines[-4:]
              + list(range(len(data) - 3, len(data))))
    prefix, python = as_user()
    home = os.path.join(shared_tmp, "home")
    os.mkdir(home)
    os.chown(home, *(65534, 65534) if prefix else (os.getuid(), os.getgid()))
    env = dict(ENV, HOME=home, XDG_CACHE_HOME=home)
    for offset in sample:
        result = subprocess.run(prefix + [python, "-", "--version"], input=data[:offset], capture_output=True,
                                env=env)
        assert result.returncode == 1 and re.search(b"(SyntaxError|IndentationError|NameError): ", result.stderr), (offset, result)
        assert os.listdir(home) == [], offset
    whole = subprocess.run(prefix + [python, "-", "x"], input=data, capture_output=True, env=env)
    assert (whole.returncode, whole.stdout) == (0, b"ran x\n"), whole


def test_a_damaged_cached_zipapp_is_written_again(shared_tmp):
    launcher_file, _ = tiny_launcher(shared_tmp)
    prefix, python = as_user()
    home = os.path.join(shared_tmp, "home")
    os.mkdir(home)
    os.chown(home, *(65534, 65534) if prefix else (os.getuid(), os.getgid()))
    env = dict(ENV, HOME=home, XDG_CACHE_HOME=home)
    first = subprocess.run(prefix + [python, launcher_file, "a"], capture_output=True, text=True, env=env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "ran a\n", "")
    [cached] = [os.path.join(folder, name) for folder, _, names in os.walk(home) for name in names
                if name == "actvt.pyz"]
    good = open(cached, "rb").read()
    with open(cached, "r+b") as handle:  # one byte changed, size kept
        handle.seek(len(good) // 2)
        handle.write(bytes([good[len(good) // 2] ^ 1]))
    again = subprocess.run(prefix + [python, launcher_file, "b"], capture_output=True, text=True, env=env)
    assert (again.returncode, again.stdout) == (0, "ran b\n"), again
    assert again.stderr == "actvt-installer: the cached copy %s is damaged; writing it again\n" % cached
    assert open(cached, "rb").read() == good


# --- the import path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path0,path,pythonpath,user_site,kept", [
    (True, ["/home/u", "/usr/lib/python311.zip", "/usr/lib/python3.11"], [], None,
     ["/usr/lib/python311.zip", "/usr/lib/python3.11"]),
    (True, ["", "/usr/lib/python3.11"], [], None, ["/usr/lib/python3.11"]),
    (False, ["/usr/lib/python3.11", "lib", "./x", "/tmp/w/", "/usr/lib/python3/dist-packages"], [], None,
     ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages"]),
    (True, ["/s", "/p/a", "/usr/lib/python3.11", "/p/b/"], ["/p/a", "", "/p/b"], None, ["/usr/lib/python3.11"]),
    (False, ["/usr/lib/python3.11", "/root/.local/lib/python3.11/site-packages",
             "/root/.local/lib/python3.11/site-packages/extra", "/usr/lib/python3/dist-packages"], [],
     "/root/.local/lib/python3.11/site-packages", ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages"]),
])
def test_safe_path_keeps_only_the_interpreters_own_folders(path0, path, pythonpath, user_site, kept):
    assert launcher.safe_path(path, path0, "/tmp/w", pythonpath, user_site) == kept


def imported_names(args, env, cwd):
    """Top-level names of every module a run imports (``-X importtime`` lists them all, from start-up on)."""
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
    assert result.returncode == 0, result
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", result.stderr, re.M)
    return {name.split(".")[0] for name in names if not name.startswith("_frozen")}


def launcher_imports():
    """Every module launcher.py names in an import statement, wherever (the lazy ones too)."""
    tree = ast.parse(open(TEMPLATE, encoding="utf-8").read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - {"installer"}  # the zipapp's own package


def plant(folder, names, markers):
    for name in names:
        with open(os.path.join(folder, name + ".py"), "w") as handle:
            handle.write("open(%r, 'w').close()\n" % os.path.join(markers, name))


def test_no_module_beside_the_file_or_in_the_current_folder_is_imported(shared_tmp):
    """Planted by uid 65534 in a folder of its own: a module for every name the launcher imports (from its code
    and from runs under -X importtime), beside the file and in the current folder, for each way of starting
    it, when it execs the zipapp and when it runs it in its own process. Not one is imported, each run still
    works, and in-process the import path is what `python3 -I` has."""
    prefix, python = as_user()
    owner = (65534, 65534) if prefix else (os.getuid(), os.getgid())
    work = os.path.join(shared_tmp, "work")
    markers = os.path.join(shared_tmp, "markers")
    home = os.path.join(shared_tmp, "home")
    for folder in (work, markers, home):
        os.mkdir(folder, 0o777)
        os.chmod(folder, 0o777)
        os.chown(folder, *owner)
    launcher_file, command = tiny_launcher(work)
    for path in (launcher_file, command):
        shutil.copy(path, path + ".tmp")
        os.replace(path + ".tmp", path)
    env = dict(ENV, HOME=home, XDG_CACHE_HOME=home)
    names = launcher_imports() | imported_names(prefix + [python, "-X", "importtime", launcher_file, "x"], env, "/")
    extract_tiny(launcher_file, os.path.join(home, "actvt"))  # and in-process
    subprocess.run(["chown", "-R", "%d:%d" % owner, os.path.join(home, "actvt")], check=True)
    names |= imported_names(prefix + [python, "-X", "importtime", launcher_file, "x"], env, "/")
    assert {"base64", "hashlib", "lzma", "shutil", "stat", "os"} <= names, names
    plant(work, names, markers)
    for path in os.listdir(work):
        os.chown(os.path.join(work, path), *owner)
    # the planted modules work: a Python started there without the launcher's care imports them
    subprocess.run(prefix + [python, "-c", "import base64"], cwd=work, env=env, check=True)
    assert os.listdir(markers) == ["base64"]
    os.unlink(os.path.join(markers, "base64"))
    forms = [
        ([python, launcher_file, "x"], None),
        ([launcher_file, "x"], None),
        ([python, "-", "x"], launcher_file),
        ([python, "-I", "-", "x"], launcher_file),
        ([command, "x"], None),
    ]
    isolated = subprocess.run(prefix + [python, "-I", "-c", "import sys; print(repr(sys.path))"], cwd=work, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
    for in_process in (False, True):
        for args, stdin in forms:
            if not in_process:
                shutil.rmtree(os.path.join(home, "actvt"), ignore_errors=True)
            with open(stdin or os.devnull, "rb") as handle:
                result = subprocess.run(prefix + args, stdin=handle, capture_output=True, text=True, env=env,
                                        cwd=work)
            assert (result.returncode, result.stdout) == (0, "ran x\n"), (args, result)
            assert os.listdir(markers) == [], (args, sorted(os.listdir(markers)))
            if in_process:  # the zipapp ran in the launcher's process, with what python3 -I has on sys.path
                assert result.stderr == repr([site] + ast.literal_eval(isolated)), (args, result.stderr)
        if not in_process:
            site = extract_tiny(launcher_file, os.path.join(home, "actvt"))
            subprocess.run(["chown", "-R", "%d:%d" % owner, os.path.join(home, "actvt")], check=True)


def test_an_extraction_is_trusted_only_while_it_matches_the_zipapp(tmp_path):
    import zipfile

    pyz = tmp_path / "app.pyz"
    with zipfile.ZipFile(pyz, "w") as archive:
        archive.writestr("__main__.py", "")
        archive.writestr("site-packages/pkg/__init__.py", "x = 1\n")
        archive.writestr("site-packages/pkg/data.bin", b"\0" * 100)
    site = tmp_path / "site"
    for name, body in (("pkg/__init__.py", b"x = 1\n"), ("pkg/data.bin", b"\0" * 100)):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(body)
    assert launcher.extraction_intact(str(pyz), str(site))
    (site / "pkg/__init__.py").write_bytes(b"x = 2\n")  # same size, other bytes
    assert not launcher.extraction_intact(str(pyz), str(site))
    (site / "pkg/__init__.py").write_bytes(b"x = 1\n")
    (site / "pkg/extra.pth").write_bytes(b"import os\n")  # a file more: a .pth runs when shiv adds the folder
    assert not launcher.extraction_intact(str(pyz), str(site))
    (site / "pkg/extra.pth").unlink()
    (site / "pkg/__pycache__").mkdir()  # byte code Python writes as it imports (and checks against the source)
    (site / "pkg/__pycache__/__init__.cpython-311.pyc").write_bytes(b"...")
    assert launcher.extraction_intact(str(pyz), str(site))
    (site / "pkg/data.bin").unlink()
    assert not launcher.extraction_intact(str(pyz), str(site))
    assert not launcher.extraction_intact(str(tmp_path / "missing.pyz"), str(site))


def test_shiv_and_python_variables_that_choose_code_are_dropped():
    environ = {"SHIV_ENTRY_POINT": "os:system", "SHIV_PREPEND_PYTHONPATH": "/tmp", "SHIV_INTERPRETER": "1",
               "SHIV_FORCE_EXTRACT": "1", "PYTHONPATH": "/tmp", "PYTHONHOME": "/x", "PYTHONUNBUFFERED": "1",
               "PATH": "/usr/bin"}
    user = dict(environ)
    launcher.clean_environment(user, root=False)
    assert user == {"SHIV_FORCE_EXTRACT": "1", "PYTHONPATH": "/tmp", "PYTHONHOME": "/x", "PYTHONUNBUFFERED": "1",
                    "PATH": "/usr/bin"}
    launcher.clean_environment(environ, root=True)
    assert environ == {"SHIV_FORCE_EXTRACT": "1", "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin"}


def test_zip_members_reads_the_directory_as_zipfile_does(tmp_path):
    import zipfile

    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("a/", "")
        archive.writestr("a/b.py", "print(1)\n")
        archive.writestr("c.bin", os.urandom(5000), compress_type=zipfile.ZIP_DEFLATED)
    preamble = tmp_path / "app.pyz"  # as shiv writes it: a #! line, then the zip
    preamble.write_bytes(b"#!/usr/bin/env python3\n" + plain.read_bytes())
    for path in (plain, preamble):
        with zipfile.ZipFile(path) as archive:
            expected = {i.filename: (i.CRC, i.file_size) for i in archive.infolist() if not i.is_dir()}
        assert launcher.zip_members(str(path)) == expected
    (tmp_path / "cut.zip").write_bytes(plain.read_bytes()[:-30])
    with pytest.raises(ValueError):
        launcher.zip_members(str(tmp_path / "cut.zip"))


# --- an interpreter older than 3.9 (issue 21, item 4) -------------------------------------------------------

#: makes a real interpreter report 3.6: a .pth file in its own site-packages (only whoever can write that folder
#: can do this, so the launcher needs no hook of its own that a user's variable could reach; Debian's stdlib
#: has a sitecustomize of its own, which would win over one here)
OLD_PTH = ("import sys; exec(\"class _Version(tuple):\\n    major = property(lambda self: self[0])\\n"
           "    minor = property(lambda self: self[1])\\nsys.version_info = _Version((3, 6, 15, 'final', 0))\")\n")


def old_python(folder):
    """A venv of the host's Python whose sys.version_info says 3.6."""
    venv = os.path.join(folder, "old")
    subprocess.run([SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable, "-m", "venv",
                    "--without-pip", venv], check=True)
    [site] = [os.path.join(d, "site-packages") for d in
              (os.path.join(venv, "lib", n) for n in os.listdir(os.path.join(venv, "lib")))]
    with open(os.path.join(site, "old-version.pth"), "w") as handle:
        handle.write(OLD_PTH)
    python = os.path.join(venv, "bin", "python3")
    assert subprocess.run([python, "-I", "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                          text=True).stdout == "(3, 6)\n"
    return python


def test_an_old_python_runs_the_file_with_a_supported_one(shared_tmp):
    """The real thing, as uid 65534: a 3.6 runs the tiny launcher through the pipe; it finds the host's
    /usr/bin/python3.X, says so in one line, writes the carried zipapp itself and execs that one on it (the
    zipapp prints which interpreter runs it); the exit status is the zipapp's."""
    launcher_file, _ = tiny_launcher(shared_tmp)
    python = old_python(shared_tmp)
    prefix, _ = as_user()
    home = os.path.join(shared_tmp, "home")
    os.mkdir(home)
    os.chown(home, *(65534, 65534) if prefix else (os.getuid(), os.getgid()))
    env = dict(ENV, HOME=home, XDG_CACHE_HOME=home, PATH="/usr/local/bin:/usr/bin:/bin")
    expected = launcher.find_python(env)
    assert expected and expected[0].startswith("/usr/"), expected
    data = open(launcher_file, "rb").read()
    result = subprocess.run(prefix + [python, "-I", "-", "a", "b c"], input=data, capture_output=True, env=env)
    assert result.stderr.decode() == "actvt-installer: this Python is 3.6.15; running with %s (%s)\n" % (
        expected[0], ".".join(map(str, expected[1]))), result
    assert (result.returncode, result.stdout) == (0, b"ran a b c\n"), result
    assert [n for _, _, names in os.walk(home) for n in names] == ["actvt.pyz"]  # written once, by the 3.6


def test_the_newest_trusted_supported_interpreter_is_chosen():
    folders = {"/usr/bin/python3.12": ("cpython", (3, 12, 3)), "/opt/x/python3.14": ("cpython", (3, 6, 8)),
               "/usr/local/bin/python3.13": ("pypy", (3, 13, 0)), "/usr/bin/python3.11": ("cpython", (3, 11, 2)),
               "/home/u/bin/python3.13": ("cpython", (3, 13, 1))}
    untrusted = {"/home/u/bin/python3.13"}

    def trusted(path):
        return path if path in folders and path not in untrusted else None

    env = {"PATH": "/home/u/bin:/opt/x:relative:/usr/local/bin"}
    # 3.14 reports 3.6 (what it says counts, not its name), 3.13 is PyPy or in a folder the user owns
    assert launcher.find_python(env, folders.get, trusted) == ("/usr/bin/python3.12", (3, 12, 3))
    # 3.9.0 and 3.9.1: the bundled cryptography's Requires-Python excludes them
    for micro, found in ((1, None), (2, ("/usr/bin/python3.9", (3, 9, 2)))):
        nine = {"/usr/bin/python3.9": ("cpython", (3, 9, micro))}
        assert launcher.find_python({"PATH": "/usr/bin"}, nine.get, lambda p: p if p in nine else None) == found
    assert launcher.python_folders(env) == ["/home/u/bin", "/opt/x", "/usr/local/bin", "/usr/bin", "/bin"]
    assert launcher.find_python(env, lambda path: None, trusted) is None


@pytest.fixture
def root_only_folder():
    """A folder whose every parent only root can write (not under /tmp, which all users can write)."""
    if os.geteuid() != 0 or not os.access("/run", os.W_OK) or os.stat("/run").st_mode & 0o022:
        pytest.skip("needs root and a /run only root can write")
    path = tempfile.mkdtemp(prefix="actvt-test-", dir="/run")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_interpreter_in_a_folder_others_can_write_is_not_trusted(root_only_folder, shared_tmp):
    real = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    assert launcher.trusted_file(real) == os.path.realpath(real)
    os.symlink(real, os.path.join(shared_tmp, "python3.11"))  # under /tmp: only its real path counts, and runs
    assert launcher.trusted_file(os.path.join(shared_tmp, "python3.11")) == os.path.realpath(real)
    shutil.copy(real, os.path.join(shared_tmp, "python3.12"))
    assert launcher.trusted_file(os.path.join(shared_tmp, "python3.12")) is None  # /tmp: every user can write
    folder = os.path.join(root_only_folder, "bin")
    os.mkdir(folder, 0o755)
    python = os.path.join(folder, "python3.12")
    shutil.copy(real, python)
    assert launcher.trusted_file(python) == python
    for mode in (0o775, 0o757, 0o1777):
        os.chmod(folder, mode)
        assert launcher.trusted_file(python) is None, oct(mode)
    os.chmod(folder, 0o755)
    for mode in (0o775, 0o777, 0o644):
        os.chmod(python, mode)
        assert launcher.trusted_file(python) is None, oct(mode)
    os.chmod(python, 0o755)
    os.chown(python, 65534, 65534)
    assert launcher.trusted_file(python) is None  # another user's
    assert launcher.trusted_file(python, 65534) == python  # a user's own, for their own `actvt`
    assert launcher.trusted_file(os.path.join(folder, "missing")) is None


@pytest.mark.parametrize("release,advice", [
    ('NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.10"\n', "dnf install -y python3.11"),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\n', "dnf install -y python3.11"),
    ('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.10"\n', "dnf install -y python3.11"),
    ('ID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n', "dnf install -y python3.11"),
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="20.04"\n', "apt-get install -y python3.9"),
    ('ID=debian\nVERSION_ID="10"\n', None),
    ('ID="sles"\nID_LIKE="suse"\nVERSION_ID="15.5"\n', "zypper install -y python311"),
    ('ID=gentoo\n', None),
    ("", None),
])
def test_no_supported_interpreter_names_the_command_for_this_system(tmp_path, capsys, monkeypatch, release,
                                                                    advice):
    (tmp_path / "os-release").write_text(release)
    fields = launcher.os_release(str(tmp_path / "os-release"))
    assert launcher.install_advice(fields) == advice
    monkeypatch.setattr(launcher, "find_python", lambda environ: None)
    with pytest.raises(SystemExit) as stop:
        launcher.other_python((3, 6, 8), {}, fields)
    assert stop.value.code == 1
    install = "install one with `%s`" % advice if advice else "install one of them"
    assert capsys.readouterr().err == ("actvt-installer: needs Python 3.9.2 to 3.14 (this is 3.6.8) and found none of "
                                       "python3.9 to python3.14 on this system; %s, then run the same command "
                                       "again\n" % install)


# --- a dry run writes nothing on the host (issue 20, item 4c) -------------------------------------------------

import signal  # noqa: E402
import time  # noqa: E402


@pytest.mark.parametrize("argv,dry", [
    (["--dry-run"], True), (["install", "--json", "--dry-run"], True), (["--dry"], True), (["--d"], True),
    (["--dry-run=1"], True), ([], False), (["--days", "3"], False), (["--root", "/x", "-"], False), (["-d"], False),
])
def test_the_launcher_knows_a_dry_run_as_argparse_does(argv, dry):
    assert launcher.is_dry_run(argv) is dry


def private_folders(uid):
    """The dry-run folders of ``uid`` in every parent the launcher may choose."""
    found = []
    for parent in launcher.PRIVATE_PARENTS:
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            path = os.path.join(parent, name)
            if name.startswith(launcher.PRIVATE_PREFIX) and os.lstat(path).st_uid == uid:
                found.append(path)
    return found


def tree(folder):
    """{path: (mode, size, mtime)} of everything under folder: what a run wrote there."""
    found = {}
    for at, folders, names in os.walk(folder):
        for name in folders + names:
            st = os.lstat(os.path.join(at, name))
            found[os.path.relpath(os.path.join(at, name), folder)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def user_home(shared_tmp):
    prefix, python = as_user()
    uid = 65534 if prefix else os.getuid()
    home = os.path.join(shared_tmp, "home")
    os.mkdir(home)
    os.chown(home, *(65534, 65534) if prefix else (os.getuid(), os.getgid()))
    report = os.path.join(shared_tmp, "report")
    os.mkdir(report)
    os.chown(report, *(65534, 65534) if prefix else (os.getuid(), os.getgid()))
    env = dict(ENV, HOME=home, XDG_CACHE_HOME=home, TINY_REPORT=os.path.join(report, "r"))
    before = set(private_folders(uid))
    yield prefix, python, uid, home, env
    for path in set(private_folders(uid)) - before:
        shutil.rmtree(path, ignore_errors=True)


def test_a_dry_run_unpacks_into_a_private_folder_and_removes_it(shared_tmp, user_home):
    """Through the pipe, with no cache: the zipapp runs from a 0700 folder of the user's under a folder only root
    can rename entries of, with -B; afterwards neither the cache nor that folder is there, and the status is
    the installer's."""
    prefix, python, uid, home, env = user_home
    launcher_file, _ = tiny_launcher(shared_tmp)
    data = open(launcher_file, "rb").read()
    before = set(private_folders(uid))
    result = subprocess.run(prefix + [python, "-", "--dry-run", "x"], input=data, capture_output=True, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ran --dry-run x\n", b""), result
    pyz, no_bytecode = ast.literal_eval(open(env["TINY_REPORT"]).read())
    folder = pyz.split("/pyz/")[0]
    assert os.path.basename(folder).startswith("actvt-dry-run-") and os.path.dirname(folder) in launcher.PRIVATE_PARENTS
    assert no_bytecode == 1
    assert os.listdir(home) == [] and set(private_folders(uid)) == before and not os.path.exists(folder)


def test_the_actvt_command_dry_runs_its_kept_zipapp_from_a_private_folder(shared_tmp, user_home):
    prefix, python, uid, home, env = user_home
    launcher_file, command = tiny_launcher(shared_tmp)
    before = set(private_folders(uid))
    result = subprocess.run(prefix + [python, command, "--dry-run"], capture_output=True, env=env)
    assert (result.returncode, result.stdout) == (0, b"ran --dry-run\n"), result
    pyz, no_bytecode = ast.literal_eval(open(env["TINY_REPORT"]).read())
    assert (pyz, no_bytecode) == (os.path.join(shared_tmp, "tiny.pyz"), 1)
    assert os.listdir(home) == [] and set(private_folders(uid)) == before


def test_a_dry_run_uses_a_ready_cache_as_it_is(shared_tmp, user_home):
    """A cache that holds this build intact is run from in this process, and nothing in it changes (no byte code)."""
    prefix, python, uid, home, env = user_home
    launcher_file, _ = tiny_launcher(shared_tmp)
    first = subprocess.run(prefix + [python, launcher_file, "a"], capture_output=True, env=env)
    assert first.returncode == 0, first
    site = extract_tiny(launcher_file, os.path.join(home, "actvt"))
    subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), home], check=True)
    cached = tree(home)
    result = subprocess.run(prefix + [python, launcher_file, "--dry-run"], capture_output=True, text=True, env=env)
    assert (result.returncode, result.stdout) == (0, "ran --dry-run\n"), result
    assert site in result.stderr  # TINY_CLI: run in this process, from the cache
    assert tree(home) == cached
    assert not [n for n in cached if "__pycache__" in n]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_dry_run_removes_its_folder(shared_tmp, user_home, signum):
    prefix, python, uid, home, env = user_home
    launcher_file, _ = tiny_launcher(shared_tmp)
    env = dict(env, TINY_SLEEP="60")
    process = subprocess.Popen(prefix + [python, launcher_file, "--dry-run"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 30
    while not os.path.exists(env["TINY_REPORT"]) and time.time() < deadline:
        time.sleep(0.05)
    pyz, _ = ast.literal_eval(open(env["TINY_REPORT"]).read())
    folder = pyz.split("/pyz/")[0]
    assert os.path.isdir(folder)
    process.send_signal(signum)
    process.communicate(timeout=30)
    assert process.returncode == -signum  # the installer's end (killed by the signal) is the launcher's
    assert not os.path.exists(folder) and os.listdir(home) == []


def test_a_killed_dry_run_leaves_a_folder_the_next_one_sweeps_once_unused(shared_tmp, user_home):
    """SIGKILL leaves the launcher no time: its folder stays while the installer it started runs (which
    holds the folder's lock), and the next dry run removes it once that one has ended too."""
    prefix, python, uid, home, env = user_home
    launcher_file, _ = tiny_launcher(shared_tmp)
    process = subprocess.Popen(prefix + [python, launcher_file, "--dry-run"], stdout=subprocess.PIPE,
                               env=dict(env, TINY_SLEEP="60"))
    deadline = time.time() + 30
    while not os.path.exists(env["TINY_REPORT"]) and time.time() < deadline:
        time.sleep(0.05)
    folder = ast.literal_eval(open(env["TINY_REPORT"]).read())[0].split("/pyz/")[0]
    os.unlink(env["TINY_REPORT"])
    process.kill()
    process.wait()
    child = [int(p) for p in os.listdir("/proc") if p.isdigit() and os.path.exists("/proc/%s/cmdline" % p)
             and folder.encode() in open("/proc/%s/cmdline" % p, "rb").read()]
    assert len(child) == 1, child
    again = subprocess.run(prefix + [python, launcher_file, "--dry-run"], capture_output=True, env=env)
    assert again.returncode == 0 and os.path.isdir(folder)  # in use: kept
    os.kill(child[0], signal.SIGKILL)
    while os.path.exists("/proc/%d" % child[0]) and open("/proc/%d/stat" % child[0]).read().split()[2] != "Z":
        time.sleep(0.05)
    again = subprocess.run(prefix + [python, launcher_file, "--dry-run"], capture_output=True, env=env)
    assert again.returncode == 0 and not os.path.exists(folder)  # no one holds its lock: swept
    assert folder not in private_folders(uid)


def test_a_dry_run_folder_is_made_only_where_others_cannot_plant_or_rename(root_only_folder, monkeypatch):
    """As root. Parents another user owns or can write (not sticky), or reached through a link into one, are
    passed over; mkdtemp's names are random and mkdir takes no existing name, so nothing planted in the
    parent becomes the folder; entries named like dry-run folders that are not root's 0700 folders are
    left alone by the sweep."""
    theirs = os.path.join(root_only_folder, "theirs")
    os.mkdir(theirs)
    os.chown(theirs, 65534, 65534)
    shared = os.path.join(root_only_folder, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    link = os.path.join(root_only_folder, "link")
    os.symlink(theirs, link)
    good = os.path.join(root_only_folder, "good")
    os.mkdir(good, 0o755)
    target = os.path.join(root_only_folder, "target")
    os.mkdir(target, 0o700)
    os.mkdir(os.path.join(good, "actvt-dry-run-theirs"), 0o700)
    os.chown(os.path.join(good, "actvt-dry-run-theirs"), 65534, 65534)  # another user's: not ours to remove
    os.symlink(target, os.path.join(good, "actvt-dry-run-link"))  # a root-owned link: must not be followed
    os.mkdir(os.path.join(good, "actvt-dry-run-open"), 0o755)  # root's, but not 0700: not a dry run's
    for parent in (theirs, shared, link):
        assert launcher.trusted_parent(parent) is None, parent
    assert launcher.trusted_parent(good) == good
    sticky = os.path.join(root_only_folder, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    assert launcher.trusted_parent(sticky) == sticky  # as /var/tmp: others cannot rename or remove ours
    assert launcher.trusted_parent(sticky, sticky=False) is None  # a cache is never shared
    monkeypatch.setattr(launcher, "PRIVATE_PARENTS", (theirs, shared, link, good))
    folder, lock = launcher.private_folder()
    try:
        assert os.path.dirname(folder) == good and os.path.basename(folder).startswith("actvt-dry-run-")
        st = os.lstat(folder)
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
        assert os.listdir(theirs) == os.listdir(shared) == []
        assert os.path.islink(os.path.join(good, "actvt-dry-run-link")) and os.listdir(target) == []
        assert os.path.isdir(os.path.join(good, "actvt-dry-run-open"))
        assert os.path.isdir(os.path.join(good, "actvt-dry-run-theirs"))
    finally:
        lock.close()
        shutil.rmtree(folder)


def test_an_old_python_dry_run_writes_nothing_either(shared_tmp, user_home):
    """A 3.6 hands a dry run to the host's supported Python as it does a real one, from the private folder."""
    prefix, python, uid, home, env = user_home
    launcher_file, _ = tiny_launcher(shared_tmp)
    old = old_python(shared_tmp)
    env = dict(env, PATH="/usr/local/bin:/usr/bin:/bin")
    before = set(private_folders(uid))
    result = subprocess.run(prefix + [old, "-I", "-", "--dry-run"], input=open(launcher_file, "rb").read(),
                            capture_output=True, env=env)
    assert (result.returncode, result.stdout) == (0, b"ran --dry-run\n"), result
    assert result.stderr.startswith(b"actvt-installer: this Python is 3.6.15; running with /usr/")
    pyz, no_bytecode = ast.literal_eval(open(env["TINY_REPORT"]).read())
    assert os.path.basename(pyz.split("/pyz/")[0]).startswith("actvt-dry-run-") and no_bytecode == 1
    assert os.listdir(home) == [] and set(private_folders(uid)) == before
