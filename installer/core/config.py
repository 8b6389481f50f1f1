"""Every ACTVT_* variable, declared once.

Parsing, validation, ``--help`` and the README's variable table all come from ``VARIABLES``.
A parsed configuration is a frozen ``Config``; ``Config.explicit`` names the variables the caller
set, so that a prompt is asked only where the environment said nothing.
"""

import dataclasses
import difflib
import re
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple

from installer.core import packaging
from installer.core.errors import ConfigError

PREFIX = "ACTVT_"

ACME_DIRECTORIES = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}\Z")
_DEB_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~-]{0,63}\Z")
_TRUE = {"y", "yes", "true", "1"}
_FALSE = {"n", "no", "false", "0"}


class Invalid(ValueError):
    """Raised by a parser: the message says what is wrong (the caller adds the variable name)."""


# --- parsers: each takes the raw string and returns the value, or raises Invalid ---------------


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(f"{raw!r} is not a yes/no value")


def parse_auto_bool(raw: str) -> Optional[bool]:
    """``auto`` (None) or a yes/no value."""
    if raw.strip().lower() == "auto":
        return None
    return parse_bool(raw)


def is_hostname(value: str) -> bool:
    """RFC 1123 host name with at least two labels and a non-numeric top label."""
    if not value or len(value) > 253:
        return False
    labels = value.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def parse_domain(raw: str) -> str:
    value = raw.strip().rstrip(".").lower()
    if len(value) > 253:
        raise Invalid(f"is {len(value)} characters long")
    if not is_hostname(value):
        raise Invalid(f"{raw!r} is not a fully qualified host name")
    return value


def parse_email(raw: str) -> str:
    value = raw.strip()
    local, sep, domain = value.rpartition("@")
    if not sep or not _EMAIL_LOCAL.match(local) or local.startswith(".") or not is_hostname(domain):
        raise Invalid("is not an e-mail address")
    return value


_NUMBER = re.compile(r"[0-9]{1,9}\Z", re.ASCII)  # ASCII digits only ("²" and "٣" are digits to str.isdigit)


def whole_number(raw: str) -> Optional[int]:
    """The value of a plain decimal number of at most nine ASCII digits, else None."""
    value = raw.strip()
    return int(value) if _NUMBER.match(value) else None


def parse_port(raw: str) -> int:
    value = whole_number(raw)
    if value is None or not 1 <= value <= 65535:
        raise Invalid(f"{raw!r} is not a port number")
    if value in RESERVED_PORTS:
        raise Invalid(f"{value} is {RESERVED_PORTS[value]}")
    return value


#: Ports Vector may not take in any mode: SSH, and port 80, where certbot answers Let's Encrypt's
#: http-01 challenge for the first certificate and every renewal.
RESERVED_PORTS = {22: "SSH's port", 80: "the port Let's Encrypt's http-01 challenge and renewals use"}


def days(ceiling: int) -> Callable[[str], int]:
    def parse_days(raw: str) -> int:
        value = whole_number(raw)
        if value is None or not 1 <= value <= ceiling:
            raise Invalid(f"{raw!r} is not a whole number of days in range")
        return value

    parse_days.ceiling = ceiling  # type: ignore[attr-defined]
    return parse_days


def choice(*choices: str) -> Callable[[str], str]:
    def parse_choice(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise Invalid(f"{raw!r} is not one of the choices")
        return value

    parse_choice.choices = choices  # type: ignore[attr-defined]
    return parse_choice


def parse_client_name(raw: str) -> str:
    if not _CLIENT_NAME.match(raw):  # \Z, not $: "name\n" is not a name
        raise Invalid(f"{raw!r} is not a valid client name")
    return raw


_PATH_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\'\\$;{}#]')  # what nginx (or a shell) would not read literally


def parse_abs_path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/") or "/../" in value + "/" or "/./" in value + "/":
        raise Invalid(f"{raw!r} is not an absolute path")
    if _PATH_UNSAFE.search(value):
        raise Invalid(f"{raw!r} holds a character a configuration file cannot take literally")
    return value.rstrip("/") or "/"


