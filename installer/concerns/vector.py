"""Vector on the server: its signed package repository and pinned package, the ``vector`` user,
``/etc/vector/vector.toml``, ``/etc/default/vector`` and the service.

Three planners (``CONCERN``), each in its ``Phase`` with others between them: ``plan_vector_package``
(first), ``plan_vector_config`` (after certbot and mTLS, whose files it names), ``plan_vector_service``
(after the firewall). All are pure: they read ``Facts`` and the configuration.

Decisions, each one a place where the bash installer behaved differently or said nothing:

- **Repository keys**: Datadog's current signing keys (``DATADOG_KEYS``: each file Vector's setup
  script imports, not only ``CURRENT``) are downloaded into one keyring, and a key whose fingerprint
  is not pinned here is refused before the keyring is written (``ACTVT_VECTOR_KEY_URL`` and
  ``ACTVT_VECTOR_KEY_FINGERPRINTS`` name a mirror's keys). apt gets a binary keyring in
  ``/usr/share/keyrings`` (``signed-by``), dnf and yum an armored one in ``/etc/pki/rpm-gpg``
  (``gpgkey=file://``: they import only keys we checked, never one fetched on their own). The name
  carries a hash of the URLs and the fingerprints, so that another mirror, or a pinned set changed
  in a newer installer, makes a new keyring on the next run; earlier ones are removed. ``apt-get
  update`` runs only when the list or the keyring changed, or when the package is about to be
  installed.
- **rpm's trust** (dnf, yum): the installer imports the checked keyring into rpm's database itself
  (``rpm --import``, before the package; otherwise dnf imports it from ``gpgkey=`` and nothing records
  it), and records by fingerprint only the keys rpm did not trust before (``core/rpmkeys.py``), so that
  uninstall removes exactly those and a failed run's rollback takes them back.
- **Installed already**: the package is kept (no install) unless ``ACTVT_REINSTALL_VECTOR`` is yes;
  the keyring and the repository file are kept up to date only where an earlier run made them (an
  ``actvt-vector-`` keyring is there) for the repository this run names: a Vector set up by other
  means keeps its own, and a re-run without a mirror's variables leaves the mirror in place. A
  Vector at another version than the pinned one is kept, never silently replaced; ``notes()`` says
  so. With reinstall, the pinned version is installed even when that is a downgrade: the user asked
  for it.
- **Ownership**: ``vector.toml`` is ``0644 root:root``: it holds no secret (paths, the port, the
  domain), Vector's user reads it, cannot change it, and the plan does not depend on the ``vector``
  group existing yet (it appears only when the package is installed, later in the same run). The
  private key's protection is certbot's step's business. ``/etc/default/vector`` is ``0644 root:root``
  at most: people keep secrets there (``DD_API_KEY=…``, sink credentials) and Vector's package ships
  it ``0600``, so a file that is stricter keeps its mode and group (``File.keep_stricter``); only
  systemd (root) reads it, Vector's user never does.
- **Configuration** (``templates/vector.toml``): the metrics contract with the Actvt app
  (``docs/metrics-contract.md``) with the Vector 0.50 facts applied: metric names without the ``host_`` prefix, the host from
  ``.host`` or ``get_hostname!()``, ``network_transmit_packets_drop_total`` (there is no receive-drop
  counter), ``nvidia-smi`` fields trimmed and parsed with fallbacks. Messages keep the bash installer's
  shape: the contract's fields are added to the event Vector made (``name``, ``tags``, ...).
  ``disk_*`` messages also carry ``mountpoint``. ``system_info.domain`` is ``ACTVT_DOMAIN`` and
  ``ipv4_public`` what the domain resolves to (the bash installer asked ifconfig.me every 15 s).
- **Escaping**: every value put into the TOML goes through ``toml_string`` (a TOML basic string in
  which ``$`` is doubled, because Vector expands ``$NAME`` anywhere in the file). User values never
  reach a shell or a VRL program: the domain is the system-info script's first argument.
- **Pointing Vector at the file**: ``VECTOR_CONFIG=/etc/vector/vector.toml`` in ``/etc/default/vector``
  (the unit's ``EnvironmentFile``), so that its ``ExecStartPre``/``ExecReload`` validate our file; the
  other lines of that file are kept, other ``VECTOR_CONFIG*`` lines are dropped. Not a unit drop-in
  with ``Environment=VECTOR_CONFIG=…``: systemd lets ``EnvironmentFile=`` override ``Environment=``, so
  a ``VECTOR_CONFIG`` line there (the bash installer's, an earlier run's, a user's) would still win and
  the file would have to be edited anyway. The kept lines are the user's: only the two lines the
  installer adds are its own (``File.own_lines``), and no diff shows the others (engine/diff.py).
- **Service**: started when not running, restarted only when the configuration, the defaults file,
  the server certificate or key, or (with mTLS) the CA changed in this run; then a bounded wait
  until the port listens.
"""

