"""The Ansible collection actvt.installer (contrib/ansible, issue 20 items 4 and 5), as far as it can be
checked without Ansible: its version is the product's, the role's argument_specs agree with its
defaults, the module's documentation agrees with its argument_spec (what ansible-doc shows is what it
takes), and the installer's dry run plans with files staged elsewhere (``--staged-file``, the role's
check mode). The real ansible-galaxy, ansible-playbook and check mode: tests/integration/test_fleet_e2e.py.
"""

import ast
import json
import os
import sys
import types

import pytest
import yaml

import installer
from installer.core import paths

from helpers import run_cli, tree_digest

COLLECTION = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "contrib", "ansible")
MODULE = os.path.join(COLLECTION, "plugins", "modules", "actvt_install.py")
ROLE = os.path.join(COLLECTION, "roles", "actvt")
ENV = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "NO_COLOR": "1"}

pytestmark = pytest.mark.usefixtures("small_ca_keys")


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def test_the_collections_version_is_the_products():
    galaxy = load(os.path.join(COLLECTION, "galaxy.yml"))
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("actvt", "installer", installer.__version__)
    assert "playbooks/collections" in galaxy["build_ignore"]  # the checkout's link to the collection itself
    assert os.path.islink(os.path.join(COLLECTION, "playbooks/collections/ansible_collections/actvt/installer"))
    assert os.path.realpath(os.path.join(COLLECTION, "playbooks/collections/ansible_collections/actvt/installer")) \
        == os.path.realpath(COLLECTION)
    assert load(os.path.join(COLLECTION, "meta", "runtime.yml"))["requires_ansible"].startswith(">=")


