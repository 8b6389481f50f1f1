"""The shape every concern has: one explicit value instead of module attributes found by name.

A concern (Vector, certbot, the nginx front, mTLS, the firewall, ...) is a ``Concern``: the paths it
reads into the facts, the read-only commands it probes, its notes, its planners (each with the
``Phase`` it runs in), what it needs from the network, its uninstall steps and what ``actvt doctor``
checks of it (``Checks``). ``plans.registry`` lists the concerns in order and builds plans from them;
nothing is looked up by spelling.

A planner is ``(config, facts, decisions, ctx) -> [Step]``: pure, it reads only its arguments.
"""

import dataclasses
import enum
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

from installer.core.facts import Probe
from installer.core.packaging import DEFAULT_TIMEOUT


class Phase(enum.IntEnum):
    """When a planner's steps run in an install. certbot runs before anything that points at its
    files is written or enabled, so a failed certificate leaves no half-configured service."""

    REPAIR = 0  # an interrupted dpkg
    PACKAGES = 10  # Vector's repository and package
    FIREWALL = 15  # before certbot: a running firewall would refuse the ACME challenge on port 80
    CHALLENGE = 20  # the front answers the ACME challenge on port 80
    CERTIFICATE = 30  # certbot, the copies for Vector, the renewal hook
    MTLS = 40  # CA, clients, index, CRL
    CONFIG = 50  # vector.toml
    FRONT = 60  # the front's site for wss://DOMAIN/actvt
    MIGRATION = 80  # what the bash installer left
    SERVICE = 90  # Vector started or restarted
    SELF = 100  # the installer kept as `actvt`
    FIRSTBOOT = 105  # bake mode: the first-boot unit
    STATE = 110  # install.state and the domain


class Undo(enum.IntEnum):
    """When a concern's uninstall steps run."""

    STOP = 0
    FILES = 10
    PURGE = 20
    RELOAD = 30
    FIREWALL = 40
    CERTIFICATE = 50
    PACKAGES = 60
    STATE = 70


INSTALL, BAKE = "install", "bake"


@dataclasses.dataclass(frozen=True)
class Planner:
    phase: Phase
    plan: Callable  # (config, facts, decisions, ctx) -> [Step]
    modes: Tuple[str, ...] = (INSTALL,)  # INSTALL, BAKE (ACTVT_BAKE=yes), or both


class Endpoint(NamedTuple):
    """A URL a plan will use, checked before anything changes."""

    what: str
    url: str
    variable: str  # the ACTVT_* variable that names it


@dataclasses.dataclass(frozen=True)
class UninstallOptions:
    purge: bool = False
    remove_vector: bool = False
    domain: Optional[str] = None
    package_lock_timeout: int = DEFAULT_TIMEOUT  # ACTVT_PACKAGE_LOCK_TIMEOUT


@dataclasses.dataclass(frozen=True)
class Uninstaller:
    order: Undo
    plan: Callable  # (entries, facts, options) -> [Step]


def _nothing(*args) -> list:
    return []


#: How a check of ``actvt doctor`` stands: a FAIL makes its exit status 1; a WARN (e.g. a certificate
#: that expires within 30 days) does not; SKIP: it could not be checked here (said why).
PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


class Finding(NamedTuple):
    """One result of ``actvt doctor``."""

    check: str  # a stable name for scripts (``vector.validate``, ``files``, ...)
    level: str  # PASS, WARN, FAIL or SKIP
    text: str  # what was found, one line, as the user reads it (never a secret)
    fix: str = ""  # with WARN and FAIL: the command that fixes it


@dataclasses.dataclass(frozen=True)
class Checks:
    """What ``actvt doctor`` checks of a concern: a pure judgement of the facts, gathered with the
    concern's own reads and probes plus these (read-only commands only doctor runs, such as ``vector
    validate``; files only doctor looks at)."""

    judge: Callable  # (config, facts, decisions, ctx) -> [Finding]
    reads: Callable = lambda config: ()
    probes: Tuple[Probe, ...] = ()


@dataclasses.dataclass(frozen=True)
class Concern:
    name: str
    reads: Callable = lambda config: ()  # config (None for uninstall) -> server paths read into Facts.files
    probes: Tuple[Probe, ...] = ()
    planners: Tuple[Planner, ...] = ()
    notes: Callable = _nothing  # (config, facts, decisions, ctx) -> [str], computed once per run
    endpoints: Callable = _nothing  # (config, actions: the concern's planned actions) -> [Endpoint]
    uninstall: Tuple[Uninstaller, ...] = ()
    uninstall_reads: Callable = lambda entries: ()  # manifest entries -> paths uninstall reads
    uninstall_probes: Tuple[Probe, ...] = ()  # facts uninstall runs (rpm's keys by fingerprint)
    checks: Optional[Checks] = None  # what `actvt doctor` checks of it

    def planners_for(self, mode: str) -> Sequence[Planner]:
        return [planner for planner in self.planners if mode in planner.modes]

