"""Vector on the server: its signed package repository and pinned package, the ``vector`` user,
``/etc/vector/vector.toml``, ``/etc/default/vector`` and the service.

Three planners (``CONCERN``), each in its ``Phase`` with others between them: ``plan_vector_package``
(first), ``plan_vector_config`` (after certbot and mTLS, whose files it names), ``plan_vector_service``
(after the firewall). All are pure: they read ``Facts`` and the configuration.

Decisions, each one a place where the bash installer behaved differently or said nothing:

- **Repository key**: downloaded once to ``/usr/share/keyrings/actvt-vector-<hash of its URL>.asc``
  (apt accepts an armored ``.asc`` in ``signed-by``). The URL is part of the name, so that pointing
  ``ACTVT_VECTOR_KEY_URL`` at a mirror's key fetches that key instead of keeping the old one; keys of
  earlier URLs are removed. ``apt-get update`` runs only when the list or the key changed, or when
  the package is about to be installed.
- **Installed already**: the package step is skipped (repository files included, as the bash
  installer did) unless ``ACTVT_REINSTALL_VECTOR`` is yes. A Vector at another version than the pinned one is
  kept, never silently replaced; ``notes()`` says so. With reinstall, the pinned version is
  installed even when that is a downgrade: the user asked for it.
- **Ownership**: ``vector.toml`` and ``/etc/default/vector`` are ``0644 root:root``. They hold no
  secret (paths, the port, the domain), Vector's user reads them, cannot change them, and the plan
  does not depend on the ``vector`` group existing yet (it appears only when the package is
  installed, later in the same run). The private key's protection is certbot's step's business.
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
  other lines of that file are kept, other ``VECTOR_CONFIG*`` lines are dropped.
- **Service**: started when not running, restarted only when the configuration, the defaults file,
  the server certificate or key, or (with mTLS) the CA changed in this run; then a bounded wait
  until the port listens.
"""

import hashlib
import platform
import re
from typing import List, Optional, Sequence, Tuple
from urllib.parse import quote

from installer.core import paths
from installer.core.actions import Absent, Command, Fetch, File, Packages, Service, Step
from installer.core.concern import (BAKE, FAIL, INSTALL, PASS, SKIP, Checks, Concern, Endpoint, Finding, Phase, Planner,
                                   Undo, Uninstaller)
from installer.core.context import answer
from installer.core.facts import Probe
from installer.core.render import render_file, template

PACKAGE = "vector"
APT_LIST = "/etc/apt/sources.list.d/vector.list"
YUM_REPO = "/etc/yum.repos.d/vector.repo"
KEYRING_DIR = "/usr/share/keyrings"
KEYRING_PREFIX = "actvt-vector-"
VECTOR_HOME = "/var/lib/vector"

#: Paths whose content the planners read: the keyrings (to remove keys of an earlier key URL) and
#: the defaults file (its other lines are kept).
READS = (KEYRING_DIR, paths.VECTOR_DEFAULTS)

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


def keyring_path(key_url: str) -> str:
    digest = hashlib.sha256(key_url.encode()).hexdigest()[:12]
    return f"{KEYRING_DIR}/{KEYRING_PREFIX}{digest}.asc"


def version_key(version: str) -> Tuple:
    """Sort key for package versions such as ``0.50.0-1`` (enough to tell an upgrade from a
    downgrade of Vector's own numbering; not a full dpkg/rpm comparison)."""
    parts = re.findall(r"\d+|[A-Za-z]+|~", version.split(":", 1)[-1])
    return tuple((0, -1) if part == "~" else (1, int(part)) if part.isdigit() else (2, part) for part in parts)


def _installed(facts) -> Optional[str]:
    return facts.packages.get(PACKAGE)


# --- the package ----------------------------------------------------------------------------------


def apt_list_text(config) -> bytes:
    keyring = keyring_path(config.vector_key_url)
    return (f"# Vector's signed package repository (written by actvt-installer)\n"
            f"deb [signed-by={keyring}] {_uri(config.vector_apt_url)} stable vector-0\n").encode()


