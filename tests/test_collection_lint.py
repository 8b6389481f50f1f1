"""The Ansible collection actvt.installer (contrib/ansible) under the real linters, as contrib/ansible/README.md
("Checking the collection") describes: ansible-lint's production profile, ansible-galaxy build + install of
the tarball, ansible-doc of the module and the role, and ansible-test sanity; each also on a broken copy, so
the check is seen to fail.

The linters live in .venv/lint (scripts/test.sh installs tests/collection-lint.txt there, and downloads the
wheels of tests/ansible-test-sanity.txt into .venv/lint/wheels). Missing, the tests are skipped with the
reason, except under CI=true, where they fail. Nothing runs in the checkout and nothing uses the network: the
collection is copied to a temporary folder, HOME is a temporary folder too, whose pip.conf says no-index
(ansible-test builds its sanity environments from the local wheels) and whose ansible-test cache holds a
get-pip stand-in that installs the locked pip wheel (ansible-test would download get-pip.py, see
ansible_test/_util/target/setup/requirements.py in the installed ansible-core).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "contrib" / "ansible"
LINT = REPO / ".venv" / "lint"
WHEELS = LINT / "wheels"
SANITY_LOCK = REPO / "tests" / "ansible-test-sanity.txt"
FQCN = "actvt.installer.actvt_install"
# the sanity tests with requirements whose pins tests/ansible-test-sanity.txt holds (scripts/lock_collection_lint.sh)
LOCKED_SANITY_TESTS = ("ansible-doc", "import", "import.plugin", "integration-aliases", "pep8", "pylint",
                       "runtime-metadata", "validate-modules", "yamllint")

# ansible-test's bootstrap runs this as get-pip.py (GET_PIP, via its quiet_pip.py) with the packages to
# install (pip==X) and get-pip's --no-setuptools/--no-wheel: pip is run from its locked wheel instead.
GET_PIP = """import glob, os, sys
WHEELS = %r
sys.path.insert(0, glob.glob(os.path.join(WHEELS, "pip-*.whl"))[0])
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEELS] + args))
"""


def _unavailable(reason):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("collection linters unavailable under CI=true: %s (scripts/test.sh installs them)" % reason,
                    pytrace=False)
    pytest.skip("collection linters unavailable: %s (scripts/test.sh installs them)" % reason)


def locked_hashes():
    return set(re.findall(r"--hash=sha256:([0-9a-f]{64})", SANITY_LOCK.read_text()))


@pytest.fixture(scope="module")
def lint_env(tmp_path_factory):
    """The environment the linters run in: .venv/lint first on PATH, a temporary HOME set up to work offline."""
    for tool in ("ansible-lint", "ansible-test", "ansible-galaxy", "ansible-doc"):
        if not (LINT / "bin" / tool).exists():
            _unavailable("%s missing" % (LINT / "bin" / tool))
    wheels = sorted(WHEELS.glob("*.whl"))
    if not any(w.name.startswith("pip-") for w in wheels):
        _unavailable("no pip wheel in %s" % WHEELS)
    # the wheelhouse is what the lock says (scripts/test.sh downloaded it with --require-hashes; checked again
    # here because pip below installs from it by name, without hashes)
    hashes = locked_hashes()
    for wheel in wheels:
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() in hashes, "%s is not in %s" % (wheel, SANITY_LOCK)
    home = tmp_path_factory.mktemp("home")
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\nno-index = true\nfind-links = %s\n" % WHEELS)
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True)
    pip_version = next(w.name.split("-")[1] for w in wheels if w.name.startswith("pip-"))
    (cache / ("get_pip_%s.py" % pip_version.replace(".", "_"))).write_text(GET_PIP % str(WHEELS))
    # ansible-test passes its commands HOME and PATH but no PIP_* variable (ansible_test/_internal/util.py,
    # common_environment): pip finds the no-index setting through HOME
    return {"PATH": "%s:/usr/bin:/bin" % (LINT / "bin"), "HOME": str(home), "LC_ALL": "C.UTF-8", "NO_COLOR": "1",
            "ANSIBLE_NOCOLOR": "1"}


def copy_collection(root):
    """contrib/ansible as ansible_collections/actvt/installer under root (where ansible-test wants it)."""
    dest = root / "ansible_collections" / "actvt" / "installer"
    shutil.copytree(COLLECTION, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("collections", "output", ".ansible", "__pycache__"))
    return dest


def run(env, args, cwd, **extra):
    r = subprocess.run([str(LINT / "bin" / args[0])] + args[1:], cwd=str(cwd), env=dict(env, **extra),
                       capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def doc_json(env, args, cwd):
    """ansible-doc --json ARGS as data (stdout only: ansible-core's Python warnings go to stderr)."""
    r = subprocess.run([str(LINT / "bin" / "ansible-doc"), "--json"] + args, cwd=str(cwd), env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def ansible_lint(env, dest):
    # --offline: no requirements install, no schema refresh, no version check (ansiblelint/config.py)
    return run(env, ["ansible-lint", "--offline"], dest,
               ANSIBLE_COLLECTIONS_PATH=str(dest.parents[2]))


def locked_pins(path):
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), re.M))


