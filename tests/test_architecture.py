"""The folder a module sits in says which layer it is and what it may import (docs/architecture.md).

Checked on the source: every ``import`` of every module under ``installer/``, at any depth (imports
made inside functions count too), against the table below. No import runs from a lower layer up.
"""

import ast
import os
import pkgutil
import re
import sys
import sysconfig

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


LAUNCHER = os.path.join(PACKAGE, "launcher", "launcher.py")
#: what launcher.py may import that is not the standard library: the CLI, once the zipapp is unpacked
LAUNCHER_RUNS = {"installer.commands.cli"}


def standard_library(python_3_9=False):
    """Top-level names of the standard library's modules: ``sys.stdlib_module_names`` (3.10+); on 3.9
    (or with ``python_3_9``), the built-in modules and those in the interpreter's own library folders,
    which hold no installed package (those live in site-packages, dist-packages: not modules there)."""
    if hasattr(sys, "stdlib_module_names") and not python_3_9:
        return frozenset(sys.stdlib_module_names)
    folders = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    folders |= {os.path.join(folder, "lib-dynload") for folder in folders}
    return frozenset(sys.builtin_module_names) | {item.name for item in pkgutil.iter_modules(sorted(folders))}


def every_import(path):
    """(dotted name, line) of every module ``path`` imports, at any depth: ``import a.b``, ``from a.b
    import c`` (as a.b), and ``importlib.import_module``/``__import__`` of a literal name."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}:{node.lineno}: relative import"
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__"):
            argument = node.args[0] if node.args else None
            assert isinstance(argument, ast.Constant), f"{path}:{node.lineno}: an import of a computed name"
            found.append((argument.value, node.lineno))
    return found


def outside(names, path=LAUNCHER, python_3_9=False):
    """The imports of ``path`` that are neither the standard library nor in ``names``."""
    stdlib = standard_library(python_3_9)
    return [f"line {line}: {name}" for name, line in every_import(path)
            if name.split(".")[0] not in stdlib and name not in names]


def test_the_launcher_template_needs_only_the_standard_library():
    """launcher.py runs on any Python 3 before anything is unpacked: every import it makes, inside
    functions too, is of the standard library, except the CLI it runs from the unpacked zipapp."""
    assert outside(LAUNCHER_RUNS) == []
    assert {name for name, _ in every_import(LAUNCHER)} >= LAUNCHER_RUNS | {"os", "sys", "lzma"}


@pytest.mark.parametrize("python_3_9", [False, True], ids=["this-python", "3.9-list"])
def test_a_third_party_import_in_the_launcher_is_named(tmp_path, python_3_9):
    """What the check above reports when launcher.py imports a package that is installed here
    (cryptography, a dependency of the zipapp) or not, at the top or inside a function; the 3.9 list
    (the standard library's folders) catches it as well as 3.10's sys.stdlib_module_names."""
    with open(LAUNCHER, encoding="utf-8") as handle:
        text = handle.read()
    planted = tmp_path / "launcher.py"
    # each planted line takes the indentation of the import it follows (the launcher's imports sit in blocks)
    text = re.sub(r"^( *)import os\n", r"\g<0>\1import cryptography.x509\n", text, count=1, flags=re.M)
    planted.write_text(re.sub(r"^( +)import stat\n", r"\g<0>\1from yaml import safe_load\n", text, count=1, flags=re.M))
    found = outside(LAUNCHER_RUNS, str(planted), python_3_9)
    assert [item.split(": ")[1] for item in found] == ["cryptography.x509", "yaml"], found
    assert outside(LAUNCHER_RUNS, python_3_9=python_3_9) == []


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
