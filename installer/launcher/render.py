"""Fills in ``launcher.py``: the served ``install.pyz`` (with the zipapp as payload) and the
``/usr/local/bin/actvt`` command (without one, pointed at the kept zipapp). One launcher, two uses."""

import os

from installer.core.render import render

_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
_PAYLOAD_LINE = "PAYLOAD = None  # @PAYLOAD@"


def _template(payload: str) -> str:
    """The launcher with its payload line filled, without the final newline: the file's last byte closes
    the bracket that starts it (launcher.py's end marker), so a download cut even just before it fails."""
    with open(_TEMPLATE, encoding="utf-8") as handle:
        text = handle.read()
    if _PAYLOAD_LINE not in text:
        raise AssertionError(f"{_TEMPLATE} has no payload line")
    return text.replace(_PAYLOAD_LINE, payload).rstrip("\n")


def render_launcher(version: str, build_id: str, payload_sha256: str, payload_b64: str, width: int = 76) -> bytes:
    lines = [payload_b64[i : i + width] for i in range(0, len(payload_b64), width)]
    text = _template('PAYLOAD = """\n' + "\n".join(lines) + '\n"""')
    return render(text, {"VERSION": version, "BUILD_ID": build_id, "PAYLOAD_SHA256": payload_sha256,
                         "KEPT_PYZ": ""}, "launcher.py").encode("utf-8")


def render_command(kept_pyz: str, build_id: str) -> bytes:
    from installer import __version__

    text = _template("PAYLOAD = None  # the `actvt` command carries none: it runs the kept zipapp")
    return render(text, {"VERSION": __version__, "BUILD_ID": build_id, "PAYLOAD_SHA256": "", "KEPT_PYZ": kept_pyz},
                  "launcher.py").encode("utf-8")
