"""The one template renderer: ``@NAME@`` markers, filled strictly.

Every value given must have its marker in the template, and no marker may be left after filling:
either is a bug in the installer, caught by the first test that renders the template, never a
half-filled file on a server. A marker alone on its line (indentation aside) is replaced by the
value (the line's own newline kept), and an empty value takes the line away with it, so optional
blocks (mTLS, GPU, IPv6) leave no blank lines behind.
"""

import os
import re
from typing import Mapping

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "concerns", "templates")
_MARKER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


class TemplateError(AssertionError):
    """A template and its values do not match (a bug, not a user error)."""


def template(name: str) -> str:
    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as handle:
        return handle.read()


def render(text: str, values: Mapping[str, str], name: str = "template") -> str:
    """``text`` with every ``@KEY@`` of ``values`` filled; TemplateError when a key has no marker or a
    marker has no value."""
    absent = sorted(key for key in values if f"@{key}@" not in text)
    if absent:
        raise TemplateError(f"{name} has no marker for {', '.join(absent)}")
    lines = []
    for line in text.splitlines(keepends=True):
        alone = _MARKER.fullmatch(line.strip())
        if alone and alone.group(1) in values:
            value = values[alone.group(1)]
            if value:
                lines.append(value + line[len(line.rstrip("\n")):])
            continue
        lines.append(_MARKER.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), line))
    result = "".join(lines)
    left = sorted(set(_MARKER.findall(result)))
    if left:
        raise TemplateError(f"{name}: markers without a value: {', '.join(left)}")
    return result


def render_file(name: str, values: Mapping[str, str]) -> str:
    """The template ``concerns/templates/<name>`` filled with ``values``."""
    return render(template(name), values, name)