import hashlib
import platform
import re
from typing import List, Optional, Sequence, Tuple
from urllib.parse import quote

from installer.core import openpgp, packaging, paths, rpmkeys
from installer.core.actions import Absent, Command, File, Keyring, Packages, Service, Step
from installer.core.concern import (BAKE, FAIL, INSTALL, PASS, SKIP, Checks, Concern, Endpoint, Finding, Phase, Planner,
                                   Undo, Uninstaller)
from installer.core.context import answer
from installer.core.facts import Probe
from installer.core.render import render_file, template

PACKAGE = "vector"
APT_LIST = "/etc/apt/sources.list.d/vector.list"
YUM_REPO = "/etc/yum.repos.d/vector.repo"
KEYRING_DIRS = {"apt": "/usr/share/keyrings", "dnf": "/etc/pki/rpm-gpg", "yum": "/etc/pki/rpm-gpg"}
KEYRING_PREFIX = "actvt-vector-"
VECTOR_HOME = "/var/lib/vector"
DATADOG_KEYS_URL = "https://keys.datadoghq.com/"

#: Datadog's signing keys of Vector's repositories: the files Vector's own setup script imports
#: (APT_GPG_KEYS and RPM_GPG_KEYS of install_script_vector0.sh in github.com/DataDog/agent-linux-install-script,
#: the script https://setup.vector.dev serves) plus the successor each CURRENT file will hold after
#: Datadog's next rotation (06462314 and 4F09D16B, imported ahead by Datadog's agent script,
#: install_script.sh.template of the same repository), so that a host set up now keeps verifying.
#: The fingerprints are those of apt_gpg_keys and rpm_gpg_keys in recipes/repository.rb of
#: github.com/DataDog/chef-datadog. CURRENT holds one of them; a CURRENT with any other key is refused.
DATADOG_KEYS = {
    "apt": (("DATADOG_APT_KEY_CURRENT.public", None),
            ("DATADOG_APT_KEY_C0962C7D.public", "5F1E256061D813B125E156E8E6266D4AC0962C7D"),  # expires 2028
            ("DATADOG_APT_KEY_F14F620E.public", "D75CEA17048B9ACBF186794B32637D44F14F620E"),  # expires 2032
            ("DATADOG_APT_KEY_06462314.public", "D18886567EABAD8B2D2526900D826EB906462314")),  # 2033, next
    "rpm": (("DATADOG_RPM_KEY_CURRENT.public", None),
            ("DATADOG_RPM_KEY_B01082D3.public", "7408BFD56BC5BF0C361AAAE85D88EEA3B01082D3"),  # expires 2028
            ("DATADOG_RPM_KEY_FD4BF915.public", "C6559B690CA882F023BDF3F63F4D1729FD4BF915"),  # 2024: older packages
            ("DATADOG_RPM_KEY_4F09D16B.public", "2416A37757B1BB0268B3634B52AFC5994F09D16B")),  # 2033, next
}

#: Paths whose content the planners read: the keyrings (earlier ones are removed; one of ours means
#: the repository is ours to keep up to date) and the defaults file (its other lines are kept).
READS = tuple(dict.fromkeys(KEYRING_DIRS.values())) + (APT_LIST, YUM_REPO, paths.VECTOR_DEFAULTS, rpmkeys.RECORD)

