"""The folder a module sits in says which layer it is and what it may import (docs/architecture.md).

Checked on the source: every ``import`` of every module under ``installer/``, at any depth (imports
made inside functions count too), against the table below. No import runs from a lower layer up.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "installer")

#: layer -> the layers (besides itself and the package's __init__) its modules may import
ALLOWED = {
    "core": set(),
    "engine": {"core"},
    "concerns": {"core", "launcher"},  # selfcopy renders the `actvt` command
    "plans": {"core", "concerns"},
    "ui": {"core", "engine"},
    "commands": {"core", "engine", "concerns", "plans", "ui", "launcher"},
    "launcher": {"core"},
}


def modules():
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE), path


def imported(path):
    """The installer modules ``path`` imports, as dotted names."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("installer"):
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("installer")]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use installer.<layer>.<module>)")
    return found


def layer_of(dotted):
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


@pytest.mark.parametrize("relative,path", sorted(modules()))
def test_imports_follow_the_layers(relative, path):
    own = relative.split(os.sep)[0]
    if relative == os.path.join("launcher", "launcher.py"):
        return  # the entry point: see the next test
    if own not in ALLOWED:  # installer/__init__.py
        assert all(layer_of(name) in (None, "launcher") for name in imported(path)), relative
        return
    for name in imported(path):
        target = layer_of(name)
        if target is None or target == own:
            continue
        assert target in ALLOWED[own], f"{relative} ({own}) imports {name} ({target})"


def test_the_launcher_template_needs_only_the_standard_library():
    """launcher.py runs on any Python 3 before anything is unpacked."""
    assert imported(os.path.join(PACKAGE, "launcher", "launcher.py")) == ["installer.commands.cli",
                                                                           "installer.commands.cli.main"]


def test_a_concern_imports_no_other_concern():
    """What concerns share lives in core (paths, the front, decisions); pki is the X.509 helper the
    mTLS and certbot concerns use, not a concern."""
    for relative, path in modules():
        if not relative.startswith("concerns" + os.sep):
            continue
        own = os.path.splitext(os.path.basename(relative))[0]
        others = {name.split(".")[2] for name in imported(path)
                  if name.startswith("installer.concerns.") and len(name.split(".")) > 2} - {own, "pki"}
        assert not others, f"{relative} imports the concerns {sorted(others)}"
