"""What every planner receives besides the configuration and the facts.

Core values: planners import them directly.
"""

import dataclasses
import datetime
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Context:
    """The run: version, time, the running zipapp, and the answers to prompts."""

    version: str
    now: str  # UTC ISO 8601, for a first install's installed_at and certificate dates
    pyz: Optional[str] = None  # path of the running zipapp (on this machine), kept as the `actvt` command
    build_id: Optional[str] = None  # its shiv build id (names its extraction folder)
    answers: Mapping[str, bool] = dataclasses.field(default_factory=dict)  # prompted yes/no values

    @property
    def moment(self) -> datetime.datetime:
        """``now`` as an aware UTC datetime (the clock when ``now`` cannot be read)."""
        try:
            value = datetime.datetime.fromisoformat(self.now.replace("Z", "+00:00"))
        except (AttributeError, TypeError, ValueError):
            return datetime.datetime.now(datetime.timezone.utc)
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Decisions:
    """What the mode decision (``plans.registry.decide``) made of the configuration and the facts."""

    mode: str  # standalone or proxy
    webserver: str  # none, nginx, apache, httpd or unknown (what listens on 80/443)
    front: Optional[object] = None  # proxy mode: the core.front.Front that serves wss://DOMAIN/actvt
    webroot: str = ""  # proxy mode: where the front serves certbot's http-01 challenge from
    refusal: Optional[str] = None  # why this host cannot be installed in this mode (stops before planning)


def answer(config, ctx: Context, name: str) -> bool:
    """A yes/no variable's value for this run: the variable when set, else the prompt's answer
    (asked only on a terminal), else its default."""
    from installer.core.config import BY_NAME

    if not config.is_set(name) and name in ctx.answers:
        return bool(ctx.answers[name])
    return bool(getattr(config, BY_NAME[name].field))