def parse_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
        raise Invalid(f"{raw!r} is not an http(s) URL")
    return value


def parse_urls(raw: str) -> Tuple[str, ...]:
    """One or more http(s) URLs, separated by spaces or commas."""
    parts = [part for part in re.split(r"[\s,]+", raw.strip()) if part]
    if not parts:
        raise Invalid("names no URL")
    for part in parts:
        parse_url(part)
    return tuple(parts)


_HEX = re.compile(r"(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})\Z")


def parse_fingerprints(raw: str) -> Tuple[str, ...]:
    """OpenPGP fingerprints (40 hex digits; 64 for v5/v6 keys), separated by commas or spaces; gpg's
    grouped form (``5F1E 2560 …``) is read as one. Upper case, in the order given."""
    found = []
    for part in (part for part in raw.split(",") if part.strip()):
        joined = "".join(part.split())
        words = [joined] if _HEX.match(joined) else part.split()
        for word in words:
            word = word[2:] if word[:2].lower() == "0x" else word
            if not _HEX.match(word):
                raise Invalid(f"{word!r} is not a fingerprint")
            found.append(word.upper())
    if not found:
        raise Invalid("names no fingerprint")
    return tuple(dict.fromkeys(found))


def seconds(ceiling: int) -> Callable[[str], int]:
    def parse_seconds(raw: str) -> int:
        value = whole_number(raw)
        if value is None or value > ceiling:
            raise Invalid(f"{raw!r} is not a whole number of seconds in range")
        return value

    return parse_seconds


def parse_acme_server(raw: str) -> str:
    alias = raw.strip().lower()
    if alias in ACME_DIRECTORIES:
        return ACME_DIRECTORIES[alias]
    return parse_url(raw)


def parse_deb_version(raw: str) -> str:
    value = raw.strip()
    if not _DEB_VERSION.match(value):
        raise Invalid(f"{raw!r} is not a package version")
    return value


# --- the declaration ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    parse: Callable[[str], Any]
    default: Optional[str]  # the raw default, parsed like a value; None means "no default"
    help: str
    allowed: str  # what the error message and the README say is allowed
    since: str = "1.0.0"
    required_for_install: bool = False
    prompt: Optional[str] = None  # question asked on a terminal when the variable is not set

    @property
    def field(self) -> str:
        return self.name[len(PREFIX) :].lower()


BOOL = "yes/no, true/false, 1/0 or y/n, in any case"

