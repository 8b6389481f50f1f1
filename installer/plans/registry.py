"""Facts + configuration -> the ordered plan of actions. Pure: no I/O here.

Each concern contributes steps through its own ``plan_*`` function; ``build_plan`` puts them in the
reference order. The same function serves ``--dry-run`` and a real run, so what the dry run shows is
what the run does.
"""

from typing import List, Optional

from installer.core import paths
from installer.core.actions import Command, Copy, Directory, File, Plan, Step
from installer.core.context import Context, Decisions
from installer.core.facts import Facts


def decide(config, facts: Facts) -> Decisions:
    """Mode: forced standalone > explicit mode > proxy when nginx/apache/httpd listens > standalone."""
    webserver = facts.web_server()
    if config.force_standalone:
        mode = "standalone"
    elif config.install_mode != "auto":
        mode = config.install_mode
    elif webserver in ("nginx", "apache", "httpd"):
        mode = "proxy"
    else:
        mode = "standalone"
    return Decisions(mode=mode, webserver=webserver)


def port_conflicts(config, facts: Facts, decisions: Decisions) -> List[str]:
    """Why Vector cannot have its port on this host (one line each, naming ACTVT_VECTOR_PORT): nginx's
    443 in proxy mode (auto may choose proxy only now, from the facts), or another program listening."""
    from installer.core.config import BY_NAME, port_taken_by_nginx

    port = int(config.vector_port)
    if decisions.mode == "proxy" and port == 443:
        return [port_taken_by_nginx()]
    wanted = "127.0.0.1" if decisions.mode == "proxy" else None
    others = sorted({item.process or f"a program of user {item.user or 'unknown'}" for item in facts.listening_on(port)
                     if not item.is_program("vector") and (wanted is None or item.address in (wanted, "0.0.0.0", "::"))})
    if others:
        return [f"ACTVT_VECTOR_PORT: port {port} is already used by {', '.join(others)}; allowed: a free port ("
                + BY_NAME["ACTVT_VECTOR_PORT"].allowed + ")"]
    return []


def connection_url(config, decisions: Decisions) -> str:
    if decisions.mode == "proxy":
        return f"wss://{config.domain}/actvt"
    return f"wss://{config.domain}:{config.vector_port}"


# --- state ----------------------------------------------------------------------------------------


def state_text(config, facts: Facts, decisions: Decisions, ctx: Context) -> str:
    """``install.state`` as the reference writes it. ``installed_at`` keeps the first install's time,
    so that a re-run with nothing to change rewrites nothing."""
    from installer.core.facts import read_state

    previous = read_state(facts.files.get(paths.STATE_FILE))
    lines = [
        f"version={ctx.version}",
        f"installed_at={previous.get('installed_at') or ctx.now}",
        f"mode={decisions.mode}",
        f"webserver={decisions.webserver if decisions.webserver != 'unknown' else 'none'}",
        f"mtls={'enabled' if config.enable_mtls else 'disabled'}",
    ]
    if config.enable_mtls:
        lines.append(f"mtls_client_cn={config.mtls_client_cn}")
    return "\n".join(lines) + "\n"


