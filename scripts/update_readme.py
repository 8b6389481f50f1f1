#!/usr/bin/env python3
"""Rewrite the variable table in README.md from installer/core/config.py (the one declaration).

`python3 scripts/update_readme.py` rewrites it; `--check` exits 1 when README.md is out of date.
"""

import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
START, END = "<!-- variables:start -->\n", "<!-- variables:end -->\n"


def render(readme: str) -> str:
    from installer.core.config import markdown_table

    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return head + START + markdown_table() + "\n" + END + tail


def main() -> int:
    path = os.path.join(HERE, "README.md")
    with open(path, encoding="utf-8") as handle:
        current = handle.read()
    wanted = render(current)
    if "--check" in sys.argv[1:]:
        if wanted != current:
            print("README.md's variable table is out of date: run python3 scripts/update_readme.py")
            return 1
        return 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
