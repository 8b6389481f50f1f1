"""certbot's renewal configuration (``/etc/letsencrypt/renewal/<name>.conf``), read strictly.

certbot writes it with ConfigObj (not in the zipapp): ``key = value`` lines, ``#`` comments,
``[section]`` and ``[[subsection]]`` headers, values plain, quoted (``"…"`` or ``'…'``) or a
comma-separated list (``webroot_path = /var/www/html,``). This reader accepts exactly that and
refuses anything else (an unclosed quote, a line that is none of these, a repeated key or section, a
multi-line ``'''`` value, no ``[renewalparams]`` or no authenticator), as ConfigObj and certbot would.

The file is certbot's, not ours, and holds the ACME account id: an error names the line's number and
what is wrong with it, never its text.
"""

import dataclasses
from typing import Dict, Mapping, Optional, Tuple, Union

from installer.core.errors import ActvtError

Value = Union[str, Tuple[str, ...]]


class RenewalError(ActvtError):
    """The renewal configuration is not one certbot could read."""


@dataclasses.dataclass(frozen=True)
class Renewal:
    """What a run needs of it: how the certificate renews and from which ACME server."""

    authenticator: str
    server: Optional[str]
    webroot_path: Tuple[str, ...]
    webroot_map: Mapping[str, str]

    def webroot_for(self, domain: str) -> Optional[str]:
        """The folder certbot's webroot plugin writes the challenge for ``domain`` into when it renews:
        the map's entry, else the last ``webroot_path`` (certbot/_internal/plugins/webroot.py does so)."""
        if domain in self.webroot_map:
            return self.webroot_map[domain]
        return self.webroot_path[-1] if self.webroot_path else None


def _item(text: str, start: int) -> Tuple[str, int, bool]:
    """One list item from ``start``: (value, index after it, was quoted)."""
    if text[start] in "\"'":
        quote = text[start]
        if text.startswith(quote * 3, start):
            raise ValueError("a multi-line (triple-quoted) value")
        end = text.find(quote, start + 1)
        if end < 0:
            raise ValueError("a quote that is not closed")
        return text[start + 1:end], end + 1, True
    end = start
    while end < len(text) and text[end] not in ",#":
        if text[end] in "\"'":
            raise ValueError("a quote inside an unquoted value")
        end += 1
    return text[start:end].strip(), end, False


def parse_value(text: str) -> Value:
    """A ConfigObj value: one string, or a tuple when it has a comma (``a,`` is a one-item list, ``,``
    the empty one); ``# …`` after it is a comment."""
    items, index, listed = [], 0, False
    while True:
        index = _skip(text, index)
        if index >= len(text) or text[index] == "#":
            break
        value, index, quoted = _item(text, index)
        index = _skip(text, index)
        if index < len(text) and text[index] not in ",#":
            raise ValueError("text after a quoted value")
        if value or quoted:
            items.append(value)
        if index < len(text) and text[index] == ",":
            listed, index = True, index + 1
            continue
        break
    if listed:
        return tuple(items)
    return items[0] if items else ""


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def parse_sections(text: str, name: str) -> Dict[Tuple[str, ...], Dict[str, Value]]:
    """Every section (the top level is ``()``) with its keys. ``name`` (the file's path) is for errors."""
    sections: Dict[Tuple[str, ...], Dict[str, Value]] = {(): {}}
    current: Tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("["):
                depth = len(line) - len(line.lstrip("["))
                body, _, rest = line[depth:].partition("]" * depth)
                title = body.strip()
                if not _ or not title or "[" in title or "]" in title or (rest.strip() and not rest.strip().startswith("#")):
                    raise ValueError("a section header that is not [name] or [[name]]")
                if depth > len(current) + 1:
                    raise ValueError("a subsection outside its section")
                current = current[:depth - 1] + (title,)
                if current in sections:
                    raise ValueError("a section given twice")
                sections[current] = {}
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError("a line that is not `key = value`")
            if key[0] in "\"'":
                if len(key) < 2 or key[-1] != key[0]:
                    raise ValueError("a quoted key that is not closed")
                key = key[1:-1]
            if key in sections[current]:
                raise ValueError("a key given twice in its section")
            sections[current][key] = parse_value(value)
        except ValueError as exc:
            raise RenewalError(f"{name}, line {number}: {exc}; certbot cannot read this renewal configuration "
                               "(the line is not shown: the file is certbot's)") from None
    return sections


def parse(data: bytes, name: str) -> Renewal:
    """The renewal configuration in ``data`` (the bytes of the file at ``name``), or RenewalError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RenewalError(f"{name}: not UTF-8; certbot cannot read this renewal configuration") from None
    sections = parse_sections(text, name)
    params = sections.get(("renewalparams",))
    if params is None:
        raise RenewalError(f"{name}: no [renewalparams] section; certbot cannot renew with this configuration")
    auth = params.get("authenticator")
    if not isinstance(auth, str) or not auth:
        raise RenewalError(f"{name}: [renewalparams] names no authenticator; certbot cannot renew with it")
    server = params.get("server")
    path = params.get("webroot_path", ())
    mapping = sections.get(("renewalparams", "webroot_map"), {})
    if not isinstance(server, (str, type(None))) or any(not isinstance(v, str) for v in mapping.values()):
        raise RenewalError(f"{name}: a list where certbot writes one value (server, webroot_map)")
    return Renewal(authenticator=auth, server=server,
                   webroot_path=(path,) if isinstance(path, str) else tuple(path),
                   webroot_map=dict(mapping))  # type: ignore[arg-type]