VARIABLES: Tuple[Variable, ...] = (
    Variable("ACTVT_DOMAIN", parse_domain, None,
             "The server's DNS name; the Let's Encrypt certificate is issued for it.",
             "a fully qualified host name (RFC 1123, at most 253 characters), e.g. monitor.example.com",
             required_for_install=True),
    Variable("ACTVT_EMAIL", parse_email, None,
             "Let's Encrypt account e-mail (expiry notices). Logged masked, never in full.",
             "an e-mail address such as admin@example.com", required_for_install=True),
    Variable("ACTVT_INSTALL_MODE", choice("auto", "standalone", "proxy"), "auto",
             "standalone: Vector serves wss://DOMAIN:PORT itself; proxy: nginx or Apache (apache2, or httpd on the "
             "RHEL family) serves wss://DOMAIN/actvt (the one that runs, else the one installed, else nginx is "
             "installed); auto: proxy when nginx, apache or httpd already listens on 80/443, else standalone.",
             "auto, standalone or proxy"),
    Variable("ACTVT_FORCE_STANDALONE", parse_bool, "no",
             "Use standalone mode even when a web server is detected (wins over ACTVT_INSTALL_MODE).", BOOL),
    Variable("ACTVT_VECTOR_PORT", parse_port, "4096",
             "Port of Vector's WebSocket server (public in standalone mode, 127.0.0.1 in proxy mode).",
             "a port number from 1 to 65535, not 22 (SSH) or 80 (Let's Encrypt), and not 443 in proxy mode (nginx)"),
    Variable("ACTVT_NGINX_WEBROOT", parse_abs_path, "/var/www/html",
             "Webroot nginx serves for certbot's http-01 challenge in proxy mode.",
             "an absolute path without quotes, backslashes, '$', ';', '{', '}', '#' or control characters"),
    Variable("ACTVT_CONFIGURE_FIREWALL", parse_bool, "yes",
             "Open the mode's ports in ufw, firewalld or iptables (rules added are recorded for uninstall).",
             BOOL),
    Variable("ACTVT_REINSTALL_VECTOR", parse_bool, "no",
             "Reinstall Vector even when it is already installed.", BOOL,
             prompt="Vector is already installed. Reinstall it?"),
    Variable("ACTVT_ENABLE_GPU", parse_bool, "yes",
             "Add NVIDIA GPU metrics when nvidia-smi works.", BOOL,
             prompt="An NVIDIA GPU was found. Stream GPU metrics?"),
    Variable("ACTVT_REUSE_CERT", parse_bool, "yes",
             "Reuse an existing Let's Encrypt certificate for the domain (no: force a renewal).", BOOL,
             prompt="A Let's Encrypt certificate for this domain exists. Reuse it?"),
    Variable("ACTVT_CONTINUE_WITHOUT_DNS", parse_bool, "no",
             "Go on when the domain does not resolve (certbot will likely fail).", BOOL,
             prompt="The domain does not resolve. Continue anyway?"),
    Variable("ACTVT_WAIT_FOR_DNS", seconds(86400), "0",
             "When the domain has no public address yet and a certificate is to be requested, look it up again "
             "every 5 seconds for at most this many seconds before stopping with \"does not resolve\" (a first "
             "boot whose DNS record is made after the instance, as Terraform and cloud consoles do); announced, "
             "with a progress line every 30 seconds. A dry run does not wait.",
             "a whole number of seconds from 0 (do not wait) to 86400", since="1.1.0"),
    Variable("ACTVT_ENABLE_MTLS", parse_bool, "no",
             "Require client certificates signed by a private CA made on the server (mutual TLS).", BOOL),
    Variable("ACTVT_MTLS_CA_DAYS", days(36500), "3650",
             "Validity of the private CA, in days.", "a whole number of days from 1 to 36500"),
    Variable("ACTVT_MTLS_CLIENT_DAYS", days(3650), "365",
             "Validity of client certificates, in days.", "a whole number of days from 1 to 3650"),
    Variable("ACTVT_MTLS_CLIENT_CN", parse_client_name, "actvt-client-001",
             "Common name of the first client certificate (also its file names).",
             "1 to 64 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"),
    Variable("ACTVT_MTLS_KEY_TYPE", choice("rsa", "ecdsa"), "rsa",
             "Key type of client certificates: rsa (2048-bit, as documented) or ecdsa (P-256).",
             "rsa or ecdsa"),
    Variable("ACTVT_REUSE_MTLS_CA", parse_bool, "yes",
             "Keep an existing CA on re-run (no: make a new CA and re-issue every client certificate).", BOOL,
             prompt="An mTLS CA exists. Keep it?"),
    Variable("ACTVT_REGEN_CLIENT_CERT", parse_bool, "no",
             "Re-issue the first client's certificate even when it exists.", BOOL,
             prompt="The client certificate exists. Issue a new one?"),
    Variable("ACTVT_MTLS_CA_FILE", parse_abs_path, None,
             "Trust this CA instead of making one (a fleet CA kept off the servers, see `actvt ca`): a file on the "
             "server with one or more PEM CA certificates (two during a rollover). The server then holds no CA key "
             "and issues no clients. Turns mTLS on.",
             "an absolute path to a file of PEM CA certificates (no private key), not expired"),
    Variable("ACTVT_MTLS_CRL_FILE", parse_abs_path, None,
             "With ACTVT_MTLS_CA_FILE in proxy mode: the fleet's CRL (one per trusted CA), installed for nginx's "
             "ssl_crl. Standalone Vector reads no CRL (revoke there by rotating the CA).",
             "an absolute path to a file of PEM CRLs signed by the trusted CAs, not expired"),
    Variable("ACTVT_NON_INTERACTIVE", parse_auto_bool, "auto",
             "Never prompt (auto: prompt only when a terminal can be opened).", "auto, or " + BOOL),
    Variable("ACTVT_ACME_SERVER", parse_acme_server, "production",
             "ACME directory certbot uses: production (Let's Encrypt), staging, or any directory URL.",
             "production, staging, or an http(s) URL"),
    Variable("ACTVT_VECTOR_VERSION", parse_deb_version, "0.50.0-1",
             "Vector package version to install (pinned).", "a package version such as 0.50.0-1"),
    Variable("ACTVT_VECTOR_APT_URL", parse_url, "https://apt.vector.dev/",
             "Vector apt repository (suite 'stable', component 'vector-0'); override for a mirror.",
             "an http(s) URL"),
    Variable("ACTVT_VECTOR_YUM_URL", parse_url, "https://yum.vector.dev/stable/vector-0/$basearch/",
             "Vector yum/dnf repository base URL; override for a mirror.", "an http(s) URL"),
    Variable("ACTVT_VECTOR_KEY_URL", parse_urls, None,
             "Signing keys of the Vector repository, downloaded into one keyring (not set: Datadog's current keys "
             "from keys.datadoghq.com, the files Vector's setup script imports, for apt or for dnf/yum); override "
             "for a mirror.", "one or more http(s) URLs, separated by spaces or commas"),
    Variable("ACTVT_VECTOR_KEY_FINGERPRINTS", parse_fingerprints, None,
             "The only keys ACTVT_VECTOR_KEY_URL may hold (not set: the fingerprints of Datadog's Vector signing "
             "keys, pinned in the installer); a downloaded key of any other fingerprint is refused before anything "
             "is written. A mirror with its own key declares it here.",
             "one or more OpenPGP fingerprints of 40 hexadecimal digits (64 for v6 keys), separated by commas or "
             "spaces (gpg's grouped form is read as one)"),
    Variable("ACTVT_PACKAGE_LOCK_TIMEOUT", seconds(86400), str(packaging.DEFAULT_TIMEOUT),
             "How long to wait, in seconds, for another package manager (unattended-upgrades, cloud-init's package "
             "step, apt, dpkg, dnf, yum) to release its lock before a package step fails; the wait is announced "
             "in one line naming the holder and its pid.",
             "a whole number of seconds from 0 (do not wait) to 86400"),
    Variable("ACTVT_BAKE", parse_bool, "no",
             "Image-baking mode (docker build, Packer): install the packages and a first-boot unit that "
             "finishes the install from /etc/actvt/install.env; start nothing, make no keys or state.", BOOL),
)

