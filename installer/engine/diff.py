"""What a changed file would look like: a unified diff, or why it is not shown (a secret, binary or
large content)."""

import difflib
import hashlib
from typing import Optional

MAX_DIFF_BYTES = 256 * 1024


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def file_diff(path: str, before: Optional[bytes], after: bytes, sensitive: bool) -> str:
    """A unified diff, or one line saying why the content is not shown."""
    if sensitive:
        return f"(content of {path} not shown: it holds a secret)"
    for data in (before, after):
        if data is not None and (not _is_text(data) or len(data) > MAX_DIFF_BYTES):
            digest = hashlib.sha256(after).hexdigest()[:16]
            return f"(binary or large file {path}: {len(after)} bytes, sha256 {digest}…)"
    old = (before or b"").decode().splitlines(keepends=True)
    new = after.decode().splitlines(keepends=True)
    fromfile = path if before is not None else "/dev/null"
    return "".join(difflib.unified_diff(old, new, fromfile=fromfile, tofile=path))