def test_the_roles_argument_specs_agree_with_its_defaults():
    defaults = load(os.path.join(ROLE, "defaults", "main.yml"))
    options = load(os.path.join(ROLE, "meta", "argument_specs.yml"))["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(options), set(defaults) - set(options)
    for name, spec in options.items():
        assert spec.get("description") and spec.get("type"), name
        if name in defaults and "{{" not in str(defaults[name]):
            assert spec.get("default") == defaults[name], name
        if "default" in spec:
            assert name in defaults, name  # one place holds a default: defaults/main.yml, mirrored
        if spec.get("required"):
            assert name not in defaults, name  # a default (even "") would satisfy `required`
    assert options["actvt_mode"]["choices"] == ["auto", "standalone", "proxy"]
    assert options["actvt_email"].get("required") is True and options["actvt_mtls"]["type"] == "bool"


def module_parts():
    """(DOCUMENTATION, EXAMPLES, RETURN as data; the argument_spec the module gives AnsibleModule)."""
    with open(MODULE) as handle:
        text = handle.read()
    assert text.startswith("#!/usr/bin/python\n")  # so Ansible uses ansible_python_interpreter
    docs = {node.targets[0].id: yaml.safe_load(node.value.value) for node in ast.parse(text).body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")}

    class Spec(Exception):
        pass

    class AnsibleModule:
        def __init__(self, argument_spec, supports_check_mode):
            raise Spec(argument_spec, supports_check_mode)

    basic = types.ModuleType("ansible.module_utils.basic")
    basic.AnsibleModule = AnsibleModule
    saved = {name: sys.modules.get(name) for name in ("ansible", "ansible.module_utils", "ansible.module_utils.basic")}
    sys.modules.update({"ansible": types.ModuleType("ansible"), "ansible.module_utils": types.ModuleType("x"),
                        "ansible.module_utils.basic": basic})
    try:
        namespace = {"__name__": "actvt_install"}
        exec(compile(text, MODULE, "exec"), namespace)
        with pytest.raises(Spec) as spec:
            namespace["main"]()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return docs, spec.value.args[0], spec.value.args[1]


def test_the_modules_documentation_is_what_it_takes_and_returns():
    docs, argument_spec, check_mode = module_parts()
    doc = docs["DOCUMENTATION"]
    assert doc["module"] == "actvt_install" and doc["description"] and doc["author"] and doc["short_description"]
    assert check_mode and doc["attributes"]["check_mode"]["support"] == "full"
    assert set(doc["options"]) == set(argument_spec)
    for name, spec in argument_spec.items():
        option = doc["options"][name]
        assert option["type"] == spec["type"] and option.get("required", False) == spec.get("required", False), name
        assert option.get("default") == spec.get("default"), name
    assert all(task["actvt.installer.actvt_install"]["installer"] for task in docs["EXAMPLES"])
    assert {"url", "mode", "mtls", "notes", "changes", "summary"} <= set(docs["RETURN"])
    assert all({"description", "returned", "type"} <= set(value) for value in docs["RETURN"].values())


def test_the_role_calls_the_module_by_its_fqcn_and_stages_in_check_mode():
    tasks = load(os.path.join(ROLE, "tasks", "main.yml"))
    [block] = [task for task in tasks if "block" in task]
    [run] = [task for task in block["block"] if "actvt.installer.actvt_install" in task]
    [staging] = [task for task in block["block"] if "ansible.builtin.tempfile" in task]
    assert staging["check_mode"] is False and staging["when"] == "ansible_check_mode"
    assert "prefix" in staging["ansible.builtin.tempfile"] and "path" not in staging["ansible.builtin.tempfile"]
    [removal] = block["always"]
    assert removal["ansible.builtin.file"]["state"] == "absent" and removal["check_mode"] is False
    assert "installer_sha256" in run["actvt.installer.actvt_install"]


# --- the installer's dry run on staged files (the role's check mode) -------------------------------


@pytest.fixture
def fleet_ca(tmp_path):
    folder = tmp_path / "fleet"
    assert run_cli(["ca", "init", "--dir", str(folder)], base=ENV)[0] == 0
    return folder


def server(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return root


def test_a_dry_run_plans_with_the_staged_trust_file_as_if_it_were_at_its_path(tmp_path, fleet_ca, capsys):
    root = server(tmp_path)
    (root / "stage").mkdir(mode=0o700)
    (root / "stage/fleet-ca.pem").write_bytes((fleet_ca / "trust.pem").read_bytes())
    env = {"ACTVT_MTLS_CA_FILE": "/etc/actvt/fleet-ca.pem"}
    # without it, the file is not there yet: the move to a fleet CA fails its dry run (issue 20, item 4)
    status, _ = run_cli(["--dry-run", "--yes", "--json", "--root", str(root)], env, base=ENV)
    assert status == 2 and "ACTVT_MTLS_CA_FILE: /etc/actvt/fleet-ca.pem does not exist" in capsys.readouterr().err
    before = tree_digest(root)
    status, out = run_cli(["--dry-run", "--yes", "--json", "--root", str(root),
                           "--staged-file", "/etc/actvt/fleet-ca.pem=/stage/fleet-ca.pem"], env, base=ENV)
    assert status == 0, capsys.readouterr().err
    summary = json.loads(out)
    [state] = [action for action in summary["actions"] if action["target"] == paths.STATE_FILE]
    assert "+mtls_ca_file=/etc/actvt/fleet-ca.pem" in state["diff"] and "/stage" not in out
    [trusted] = [action for action in summary["actions"] if action["target"] == paths.CA_CERT]
    assert trusted["status"] == "would change"
    assert tree_digest(root) == before


@pytest.mark.parametrize("argv, message", [
    (["--yes"], "--staged-file: only with --dry-run"),
    (["--dry-run", "--yes"], "--staged-file: /stage/absent.pem does not exist (staged for /etc/actvt/fleet-ca.pem)"),
], ids=["real-run", "missing"])
def test_a_staged_file_outside_a_dry_run_or_missing_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                                          argv, message):
    root = server(tmp_path)
    before = tree_digest(root)
    status, _ = run_cli(argv + ["--root", str(root), "--staged-file", "/etc/actvt/fleet-ca.pem=/stage/absent.pem"],
                        {"ACTVT_MTLS_CA_FILE": "/etc/actvt/fleet-ca.pem"}, base=ENV)
    assert status == 2 and message in capsys.readouterr().err
    assert tree_digest(root) == before