BY_NAME: Dict[str, Variable] = {v.name: v for v in VARIABLES}

Config = dataclasses.make_dataclass(
    "Config",
    [(v.field, Any) for v in VARIABLES] + [("explicit", FrozenSet[str])],
    frozen=True,
    namespace={
        "__doc__": "Parsed ACTVT_* values (fields named like the variables, lower case, without the prefix).",
        "is_set": lambda self, name: name in self.explicit,
    },
)


def describe_problem(var: Variable, raw: str, reason: str) -> str:
    """One line: the variable, the problem, what is allowed."""
    return f"{var.name}: {reason}; allowed: {var.allowed}"


def unknown_variables(environ: Mapping[str, str]) -> Tuple[str, ...]:
    """One warning line for each ACTVT_* variable that is not declared."""
    warnings = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in BY_NAME and not name.startswith("ACTVT_INTERNAL_"):
            # compare without the shared prefix, which would make every name look alike
            suffixes = [known[len(PREFIX):] for known in BY_NAME]
            close = difflib.get_close_matches(name[len(PREFIX):], suffixes, n=1, cutoff=0.6)
            hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
            warnings.append(f"unknown variable {name} is ignored{hint}")
    return tuple(warnings)


def parse(environ: Mapping[str, str], require_install_fields: bool = True):
    """Parse and validate every variable. Raises ConfigError listing every problem, one per line."""
    values: Dict[str, Any] = {}
    explicit = set()
    problems = []
    missing = []
    for var in VARIABLES:
        raw = environ.get(var.name)
        if raw is not None and raw.strip() == "":
            raw = None  # an empty variable means "not set", as in the shell script
        if raw is None:
            if var.default is None:
                values[var.field] = None
                if var.required_for_install:
                    missing.append(f"{var.name}: is required and not set; allowed: {var.allowed}")
                continue
            values[var.field] = var.parse(var.default)
            continue
        explicit.add(var.name)
        try:
            values[var.field] = var.parse(raw)
        except Invalid as exc:
            problems.append(describe_problem(var, raw, str(exc)))
    # The domain and e-mail are the server's own: an image being baked does not have them yet.
    if require_install_fields and not values.get("bake"):
        problems = missing + problems
    if not problems:
        problems = contradictions(values, explicit)
    if problems:
        raise ConfigError(problems)
    if values.get("mtls_ca_file") and "ACTVT_ENABLE_MTLS" not in explicit:
        values["enable_mtls"] = True  # a trusted CA means client certificates
    return Config(explicit=frozenset(explicit), **values)


