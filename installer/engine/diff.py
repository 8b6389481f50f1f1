"""What a changed file would look like: a unified diff, or why it is not shown (a secret, binary or
large content).

The one rule of what a diff may show, for its old and its new side alike: a line the installer writes
itself. Users keep secrets in files the installer edits or replaces (``DD_API_KEY=…`` in
``/etc/default/vector``, ``api_key = …`` in an old ``vector.toml``), so a line of a file the installer
did not write is never printed: the diff counts how many such lines are kept, removed or added, and
says where the file as it was is backed up. The installer's lines are

- on the new side, every line of the content, or only ``File.own_lines`` when the planner keeps the
  others from the file that was there (``concerns/vector.defaults_text``);
- on the old side, the same lines, and every line of a file the manifest records as made by the
  installer where nothing was before (``written_by_installer``: data of the record, not text).
"""

import collections
import difflib
import hashlib
from typing import Iterable, Mapping, Optional, Sequence

from installer.core import manifest, paths

MAX_DIFF_BYTES = 256 * 1024


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def written_by_installer(entries: Mapping[str, dict]) -> frozenset:
    """The paths of ``manifest.json`` entries the installer created (nothing was there before it): all
    their lines are its own. A replaced or adopted file may hold lines of someone else's."""
    return frozenset(path for path, entry in entries.items() if entry.get("origin") == manifest.CREATED)


def _bare(line: str) -> str:
    return line.rstrip("\r\n")


def _count(lines: Iterable[str]) -> collections.Counter:
    return collections.Counter(_bare(line) for line in lines)


def file_diff(path: str, before: Optional[bytes], after: bytes, sensitive: bool,
              own_lines: Optional[Sequence[str]] = None, before_is_own: bool = False) -> str:
    """A unified diff of the installer's lines (the module's rule), with one line counting the others;
    or one line saying why the content is not shown. ``own_lines``: ``File.own_lines``;
    ``before_is_own``: the file there now is one the installer made (``written_by_installer``)."""
    if sensitive:
        return f"(content of {path} not shown: it holds a secret)"
    for data in (before, after):
        if data is not None and (not _is_text(data) or len(data) > MAX_DIFF_BYTES):
            digest = hashlib.sha256(after).hexdigest()[:16]
            return f"(binary or large file {path}: {len(after)} bytes, sha256 {digest}…)"
    old = (before or b"").decode().splitlines(keepends=True)
    new = after.decode().splitlines(keepends=True)
    ours = set(_count(new) if own_lines is None else own_lines)
    if before_is_own and own_lines is None:
        ours |= set(_count(old))
    old_shown = [line for line in old if _bare(line) in ours]
    new_shown = [line for line in new if _bare(line) in ours]
    fromfile = path if before is not None else "/dev/null"
    text = "".join(difflib.unified_diff(old_shown, new_shown, fromfile=fromfile, tofile=path))
    hidden_old = _count(old) - _count(old_shown)
    hidden_new = _count(new) - _count(new_shown)
    if not (hidden_old or hidden_new):
        return text
    counts = [f"{sum(found.values())} {word}" for found, word in (
        (hidden_old & hidden_new, "kept"), (hidden_old - hidden_new, "removed"), (hidden_new - hidden_old, "added"))
        if found]
    total = sum((hidden_old | hidden_new).values())
    where = f"; the file as it is now is backed up first to {paths.BACKUP_DIR}/<run>{path}" if before is not None else ""
    return text + (f"({total} other line(s) of {path} not shown, the installer did not write them: "
                   f"{', '.join(counts)}{where})\n")