#: The ``vector`` system user exists (True/False; None under --root, where it is not asked).
VECTOR_USER = Probe("vector_user", ("getent", "passwd", "vector"), lambda result: result.returncode == 0)

#: What the unit's ExecStartPre does before each start: validate vector.toml as the vector user,
#: with its environment checks (the TLS files it names must be readable by that user).
VALIDATE_AS_VECTOR = ("runuser", "-u", "vector", "--", "vector", "validate", paths.VECTOR_CONFIG)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _validation(result) -> Tuple[bool, str]:
    """(passed, its last lines: the error, when it failed) of ``vector validate``."""
    lines = [_ANSI.sub("", line).strip() for line in result.output.splitlines()]
    return result.returncode == 0, " | ".join(line for line in lines if line)[-400:]


#: ``actvt doctor`` only.
VECTOR_VALIDATE = Probe("vector_validate", VALIDATE_AS_VECTOR, _validation)

#: Transforms whose output the WebSocket sink sends.
BASE_OUTPUTS = ("format_host_metrics", "format_system_info")
GPU_OUTPUTS = tuple(f"format_{name}" for name in (
    "gpu_utilization", "gpu_memory", "gpu_temperature", "gpu_clocks", "gpu_power", "gpu_encoder_decoder",
    "gpu_fan_pstate"))

#: One tab-separated line: os, arch, domain (the first argument), ipv4, ipv4_public.
SYSTEM_INFO_SCRIPT = "\n".join((
    "os=$(. /etc/os-release 2>/dev/null; printf '%s' \"${PRETTY_NAME:-}\")",
    "[ -n \"$os\" ] || os=$(uname -sr)",
    "arch=$(uname -m)",
    "ipv4=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p' | head -n 1)",
    "[ -n \"$ipv4\" ] || ipv4=$(hostname -I 2>/dev/null | cut -d ' ' -f 1)",
    "public=$(getent ahostsv4 \"$1\" 2>/dev/null | awk 'NR == 1 { print $1 }')",
    "printf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$os\" \"$arch\" \"$1\" \"$ipv4\" \"$public\"",
))

#: Makes the ``vector`` user when the package did not (its maintainer scripts normally do).
ENSURE_USER_SCRIPT = "\n".join((
    "getent passwd vector >/dev/null && exit 0",
    "if getent group vector >/dev/null; then set -- --gid vector; else set -- --user-group; fi",
    f"exec useradd --system \"$@\" --home-dir {VECTOR_HOME} --no-create-home --shell /usr/sbin/nologin "
    "--comment Vector vector",
))

_DEFAULTS_COMMENT = "# Set by actvt-installer: Vector and its unit's validate steps read this configuration."
_VECTOR_CONFIG_LINE = re.compile(r"^\s*(export\s+)?VECTOR_CONFIG(_TOML|_YAML|_JSON|_DIR)?\s*=")


