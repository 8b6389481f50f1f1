"""Fills in ``launcher.py``: the served ``install.pyz`` (with the zipapp as payload) and the
``/usr/local/bin/actvt`` command (without one, pointed at the kept zipapp). One launcher, two uses."""

import os

_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
_PAYLOAD_LINE = "PAYLOAD = None  # @PAYLOAD@"


def _template() -> str:
    with open(_TEMPLATE, encoding="utf-8") as handle:
        return handle.read()


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        marker = "@" + key.upper() + "@"
        if marker not in text:
            raise ValueError(f"launcher template has no {marker}")
        text = text.replace(marker, value)
    return text


def render_launcher(version: str, build_id: str, payload_sha256: str, payload_b64: str, width: int = 76) -> bytes:
    text = _template()
    lines = [payload_b64[i : i + width] for i in range(0, len(payload_b64), width)]
    text = text.replace(_PAYLOAD_LINE, 'PAYLOAD = """\n' + "\n".join(lines) + '\n"""')
    text = _fill(text, version=version, build_id=build_id, payload_sha256=payload_sha256, kept_pyz="")
    return text.encode("utf-8")


def render_command(kept_pyz: str, build_id: str) -> bytes:
    from installer import __version__

    text = _fill(_template(), version=__version__, build_id=build_id, payload_sha256="", kept_pyz=kept_pyz)
    return text.encode("utf-8")
