#!/usr/bin/env python3
"""Rewrite the golden files under tests/golden/ from what the code does now.

    .venv/bin/python scripts/update_golden.py [--into DIR]

The golden tests (tests/test_behaviour_golden.py, tests/test_nginx.py) only compare against these
files; updating them is this deliberate step, never a mode of a test run. Then review
`git diff tests/golden`, and name this command in the message of the commit that holds the result,
saying why what the installer writes or prints changed. Files no test compares any more are removed.
``--into DIR`` writes into DIR (holding install/ and nginx/) instead of tests/golden.
"""

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(HERE, "tests")
for folder in (HERE, TESTS):
    if folder not in sys.path:
        sys.path.insert(0, folder)


def recordings():
    """(path under tests/golden, bytes) of every golden file, as the code makes them now."""
    import test_behaviour_golden as behaviour
    import test_nginx as nginx

    for name in sorted(behaviour.CONFIGS):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"install/{name}.json", behaviour.golden_bytes(behaviour.observe(name, os.path.join(tmp, "root")))
    for name in sorted(nginx.GOLDEN_CASES):
        yield f"nginx/{name}", nginx.GOLDEN_CASES[name]()


def update(into):
    """Write the recordings into ``into``; the paths (relative to it) that changed, were added or removed."""
    changed, made = [], set()
    for relative, data in recordings():
        path = os.path.join(into, relative)
        made.add(relative)
        old = None
        if os.path.exists(path):
            with open(path, "rb") as handle:
                old = handle.read()
        if old != data:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
            changed.append(relative)
    for folder in {os.path.dirname(relative) for relative in made}:
        for name in sorted(os.listdir(os.path.join(into, folder))):
            if f"{folder}/{name}" not in made:
                os.unlink(os.path.join(into, folder, name))
                changed.append(f"{folder}/{name}")
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", default=os.path.join(TESTS, "golden"), help="folder holding install/ and nginx/")
    into = parser.parse_args(argv).into
    changed = update(into)
    for relative in changed:
        print(f"rewrote {os.path.join(into, relative)}" if os.path.exists(os.path.join(into, relative))
              else f"removed {os.path.join(into, relative)}")
    if not changed:
        print(f"the golden files in {into} already match the code: nothing changed")
    else:
        print("review `git diff tests/golden`; the commit's message names `python scripts/update_golden.py` "
              "and says why the output changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