def plan_state(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[Step]:
    return [Step("Recording installation state", (
        Directory(paths.STATE_DIR, 0o700, reason="installer state and backups"),
        Directory(paths.BACKUP_DIR, 0o700, reason="previous versions of replaced files"),
        File(paths.DOMAIN_FILE, f"{config.domain}\n".encode(), 0o644, reason="domain of this server"),
        File(paths.STATE_FILE, state_text(config, facts, decisions, ctx).encode(), 0o644,
             reason="mode and mTLS of this installation"),
    ))]


def notes(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[str]:
    """What the user should know about the configuration as a whole."""
    from installer.core.config import warnings

    return list(warnings(config))


# --- a package installation an earlier run was stopped in --------------------------------------

DPKG_UPDATES = "/var/lib/dpkg/updates"  # dpkg's journal: files here mean an install was interrupted


def plan_dpkg_repair(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[Step]:
    """A run stopped while apt ran (SIGTERM, SIGKILL, a reboot) leaves dpkg's journal, and every apt
    install after it fails ("dpkg was interrupted"): finish it first, as apt's message asks."""
    pending = [path for path in facts.files if path.startswith(DPKG_UPDATES + "/")]
    if not pending or facts.package_manager != "apt":
        return []
    return [Step("Finishing an interrupted package installation", (
        Command(("dpkg", "--configure", "-a"), timeout=1800,
                reason=f"dpkg was interrupted ({len(pending)} pending entr{'y' if len(pending) == 1 else 'ies'} "
                       f"in {DPKG_UPDATES})"),))]


# --- the installer kept on the server -------------------------------------------------------------


def command_text(build_id: Optional[str]) -> bytes:
    """``/usr/local/bin/actvt``: the launcher, pointed at the kept zipapp."""
    from installer.launcher.render import render_command

    return render_command(paths.PERSISTED_PYZ, build_id or "")


def plan_self(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[Step]:
    if ctx.pyz is None:
        return []
    return [Step("Keeping the installer on this server", (
        Directory(paths.LIB_DIR, 0o755, reason="the installer kept for `actvt` and generate-client.sh"),
        Copy(paths.PERSISTED_PYZ, ctx.pyz, 0o755, reason=f"actvt-installer {ctx.version}", host_source=True),
        File(paths.COMMAND, command_text(ctx.build_id), 0o755, reason="the `actvt` command"),
    ))]


from installer.concerns.certbot import plan_certbot  # noqa: E402  (the planners import plan's helpers lazily)
from installer.concerns.firewall import plan_firewall  # noqa: E402
from installer.concerns.lifecycle import plan_firstboot  # noqa: E402
from installer.concerns.migration import plan_migration  # noqa: E402
from installer.concerns.mtls import plan_mtls  # noqa: E402
from installer.concerns.nginx import plan_nginx_challenge, plan_nginx_site  # noqa: E402
from installer.concerns.vector import plan_vector_config, plan_vector_package, plan_vector_service  # noqa: E402

#: The planners in the order their steps run. Each is ``(config, facts, decisions, ctx) -> [Step]``.
#: certbot runs before anything that points at its files is written or enabled, so a failed
#: certificate leaves no half-configured service.
PLANNERS = (
    plan_dpkg_repair,
    plan_vector_package,
    plan_nginx_challenge,
    plan_certbot,
    plan_mtls,
    plan_vector_config,
    plan_nginx_site,
    plan_firewall,
    plan_migration,
    plan_vector_service,
    plan_self,
    plan_state,
)

def plan_certbot_package(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[Step]:
    """Bake mode: certbot is installed now; the certificate is made on first boot."""
    from installer.concerns.certbot import install_certbot

    return [Step("Installing certbot", tuple(install_certbot(facts)))]


#: Bake mode (ACTVT_BAKE): what an image may hold; nothing unique to one server.
BAKE_PLANNERS = (plan_dpkg_repair, plan_vector_package, plan_certbot_package, plan_self, plan_firstboot)

#: Paths (files or folders) whose content the planners read from ``Facts.files``.
WATCH = (paths.STATE_FILE, paths.DOMAIN_FILE, f"{paths.STATE_DIR}/manifest.json", DPKG_UPDATES)


def _declared(name: str) -> list:
    import sys

    return [getattr(sys.modules[planner.__module__], name, None) for planner in PLANNERS]


def watched(config=None) -> tuple:
    """Every path the planners want read into the facts (their modules' ``WATCH``: a tuple, or a
    function of the configuration for paths that depend on it, such as the domain's lineage)."""
    found = []
    for declared in _declared("WATCH"):
        if callable(declared):
            declared = declared(config) if config is not None else ()
        found.extend(declared or ())
    return tuple(dict.fromkeys(found))


def probes() -> dict:
    """Every read-only command the planners want run into the facts (their modules' ``PROBES``)."""
    found = {}
    for declared in _declared("PROBES"):
        found.update(declared or {})
    return found


def collect_notes(config, facts: Facts, ctx: Context) -> List[str]:
    """What the user should know that is not an action (each module's ``notes``), for the summary."""
    decisions = decide(config, facts)
    found: List[str] = []
    for note in _declared("notes"):
        if callable(note):
            found.extend(note(config, facts, decisions, ctx))
    return list(dict.fromkeys(found))


def build_plan(config, facts: Facts, ctx: Context) -> Plan:
    decisions = decide(config, facts)
    steps: List[Step] = []
    for planner in (BAKE_PLANNERS if config.bake else PLANNERS):
        steps.extend(step for step in planner(config, facts, decisions, ctx) if step.actions)
    return Plan(tuple(steps))
