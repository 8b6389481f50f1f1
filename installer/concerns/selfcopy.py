"""The installer's own copy on the server: ``/usr/local/lib/actvt/actvt.pyz`` and the ``actvt`` command
(the same launcher, pointed at the kept zipapp), so that ``actvt client``, ``actvt status`` and
generate-client.sh run without a download. Planned only when the run comes from a zipapp."""

from typing import List, Optional

from installer.core import paths
from installer.core.actions import Copy, Directory, File, Step
from installer.core.concern import BAKE, INSTALL, Concern, Phase, Planner


def command_text(build_id: Optional[str]) -> bytes:
    """``/usr/local/bin/actvt``: the launcher, pointed at the kept zipapp."""
    from installer.launcher.render import render_command

    return render_command(paths.PERSISTED_PYZ, build_id or "")


def plan_self(config, facts, decisions, ctx) -> List[Step]:
    if ctx.pyz is None:
        return []
    return [Step("Keeping the installer on this server", (
        Directory(paths.LIB_DIR, 0o755, reason="the installer kept for `actvt` and generate-client.sh"),
        Copy(paths.PERSISTED_PYZ, ctx.pyz, 0o755, reason=f"actvt-installer {ctx.version}", host_source=True),
        File(paths.COMMAND, command_text(ctx.build_id), 0o755, reason="the `actvt` command"),
    ))]


CONCERN = Concern(name="selfcopy", planners=(Planner(Phase.SELF, plan_self, (INSTALL, BAKE)),))
