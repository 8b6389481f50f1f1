"""The OpenPGP keys rpm trusts (its ``gpg-pubkey`` pseudo-packages), read by full fingerprint, and the
record of the ones the installer added (``/var/lib/actvt/rpm-keys.added``).

rpm names a key ``gpg-pubkey-<short key id>-<creation time>``: eight hex digits are not an identity
(they are easy to collide), so the probe reads each key's armored text (``%{DESCRIPTION}``, where rpm
keeps it) and names it by the fingerprint ``core/openpgp.py`` computes. Uninstall removes a recorded
key by the full name the probe found for its fingerprint, never by the short id alone.
"""

import re
from typing import Dict, Iterable, List, Optional, Tuple

from installer.core import openpgp, paths
from installer.core.facts import Probe, ProbeResult

RECORD = f"{paths.STATE_DIR}/rpm-keys.added"
_HEADER = "# OpenPGP keys actvt-installer imported into rpm's database (uninstall removes exactly these)"
_NAME = re.compile(r"^gpg-pubkey-[0-9a-f]+-[0-9a-f]+$")  # base64 has no '-', armor headers have spaces


def parse_trusted(result: ProbeResult) -> Optional[Dict[str, Tuple[str, ...]]]:
    """fingerprint -> its ``gpg-pubkey-…`` names (one, unless a key was imported twice or a subkey got a
    header of its own), from ``TRUSTED``'s output (each name on its own line, then the armored key);
    {} when rpm trusts no key; None when rpm failed otherwise (nothing is known)."""
    if result.returncode != 0:
        return {} if "is not installed" in result.output else None
    found: Dict[str, Tuple[str, ...]] = {}
    name: Optional[str] = None
    lines: List[str] = []

    def flush():
        if name is None:
            return
        try:
            certificates = openpgp.certificates("\n".join(lines).encode())
        except openpgp.NotAKey:
            return  # a key rpm holds that we cannot read: it is not one of ours
        for certificate in certificates[:1]:  # rpm keeps one certificate per gpg-pubkey
            found[certificate.fingerprint] = found.get(certificate.fingerprint, ()) + (name,)

    for line in result.output.splitlines():
        if _NAME.match(line.strip()):
            flush()
            name, lines = line.strip(), []
        else:
            lines.append(line)
    flush()
    return found


def _rpm_family(facts) -> bool:
    return facts.package_manager in ("dnf", "yum")


#: The keys rpm trusts, on the RHEL family only (install: before the import; uninstall: their full names).
TRUSTED = Probe("rpm_keys", ("rpm", "-q", "gpg-pubkey", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n%{DESCRIPTION}\\n"),
                parse_trusted, when=_rpm_family)


def short_name(fingerprint: str) -> str:
    """``gpg-pubkey-<short key id>`` (rpm's NAME-VERSION): the low 32 bits of a v4 key id, of a v6 one
    (the fingerprint's first 8 bytes) for 64 hex digits."""
    fpr = openpgp.normalise(fingerprint).lower()
    return "gpg-pubkey-" + (fpr[8:16] if len(fpr) == 64 else fpr[-8:])


def import_argv(path: str) -> Tuple[str, ...]:
    return ("rpm", "--import", path)


def rollback_argvs(added: Iterable[str], trusted: Dict[str, Tuple[str, ...]]) -> Tuple[Tuple[str, ...], ...]:
    """``rpm -e gpg-pubkey-<short id>`` for each key a failed run imported (its creation time, the
    name's last part, is not known before the download), except where a key rpm trusted before has the
    same short id: that name could then be the user's key."""
    taken = {name.rsplit("-", 1)[0] for names in trusted.values() for name in names}
    return tuple(("rpm", "-e", short_name(fpr)) for fpr in added if short_name(fpr) not in taken)


def record_lines(data: Optional[bytes]) -> List[str]:
    text = (data or b"").decode("utf-8", errors="replace")
    return [openpgp.normalise(line) for line in text.splitlines()
            if line.strip() and not line.startswith("#") and re.fullmatch(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}",
                                                                           line.strip())]


def record_text(fingerprints: Iterable[str]) -> bytes:
    return ("\n".join([_HEADER] + list(dict.fromkeys(fingerprints))) + "\n").encode()


def removal_argvs(recorded: Iterable[str], trusted: Optional[Dict[str, Tuple[str, ...]]]) -> List[Tuple[str, ...]]:
    """``rpm -e`` of each recorded key rpm still trusts, by the full name the probe found; without the
    probe (``--root``) by the short name, for the listing (commands do not run there)."""
    if trusted is None:
        return [("rpm", "-e", short_name(fpr)) for fpr in recorded]
    return [("rpm", "-e") + trusted[fpr] for fpr in recorded if fpr in trusted]