def yum_repo_text(config) -> bytes:
    # parse_url admits no whitespace, so no value can add a line; the URLs keep yum's $basearch.
    return ("# Vector's signed package repository (written by actvt-installer)\n"
            "[vector]\n"
            "name=Vector\n"
            f"baseurl={config.vector_yum_url}\n"
            "enabled=1\n"
            "gpgcheck=1\n"
            "repo_gpgcheck=1\n"
            f"gpgkey={config.vector_key_url}\n").encode()


def _apt_install_argv(spec: str) -> Tuple[str, ...]:
    return ("apt-get", "install", "-y", "-q", "--reinstall", "--allow-downgrades", "--no-install-recommends",
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


def plan_vector_package(config, facts, decisions, ctx) -> List[Step]:
    manager = facts.package_manager
    installed = _installed(facts)
    reinstall = answer(config, ctx, "ACTVT_REINSTALL_VECTOR")
    version = config.vector_version
    actions: List = []
    if installed is None or reinstall:
        if manager == "apt":
            keyring = keyring_path(config.vector_key_url)
            actions.append(Fetch(keyring, config.vector_key_url, 0o644,
                                 reason="signing key of Vector's package repository"))
            for path in sorted(facts.files):
                if path.startswith(f"{KEYRING_DIR}/{KEYRING_PREFIX}") and path != keyring:
                    actions.append(Absent(path, reason="key of an earlier ACTVT_VECTOR_KEY_URL"))
            actions.append(File(APT_LIST, apt_list_text(config), 0o644,
                                reason=f"Vector's repository {config.vector_apt_url} (signed-by its key)"))
            actions.append(Command(("apt-get", "update", "-q"), timeout=600,
                                   reason="read the package lists (Vector's repository was added)",
                                   when_changed=() if installed is None else (APT_LIST, keyring)))
        elif manager in ("dnf", "yum"):
            actions.append(File(YUM_REPO, yum_repo_text(config), 0o644,
                                reason=f"Vector's repository {config.vector_yum_url} (gpgcheck, repo_gpgcheck)"))
        else:
            return []
        if installed is None:
            actions.append(Packages(manager, (f"{PACKAGE}={version}",), reason=f"Vector {version} (pinned)"))
        elif manager == "apt":
            actions.append(Command(_apt_install_argv(f"{PACKAGE}={version}"), timeout=1800,
                                   reason=f"ACTVT_REINSTALL_VECTOR=yes: Vector {installed} -> {version}"))
        else:
            actions.append(Command(_rpm_reinstall_argv(manager, installed, version), timeout=1800,
                                   reason=f"ACTVT_REINSTALL_VECTOR=yes: Vector {installed} -> {version}"))
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
    reason = (f"metrics over wss on port {config.vector_port} ({where})"
              + (", client certificates required (mTLS)" if config.enable_mtls else "")
              + (", with GPU metrics" if gpu else ""))
    return [Step("Configuring Vector", (
        File(paths.VECTOR_CONFIG, render_config(config, decisions.mode, gpu).encode(), 0o644, reason=reason),
        File(paths.VECTOR_DEFAULTS, defaults_text(facts.files.get(paths.VECTOR_DEFAULTS)), 0o644,
             reason=f"VECTOR_CONFIG={paths.VECTOR_CONFIG}, so that the unit's validate steps check it"),
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
        if isinstance(action, Fetch):
            found.append(Endpoint("the signing key of Vector's repository", action.url, "ACTVT_VECTOR_KEY_URL"))
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
    argv = ("apt-get", "remove", "-y", PACKAGE) if manager == "apt" else (manager, "remove", "-y", PACKAGE)
    return [Step("Removing the Vector package", (Command(argv, "--remove-vector"),))]


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
    probes=(VECTOR_USER,),
    planners=(Planner(Phase.PACKAGES, plan_vector_package, (INSTALL, BAKE)),
              Planner(Phase.CONFIG, plan_vector_config), Planner(Phase.SERVICE, plan_vector_service)),
    notes=notes,
    endpoints=endpoints,
    uninstall=(Uninstaller(Undo.STOP, uninstall_stop), Uninstaller(Undo.PACKAGES, uninstall_package)),
    checks=Checks(doctor_checks, probes=(VECTOR_VALIDATE,)),
)