def parse_one(environ: Mapping[str, str], name: str):
    """One variable's value, for a command that reads only it (``uninstall``: the package lock's
    bound); a bad value is the same one line, exit 2."""
    var = BY_NAME[name]
    raw = environ.get(name)
    try:
        return var.parse(raw if raw is not None and raw.strip() else var.default)
    except Invalid as exc:
        raise ConfigError([describe_problem(var, raw, str(exc))]) from None


def contradictions(values: Mapping[str, Any], explicit) -> list:
    """Variables that are each allowed but not together (one line each)."""
    found = []
    if values.get("install_mode") == "proxy" and values.get("vector_port") == 443:
        found.append(port_taken_by_nginx())
    if values.get("mtls_ca_file") and "ACTVT_ENABLE_MTLS" in explicit and not values.get("enable_mtls"):
        found.append("ACTVT_MTLS_CA_FILE: a trusted CA needs client certificates, but ACTVT_ENABLE_MTLS=no; "
                     "allowed: ACTVT_ENABLE_MTLS=yes (or unset), or no ACTVT_MTLS_CA_FILE")
    if values.get("mtls_crl_file") and not values.get("mtls_ca_file"):
        found.append("ACTVT_MTLS_CRL_FILE: is for a CA kept elsewhere (the server's own CA keeps its own CRL); "
                     "allowed: together with ACTVT_MTLS_CA_FILE")
    return found


def warnings(config) -> Tuple[str, ...]:
    """Settings that are allowed together but probably not what was meant."""
    found = []
    if config.force_standalone and config.install_mode == "proxy" and config.is_set("ACTVT_INSTALL_MODE"):
        found.append("ACTVT_FORCE_STANDALONE=yes wins over ACTVT_INSTALL_MODE=proxy: installing in standalone mode "
                     "(Vector serves clients itself; unset one of the two to silence this)")
    return tuple(found)


def port_taken_by_nginx() -> str:
    return ("ACTVT_VECTOR_PORT: 443 is nginx's port in proxy mode; allowed: "
            + BY_NAME["ACTVT_VECTOR_PORT"].allowed)


def defaults():
    """The configuration with every default (required fields unset)."""
    return parse({}, require_install_fields=False)


def help_text() -> str:
    """The variable list for ``--help``."""
    lines = ["environment variables (all optional unless marked required):"]
    for var in VARIABLES:
        default = "required" if var.required_for_install else (
            f"default: {var.default}" if var.default is not None else "not set by default")
        lines.append(f"  {var.name}  ({default})")
        lines.append(f"      {var.help}")
        lines.append(f"      allowed: {var.allowed}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's variable table."""
    rows = ["| variable | default | allowed | meaning | since |", "|---|---|---|---|---|"]
    for var in VARIABLES:
        default = "**required**" if var.required_for_install else (f"`{var.default}`" if var.default is not None
                                                                   else "not set")
        rows.append(f"| `{var.name}` | {default} | {var.allowed} | {var.help} | {var.since} |")
    return "\n".join(rows)


def mask_email(email: Optional[str]) -> str:
    """``a***@example.com``: enough to recognise, never the whole address."""
    if not email:
        return ""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"