def test_the_linters_are_the_locked_ones(lint_env):
    """.venv/lint holds what tests/collection-lint.txt pins, and the sanity wheels are the pins of that
    ansible-test (a lock moved without scripts/lock_collection_lint.sh fails here, by name)."""
    script = ("import importlib.metadata as m, json, os, ansible_test\n"
              "data = os.path.join(os.path.dirname(ansible_test.__file__), '_data', 'requirements')\n"
              "print(json.dumps([{d.metadata['Name']: d.version for d in m.distributions()},\n"
              "                  {f: open(os.path.join(data, f)).read() for f in os.listdir(data)}]))")
    r = subprocess.run([str(LINT / "bin" / "python"), "-c", script], env=lint_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    installed, requirements = json.loads(r.stdout)
    canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    installed = {canon(k): v for k, v in installed.items()}
    lint = locked_pins(REPO / "tests" / "collection-lint.txt")
    assert lint["ansible-lint"] == "26.11.0" and lint["ansible-core"].startswith("2.19.")
    assert {k: installed.get(canon(k)) for k in lint} == lint
    wanted = {}
    for name, text in requirements.items():
        if name.startswith("sanity.") and name.endswith(".txt"):
            if name[len("sanity."):-len(".txt")] in LOCKED_SANITY_TESTS:
                wanted.update({canon(k): v for k, v in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)})
    sanity_lock = {canon(k): v for k, v in locked_pins(SANITY_LOCK).items()}
    assert {k: sanity_lock.get(k) for k in wanted} == wanted
    assert "pip" in sanity_lock


def test_ansible_lint_production_profile_passes(lint_env, tmp_path):
    rc, out = ansible_lint(lint_env, copy_collection(tmp_path))
    assert rc == 0, out[-3000:]
    assert re.search(r"^Passed: 0 failure\(s\), 0 warning\(s\) in \d+ files processed", out, re.M), out[-3000:]
    assert "Profile 'production' was required, and it passed." in out


def test_ansible_lint_fails_a_bare_command_task(lint_env, tmp_path):
    dest = copy_collection(tmp_path)
    with open(dest / "roles" / "actvt" / "tasks" / "main.yml", "a") as handle:
        handle.write("\n- name: A bare command\n  command: id\n")
    rc, out = ansible_lint(lint_env, dest)
    assert rc != 0
    assert "fqcn[action-core]: Use FQCN for builtin module actions (command)." in out, out[-3000:]
    assert "no-changed-when: Commands should not change things if nothing needs doing." in out, out[-3000:]
    assert "roles/actvt/tasks/main.yml:" in out and "Failed: " in out


