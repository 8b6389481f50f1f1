"""The concerns in order, and the plans built from them.

``CONCERNS`` lists every concern once; each declares what it reads, probes, plans (with its
``Phase``), notes, needs from the network, undoes and what ``actvt doctor`` checks of it
(``core.concern``). This module turns them into the run's reads and probes, the mode decision, the
install plan (or the bake plan), the notes, the endpoints to check, the uninstall plan and doctor's
findings. It sits above the concerns: they never import it.

The same ``build_plan`` serves ``--dry-run`` and a real run, so what the dry run shows is what the run
does. Planners are pure; so is everything here.
"""

from typing import List, Optional, Tuple

from installer.concerns import (apache, certbot, firewall, guard, lifecycle, migration, mtls, nginx, packages,
                                selfcopy, selinux, state, vector)
from installer.core.actions import Plan, Step
from installer.core.concern import BAKE, INSTALL, Concern, Endpoint, Finding, UninstallOptions
from installer.core.config import BY_NAME, port_taken_by_nginx, warnings
from installer.core.context import Context, Decisions
from installer.core.errors import ActvtError
from installer.core.facts import Facts

CONCERNS: Tuple[Concern, ...] = (
    packages.CONCERN, vector.CONCERN, guard.CONCERN, nginx.CONCERN, apache.CONCERN, selinux.CONCERN, certbot.CONCERN,
    mtls.CONCERN, firewall.CONCERN, migration.CONCERN, lifecycle.CONCERN, selfcopy.CONCERN, state.CONCERN,
)

#: The proxy fronts this installer can set up; proxy mode uses the one that runs (or installs the first).
FRONTS = (nginx.FRONT,) + apache.FRONTS  # apache2 (Debian's layout), httpd (the RHEL family's)
PROXY_CAPABLE = ("nginx", "apache", "httpd")  # a web server on 80/443 makes ``auto`` choose proxy mode


class ModeError(ActvtError):
    """The chosen mode cannot be set up on this host; nothing was changed."""


# --- what the run reads -----------------------------------------------------------------------------


def reads(config) -> Tuple[str, ...]:
    """Every path the concerns want read into ``Facts.files`` (``config`` None: uninstall)."""
    return tuple(dict.fromkeys(path for concern in CONCERNS for path in concern.reads(config)))


def probes() -> tuple:
    return tuple(probe for concern in CONCERNS for probe in concern.probes)


def check_reads(config) -> Tuple[str, ...]:
    """The paths ``actvt doctor`` reads besides ``reads``."""
    return tuple(dict.fromkeys(path for concern in CONCERNS if concern.checks for path in concern.checks.reads(config)))


def check_probes() -> tuple:
    """The read-only commands only ``actvt doctor`` runs (``vector validate``, the renewal timer)."""
    return tuple(probe for concern in CONCERNS if concern.checks for probe in concern.checks.probes)