# --- escaping -------------------------------------------------------------------------------------


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string for Vector: quotes, backslashes and control characters
    escaped, and ``$`` doubled (Vector expands ``$NAME`` and ``${NAME}`` before parsing the file,
    ``$$`` stands for ``$``)."""
    out = []
    for char in str(value):
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif char == "$":
            out.append("$$")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_array(values: Sequence[str]) -> str:
    return "[" + ", ".join(toml_string(value) for value in values) + "]"


def _uri(url: str) -> str:
    """A repository URL safe for a one-line apt source: percent-encode what could end the field or
    start an option or a comment (whitespace, ``[``, ``]``, ``#``, quotes)."""
    return quote(url, safe=":/?&=%~+@,;!$()*-._")


# --- small helpers --------------------------------------------------------------------------------



def gpu_enabled(config, facts, ctx) -> bool:
    """GPU sources only when ``nvidia-smi -L`` listed a GPU and GPU metrics are wanted."""
    return bool(facts.gpu) and answer(config, ctx, "ACTVT_ENABLE_GPU")


def _family(manager: str) -> str:
    return "apt" if manager == "apt" else "rpm"


def key_urls(config, manager: str) -> Tuple[str, ...]:
    """The keys' URLs: ACTVT_VECTOR_KEY_URL, else Datadog's for the host's package manager."""
    return config.vector_key_url or tuple(DATADOG_KEYS_URL + name for name, _ in DATADOG_KEYS[_family(manager)])


def key_fingerprints(config, manager: str) -> Tuple[str, ...]:
    """The only keys the keyring may hold: ACTVT_VECTOR_KEY_FINGERPRINTS, else Datadog's pinned ones."""
    return config.vector_key_fingerprints or tuple(fpr for _, fpr in DATADOG_KEYS[_family(manager)] if fpr)


def keyring_path(config, manager: str) -> str:
    """Named by what it is made from: other URLs or other pinned keys make another keyring."""
    made_from = "\n".join((_family(manager),) + key_urls(config, manager) + key_fingerprints(config, manager))
    digest = hashlib.sha256(made_from.encode()).hexdigest()[:12]
    return f"{KEYRING_DIRS[manager]}/{KEYRING_PREFIX}{digest}" + (".gpg" if manager == "apt" else ".asc")


def keyring_action(config, manager: str) -> Keyring:
    pinned = "ACTVT_VECTOR_KEY_FINGERPRINTS" if config.vector_key_fingerprints else "the installer"
    return Keyring(keyring_path(config, manager), key_urls(config, manager), key_fingerprints(config, manager),
                   armored=manager != "apt", reason=f"signing keys of Vector's repository, pinned by {pinned}",
                   hint="A mirror with its own signing key declares it with ACTVT_VECTOR_KEY_FINGERPRINTS "
                        "(`gpg --show-keys KEYFILE` prints it); otherwise the key is not Datadog's, or this "
                        "installer predates a new one of theirs")


def _ours(facts, manager: str) -> list:
    """Keyrings an earlier run made (``actvt-vector-*``)."""
    prefix = f"{KEYRING_DIRS[manager]}/{KEYRING_PREFIX}"
    return sorted(path for path in facts.files if path.startswith(prefix))


def version_key(version: str) -> Tuple:
    """Sort key for package versions such as ``0.50.0-1`` (enough to tell an upgrade from a
    downgrade of Vector's own numbering; not a full dpkg/rpm comparison)."""
    parts = re.findall(r"\d+|[A-Za-z]+|~", version.split(":", 1)[-1])
    return tuple((0, -1) if part == "~" else (1, int(part)) if part.isdigit() else (2, part) for part in parts)


def _installed(facts) -> Optional[str]:
    return facts.packages.get(PACKAGE)


# --- the package ----------------------------------------------------------------------------------


def apt_list_text(config) -> bytes:
    keyring = keyring_path(config, "apt")
    return (f"# Vector's signed package repository (written by actvt-installer)\n"
            f"deb [signed-by={keyring}] {_uri(config.vector_apt_url)} stable vector-0\n").encode()


def yum_repo_text(config, manager: str = "dnf") -> bytes:
    # parse_url admits no whitespace, so no value can add a line; the URLs keep yum's $basearch.
    return ("# Vector's signed package repository (written by actvt-installer)\n"
            "[vector]\n"
            "name=Vector\n"
            f"baseurl={config.vector_yum_url}\n"
            "enabled=1\n"
            "gpgcheck=1\n"
            "repo_gpgcheck=1\n"
            f"gpgkey=file://{keyring_path(config, manager)}\n").encode()


def _apt_install_argv(spec: str, lock_timeout: int) -> Tuple[str, ...]:
    return ("apt-get", *packaging.apt_lock_option(lock_timeout), "install", "-y", "-q", "--reinstall",
            "--allow-downgrades", "--no-install-recommends",
            "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", spec)


def _rpm_reinstall_argv(manager: str, installed: str, version: str) -> Tuple[str, ...]:
    spec = f"{PACKAGE}-{version}"
    if version_key(installed) == version_key(version):
        verb = "reinstall"
    elif version_key(installed) > version_key(version):
        verb = "downgrade"
    else:
        verb = "install"
    return (manager, verb, "-y", spec)


def ensure_user_action() -> Command:
    return Command(("sh", "-c", ENSURE_USER_SCRIPT, "actvt-ensure-vector-user"),
                   reason="Vector runs as the `vector` system user",
                   display="ensure the `vector` system user exists (useradd --system vector)")


def repository_actions(config, facts, manager: str, installing: bool) -> List:
    """The keyring, the repository file and (apt) the package lists: read always before a first
    install, else only when the list or the keyring changed."""
    if manager not in KEYRING_DIRS:
        return []
    keyring = keyring_action(config, manager)
    actions: List = [keyring]
    actions += [Absent(path, reason="an earlier keyring of Vector's repository (other keys or key URLs)")
                for path in _ours(facts, manager) if path != keyring.path]
    if manager == "apt":
        actions.append(File(APT_LIST, apt_list_text(config), 0o644,
                            reason=f"Vector's repository {config.vector_apt_url} (signed-by its keyring)"))
        actions.append(Command(("apt-get", "update", "-q"), timeout=600, locks=packaging.APT_LISTS,
                               reason="read the package lists (Vector's repository was added)",
                               when_changed=() if installing else (APT_LIST, keyring.path)))
    else:
        actions.append(File(YUM_REPO, yum_repo_text(config, manager), 0o644,
                            reason=f"Vector's repository {config.vector_yum_url} (gpgcheck, repo_gpgcheck)"))
    return actions


def repository_current(config, facts, manager: str) -> bool:
    """What an earlier run set up is what this run wants: the keyring of this run's URLs and pins,
    holding only pinned keys, no other keyring of ours, the same repository file (so a re-run with
    nothing to change neither downloads a key nor asks the repository)."""
    keyring = keyring_action(config, manager)
    if _ours(facts, manager) != [keyring.path]:
        return False
    try:
        held = openpgp.certificates(facts.files[keyring.path])
    except openpgp.NotAKey:
        return False
    wanted = (APT_LIST, apt_list_text(config)) if manager == "apt" else (YUM_REPO, yum_repo_text(config, manager))
    return all(cert.fingerprint in keyring.fingerprints for cert in held) and facts.files.get(wanted[0]) == wanted[1]


def same_repository(config, facts, manager: str) -> bool:
    """The repository file an earlier run wrote names the repository this run names (a re-run that
    leaves out a mirror's variables does not move an installed Vector back to Datadog's repository)."""
    if manager == "apt":
        lines = (facts.files.get(APT_LIST) or b"").decode(errors="replace").splitlines()
        urls = [line.split("] ", 1)[1].split(" ", 1)[0] for line in lines if line.startswith("deb [") and "] " in line]
        return urls == [_uri(config.vector_apt_url)]
    lines = (facts.files.get(YUM_REPO) or b"").decode(errors="replace").splitlines()
    return f"baseurl={config.vector_yum_url}" in lines


def rpm_key_actions(config, facts, manager: str) -> List:
    """dnf and yum: the pinned keys imported into rpm's database by the installer itself (else dnf
    imports them from ``gpgkey=`` and nothing records it), and each key rpm did not trust before
    recorded by fingerprint in ``rpmkeys.RECORD`` for uninstall. Nothing when rpm trusts them all
    (a re-run, or a user who imported them): a key trusted before is never recorded."""
    if manager not in ("dnf", "yum"):
        return []
    keyring = keyring_action(config, manager)
    try:  # the keyring an earlier run wrote holds these; a new one will hold pinned keys only
        held = [cert.fingerprint for cert in openpgp.certificates(facts.files[keyring.path])
                if cert.fingerprint in keyring.fingerprints]
    except (KeyError, openpgp.NotAKey):
        held = list(keyring.fingerprints)
    trusted = facts.fact(rpmkeys.TRUSTED) or {}
    missing = [fpr for fpr in dict.fromkeys(held) if fpr not in trusted]
    if not missing:
        return []
    previous = rpmkeys.record_lines(facts.files.get(rpmkeys.RECORD))
    return [File(rpmkeys.RECORD, rpmkeys.record_text(previous + missing), 0o600,
                 reason="the keys the installer adds to rpm's database, for uninstall"),
            Command(rpmkeys.import_argv(keyring.path), timeout=300, locks=packaging.RPM,
                    on_rollback=rpmkeys.rollback_argvs(missing, trusted),
                    reason=f"rpm trusts Vector's repository keys ({len(missing)} new), imported from the "
                           "checked keyring, not by dnf")]


def plan_vector_package(config, facts, decisions, ctx) -> List[Step]:
    manager = facts.package_manager
    installed = _installed(facts)
    reinstall = answer(config, ctx, "ACTVT_REINSTALL_VECTOR")
    version = config.vector_version
    actions: List = []
    if installed is None or reinstall:
        actions += repository_actions(config, facts, manager, installing=installed is None)
        if not actions:
            return []
        actions += rpm_key_actions(config, facts, manager)
        if installed is None:
            actions.append(Packages(manager, (f"{PACKAGE}={version}",), reason=f"Vector {version} (pinned)"))
        elif manager == "apt":
            actions.append(Command(_apt_install_argv(f"{PACKAGE}={version}", config.package_lock_timeout),
                                   timeout=1800, locks=packaging.APT_INSTALL,
                                   reason=f"ACTVT_REINSTALL_VECTOR=yes: Vector {installed} -> {version}"))
        else:
            actions.append(Command(_rpm_reinstall_argv(manager, installed, version), timeout=1800,
                                   locks=packaging.RPM,
                                   reason=f"ACTVT_REINSTALL_VECTOR=yes: Vector {installed} -> {version}"))
    elif manager in KEYRING_DIRS and _ours(facts, manager) and same_repository(config, facts, manager) \
            and not repository_current(config, facts, manager):
        # kept up to date where an earlier run set it up: a newer pinned set, other key URLs
        actions += repository_actions(config, facts, manager, installing=False)
    if manager in ("dnf", "yum") and installed is not None and not reinstall and _ours(facts, manager) \
            and same_repository(config, facts, manager):
        actions += rpm_key_actions(config, facts, manager)
    if facts.fact(VECTOR_USER) is not True:
        actions.append(ensure_user_action())
    if not actions:
        return []
    if installed is None:
        title = f"Installing Vector {version}"
    elif reinstall:
        title = f"Reinstalling Vector {version}"
    else:
        title = f"Vector {installed} is installed"
    return [Step(title, tuple(actions))]


def notes(config, facts, decisions, ctx) -> List[str]:
    """What the user should know about Vector that is not an action (for the summary)."""
    found = []
    installed = _installed(facts)
    if installed is not None and installed != config.vector_version and \
            not answer(config, ctx, "ACTVT_REINSTALL_VECTOR"):
        direction = "newer" if version_key(installed) > version_key(config.vector_version) else "older"
        found.append(f"Vector {installed} is installed, {direction} than the pinned {config.vector_version}; "
                     "it was kept (set ACTVT_REINSTALL_VECTOR=yes to install the pinned version)")
    if facts.gpu and not gpu_enabled(config, facts, ctx):
        found.append("an NVIDIA GPU was found but GPU metrics are off (ACTVT_ENABLE_GPU=no)")
    return found


# --- the configuration ----------------------------------------------------------------------------


def bind_address(config, mode: str) -> str:
    host = "127.0.0.1" if mode == "proxy" else "0.0.0.0"
    return f"{host}:{int(config.vector_port)}"


def render_config(config, mode: str, gpu: bool) -> str:
    """The text of ``/etc/vector/vector.toml``. Every inserted value is TOML-escaped."""
    tls_extra = ""
    if config.enable_mtls:
        # behind the front, Vector trusts only the proxy's own identity (the front checks the users)
        ca_file = paths.PROXY_CA_CERT if mode == "proxy" else paths.CA_CERT
        tls_extra = (f"ca_file = {toml_string(ca_file)}\n"
                     "verify_certificate = true")
    return render_file("vector.toml", {
        "SYSTEM_INFO_COMMAND": toml_array(("/bin/sh", "-c", SYSTEM_INFO_SCRIPT, "actvt-system-info",
                                           config.domain or "")),
        "GPU": template("vector-gpu.toml") if gpu else "",
        "SINK_INPUTS": toml_array(BASE_OUTPUTS + (GPU_OUTPUTS if gpu else ())),
        "ADDRESS": toml_string(bind_address(config, mode)),
        "CRT_FILE": toml_string(paths.SERVER_CERT),
        "KEY_FILE": toml_string(paths.SERVER_KEY),
        "MTLS": tls_extra,
    })


def defaults_own_lines(existing: Optional[bytes]) -> Optional[Tuple[str, ...]]:
    """The lines of ``defaults_text`` that are the installer's (``File.own_lines``); None when it writes
    the whole file (there was none)."""
    return None if not existing else ("", _DEFAULTS_COMMENT, f"VECTOR_CONFIG={paths.VECTOR_CONFIG}")


def defaults_text(existing: Optional[bytes]) -> bytes:
    """``/etc/default/vector``: the package's lines kept, ``VECTOR_CONFIG`` pointing at our file."""
    if existing:
        lines = existing.decode("utf-8", errors="replace").splitlines()
    else:
        lines = ["# Environment of the vector service (its unit reads this file)."]
    kept = [line for line in lines if not _VECTOR_CONFIG_LINE.match(line) and line != _DEFAULTS_COMMENT]
    while kept and not kept[-1].strip():
        kept.pop()
    kept += ["", _DEFAULTS_COMMENT, f"VECTOR_CONFIG={paths.VECTOR_CONFIG}"]
    return ("\n".join(kept) + "\n").encode()


def plan_vector_config(config, facts, decisions, ctx) -> List[Step]:
    gpu = gpu_enabled(config, facts, ctx)
    where = "127.0.0.1 behind nginx" if decisions.mode == "proxy" else "all addresses"
    defaults = facts.files.get(paths.VECTOR_DEFAULTS)
    reason = (f"metrics over wss on port {config.vector_port} ({where})"
              + (", client certificates required (mTLS)" if config.enable_mtls else "")
              + (", with GPU metrics" if gpu else ""))
    return [Step("Configuring Vector", (
        File(paths.VECTOR_CONFIG, render_config(config, decisions.mode, gpu).encode(), 0o644, reason=reason),
        File(paths.VECTOR_DEFAULTS, defaults_text(defaults), 0o644, own_lines=defaults_own_lines(defaults),
             keep_stricter=True, reason=f"VECTOR_CONFIG={paths.VECTOR_CONFIG}, so that the unit's validate steps "
                                        "check it"),
    ))]


# --- the service ----------------------------------------------------------------------------------


def restart_inputs(config, mode: str) -> Tuple[str, ...]:
    """Files whose change in a run makes Vector restart (not reload: the websocket_server sink keeps
    the certificate it loaded at start)."""
    found = (paths.VECTOR_CONFIG, paths.VECTOR_DEFAULTS, paths.VECTOR_LIMITS, paths.SERVER_CERT, paths.SERVER_KEY)
    trusted = paths.PROXY_CA_CERT if mode == "proxy" else paths.CA_CERT
    return found + ((trusted,) if config.enable_mtls else ())


def plan_vector_service(config, facts, decisions, ctx) -> List[Step]:
    return [Step("Starting Vector", (
        Service(PACKAGE, enabled=True, running=True, restart_when_changed=restart_inputs(config, decisions.mode),
                wait_seconds=30, reason="streams the metrics",
                ports=(int(config.vector_port),),
                diagnose=(("vector", "validate", "--no-environment", paths.VECTOR_CONFIG), VALIDATE_AS_VECTOR)),
    ))]


def endpoints(config, actions) -> List[Endpoint]:
    """Vector's signing key and repository, when this run adds them (the connectivity check)."""
    found = []
    for action in actions:
        if isinstance(action, Keyring):
            found += [Endpoint("a signing key of Vector's repository", url, "ACTVT_VECTOR_KEY_URL")
                      for url in action.urls]
        elif isinstance(action, File) and action.path == APT_LIST:
            base = config.vector_apt_url.rstrip("/")
            found.append(Endpoint("Vector's package repository", f"{base}/dists/stable/InRelease",
                                  "ACTVT_VECTOR_APT_URL"))
        elif isinstance(action, File) and action.path == YUM_REPO:
            base = config.vector_yum_url.replace("$basearch", platform.machine() or "x86_64").rstrip("/")
            found.append(Endpoint("Vector's package repository", f"{base}/repodata/repomd.xml",
                                  "ACTVT_VECTOR_YUM_URL"))
    return found


def uninstall_stop(entries, facts, options) -> List[Step]:
    if not facts.has_package(PACKAGE):
        return []
    return [Step("Stopping Vector", (Service(PACKAGE, enabled=False, running=False, reason="uninstall"),))]


def uninstall_package(entries, facts, options) -> List[Step]:
    if not (options.remove_vector and facts.has_package(PACKAGE)):
        return []
    manager = facts.package_manager or "apt"
    if manager == "apt":
        argv = ("apt-get", *packaging.apt_lock_option(options.package_lock_timeout), "remove", "-y", PACKAGE)
    else:
        argv = (manager, "remove", "-y", PACKAGE)
    return [Step("Removing the Vector package",
                 (Command(argv, "--remove-vector", locks=packaging.for_install(manager)),))]


def uninstall_keys(entries, facts, options) -> List[Step]:
    """The keys the installer imported into rpm's database (``rpmkeys.RECORD``), each by the full name
    rpm gives its fingerprint now; a key rpm trusted before the install was never recorded."""
    record = facts.files.get(rpmkeys.RECORD)
    if not record:
        return []
    argvs = rpmkeys.removal_argvs(rpmkeys.record_lines(record), facts.fact(rpmkeys.TRUSTED))
    return [Step("Removing the repository keys the installer imported into rpm",
                 tuple(Command(argv, "a key of Vector's repository the installer imported", may_fail=True,
                               locks=packaging.RPM, timeout=300) for argv in argvs)
                 + (Absent(rpmkeys.RECORD, "the record of imported keys"),))]


def doctor_checks(config, facts, decisions, ctx) -> List[Finding]:
    """``vector validate`` as the next start would run it."""
    verdict = facts.fact(VECTOR_VALIDATE)
    if verdict is None:
        return [Finding("vector.validate", SKIP, "vector validate: not run (runuser not found, or --root)")]
    passed, tail = verdict
    if passed:
        return [Finding("vector.validate", PASS, f"vector validate: {paths.VECTOR_CONFIG} is valid (read as the "
                                                 "vector user, as the unit does before each start)")]
    return [Finding("vector.validate", FAIL, f"vector validate fails as the vector user: {tail}",
                    f"sudo actvt install  (rewrites {paths.VECTOR_CONFIG} and gives the files it names their modes)")]


CONCERN = Concern(
    name="vector",
    reads=lambda config: READS,
    probes=(VECTOR_USER, rpmkeys.TRUSTED),
    planners=(Planner(Phase.PACKAGES, plan_vector_package, (INSTALL, BAKE)),
              Planner(Phase.CONFIG, plan_vector_config), Planner(Phase.SERVICE, plan_vector_service)),
    notes=notes,
    endpoints=endpoints,
    uninstall=(Uninstaller(Undo.STOP, uninstall_stop), Uninstaller(Undo.PACKAGES, uninstall_package),
               Uninstaller(Undo.PACKAGES, uninstall_keys)),
    uninstall_probes=(rpmkeys.TRUSTED,),
    checks=Checks(doctor_checks, probes=(VECTOR_VALIDATE,)),
)