def test_the_tarball_installs_offline_and_documents_the_module_and_the_role(lint_env, tmp_path):
    src = copy_collection(tmp_path / "src")
    rc, out = run(lint_env, ["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path)], src)
    assert rc == 0, out
    tarball = tmp_path / "actvt-installer-1.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "plugins/modules/actvt_install.py" in names and "roles/actvt/tasks/main.yml" in names
    assert not [n for n in names if n.startswith("playbooks/collections") or n == ".ansible-lint"], names
    rc, out = run(lint_env, ["ansible-galaxy", "collection", "install", "--offline", "-p", str(tmp_path / "installed"),
                             str(tarball)], tmp_path)
    assert rc == 0 and "actvt.installer:1.1.0 was installed successfully" in out, out
    env = dict(lint_env, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"))
    rc, out = run(env, ["ansible-doc", FQCN], tmp_path)
    # (without colour ansible-doc marks bold with asterisks)
    assert rc == 0 and re.search(r"^> MODULE \*?%s\*? \(" % re.escape(FQCN), out, re.M), out
    assert "Runs `install.pyz install --yes --json' on the target" in out, out
    doc = doc_json(env, [FQCN], tmp_path)[FQCN]["doc"]
    assert doc["short_description"] == "Install or update an Actvt server with actvt-installer"
    assert {"installer", "staged"} <= set(doc["options"]), sorted(doc["options"])
    rc, out = run(env, ["ansible-doc", "-t", "role", "actvt.installer.actvt"], tmp_path)
    assert rc == 0, out
    assert re.search(r"^ENTRY POINT: \*?main\*? - Install or update one Actvt server with actvt-installer$", out, re.M), \
        out[:2000]
    main = doc_json(env, ["-t", "role", "actvt.installer.actvt"], tmp_path)["actvt.installer.actvt"]["entry_points"]["main"]
    assert main["options"]["actvt_email"]["required"] is True, main["options"]["actvt_email"]
    rc, out = run(env, ["ansible-doc", "-l", "actvt.installer"], tmp_path)
    assert rc == 0 and FQCN in out, out


def sanity(env, dest, *args):
    return run(env, ["ansible-test", "sanity", "--python", "3.11", "--color", "no"] + list(args), dest)


# ansible-test's default set for this collection: every one runs on Python 3.11 from the local wheels.
# changelog, empty-init, pslint and shellcheck report "No tests applicable" (no changelogs/, no __init__.py,
# no PowerShell, no shell scripts).
SANITY_TESTS = ["action-plugin-docs", "ansible-doc", "compile", "ignores", "import", "line-endings",
                "no-assert", "no-get-exception", "no-illegal-filenames", "no-smart-quotes", "pep8", "pylint",
                "replace-urlopen", "runtime-metadata", "shebang", "symlinks", "use-argspec-type-path",
                "use-compat-six", "validate-modules", "yamllint"]


def test_ansible_test_sanity_passes_offline(lint_env, tmp_path):
    rc, out = sanity(lint_env, copy_collection(tmp_path))
    assert rc == 0, out[-4000:]
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, re.M)
    assert set(SANITY_TESTS) <= set(ran), sorted(set(SANITY_TESTS) - set(ran))
    assert "ERROR" not in out, out[-4000:]


def test_validate_modules_fails_a_module_without_description(lint_env, tmp_path):
    dest = copy_collection(tmp_path)
    module = dest / "plugins" / "modules" / "actvt_install.py"
    text = module.read_text()
    broken = re.sub(r"^description:\n(  .*\n)+", "", text, count=1, flags=re.M)
    assert broken != text
    module.write_text(broken)
    rc, out = sanity(lint_env, dest, "--test", "validate-modules")
    assert rc != 0
    assert re.search(r"plugins/modules/actvt_install\.py:0:0: invalid-documentation: DOCUMENTATION\.description: "
                     r"required key not provided", out), out[-3000:]