def findings(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[Finding]:
    """What each concern's checks find, in the concerns' order."""
    return [item for concern in CONCERNS if concern.checks
            for item in concern.checks.judge(config, facts, decisions, ctx)]


def uninstall_reads(entries) -> Tuple[str, ...]:
    return reads(None) + tuple(path for concern in CONCERNS for path in concern.uninstall_reads(entries))


def uninstall_probes() -> tuple:
    """The read-only commands uninstall runs (each concern's ``uninstall_probes``)."""
    return tuple(dict.fromkeys(probe for concern in CONCERNS for probe in concern.uninstall_probes))


# --- the mode decision --------------------------------------------------------------------------------


def decide(config, facts: Facts) -> Decisions:
    """Mode: forced standalone > explicit mode > proxy when nginx/apache/httpd listens > standalone.
    In proxy mode, the front that serves the domain and the webroot of certbot's challenge; when the
    web server on 80/443 is none this installer can set up, ``refusal`` says what to do instead
    (``build_plan`` stops with it, before any planner runs)."""
    webserver = facts.web_server()
    if config.force_standalone:
        mode = "standalone"
    elif config.install_mode != "auto":
        mode = config.install_mode
    elif webserver in PROXY_CAPABLE:
        mode = "proxy"
    else:
        mode = "standalone"
    if mode != "proxy":
        return Decisions(mode=mode, webserver=webserver, webroot=config.nginx_webroot)
    front = next((item for item in FRONTS if item.name == webserver), None)
    if front is None and webserver == "none":  # nothing listens: the front installed (stopped), else nginx
        front = next((item for item in FRONTS if item.installed(facts)), FRONTS[0])
    if front is None:
        return Decisions(mode=mode, webserver=webserver, webroot=config.nginx_webroot,
                         refusal=other_web_server(config, webserver))
    return Decisions(mode=mode, webserver=webserver, front=front, webroot=front.challenge_webroot(config, facts))


def front_named(name: str):
    """The front an install recorded (install.state's ``webserver``); nginx when none is recorded."""
    return next((item for item in FRONTS if item.name == name), FRONTS[0])


def other_web_server(config, webserver: str) -> str:
    server = {"apache": "apache2", "httpd": "httpd"}.get(webserver, "another web server")
    fronts = " or ".join(front.name for front in FRONTS)
    return (
        f"proxy mode needs {fronts}, but {server} serves ports 80/443 on this host; the installer does not "
        f"configure {server}, and certbot's standalone mode cannot use port 80 while it runs. Either:\n"
        f"  1. obtain the certificate with {server}'s help, e.g. `certbot certonly --webroot -w <its document root> "
        f"--cert-name {config.domain} -d {config.domain}` (or `certbot certonly --apache -d {config.domain}`), then "
        f"re-run with ACTVT_FORCE_STANDALONE=yes: the certificate is reused and Vector serves "
        f"wss://{config.domain}:{config.vector_port} itself (open that port); or\n"
        f"  2. forward wss://{config.domain}/actvt from {server} to https://127.0.0.1:{config.vector_port} yourself "
        f"(WebSocket upgrade, TLS upstream), after a standalone install; or\n"
        f"  3. serve the domain with {fronts} instead of {server}.\n"
        "Nothing was changed."
    )


def port_conflicts(config, facts: Facts, decisions: Decisions) -> List[str]:
    """Why Vector cannot have its port on this host (one line each, naming ACTVT_VECTOR_PORT): the
    front's 443 in proxy mode (auto may choose proxy only now, from the facts), or another program
    listening."""
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


# --- plans ----------------------------------------------------------------------------------------------


def _planners(config):
    mode = BAKE if config.bake else INSTALL
    found = [(planner.phase, index, concern, planner) for index, concern in enumerate(CONCERNS)
             for planner in concern.planners_for(mode)]
    return [(concern, planner) for _, _, concern, planner in sorted(found, key=lambda item: item[:2])]


class Built:
    """A plan, and which concern planned each of its steps (for the endpoints each concern needs)."""

    def __init__(self, plan: Plan, owners: Tuple[Concern, ...]):
        self.plan, self.owners = plan, owners


def build(config, facts: Facts, ctx: Context, decisions: Optional[Decisions] = None) -> Built:
    decisions = decisions or decide(config, facts)
    if decisions.refusal and not config.bake:
        raise ModeError(decisions.refusal)
    steps: List[Step] = []
    owners: List[Concern] = []
    for concern, planner in _planners(config):
        for step in planner.plan(config, facts, decisions, ctx):
            if step.actions:
                steps.append(step)
                owners.append(concern)
    return Built(Plan(tuple(steps)), tuple(owners))


def build_plan(config, facts: Facts, ctx: Context, decisions: Optional[Decisions] = None) -> Plan:
    return build(config, facts, ctx, decisions).plan


def notes(config, facts: Facts, decisions: Decisions, ctx: Context) -> List[str]:
    """What the user should know that is not an action: settings that are allowed together but
    probably not meant, then each concern's notes (each computed once)."""
    found: List[str] = list(warnings(config))
    for concern in CONCERNS:
        found.extend(concern.notes(config, facts, decisions, ctx))
    return list(dict.fromkeys(found))


def endpoints(config, built: Built) -> List[Endpoint]:
    """The URLs the plan will use, as the concerns that planned them declare."""
    found: List[Endpoint] = []
    for concern in dict.fromkeys(built.owners):
        actions = [action for step, owner in zip(built.plan.steps, built.owners) if owner is concern
                   for action in step.actions]
        found.extend(concern.endpoints(config, actions))
    return list(dict.fromkeys(found))


def build_uninstall_plan(entries, facts: Facts, options: UninstallOptions) -> Plan:
    found = sorted(((uninstaller.order, index, uninstaller) for index, concern in enumerate(CONCERNS)
                    for uninstaller in concern.uninstall), key=lambda item: item[:2])
    steps: List[Step] = []
    for _, _, uninstaller in found:
        steps.extend(uninstaller.plan(entries, facts, options))
    return Plan(tuple(step for step in steps if step.actions))
