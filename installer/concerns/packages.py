"""The host's package manager as a whole: a package installation an earlier run was stopped in.

A run stopped while apt ran (SIGTERM, SIGKILL, a reboot) leaves dpkg's journal, and every apt install
after it fails ("dpkg was interrupted"): the next run finishes it first, as apt's message asks. The
journal is also there while another dpkg runs (unattended-upgrades on a first boot): the repair then
waits for dpkg's lock like every package command (``core/packaging.py``), and finds nothing left to do.
"""

from typing import List

from installer.core import packaging
from installer.core.actions import Command, Step
from installer.core.concern import BAKE, INSTALL, Concern, Phase, Planner

DPKG_UPDATES = "/var/lib/dpkg/updates"  # dpkg's journal: files here mean an install was interrupted


def plan_dpkg_repair(config, facts, decisions, ctx) -> List[Step]:
    pending = [path for path in facts.files if path.startswith(DPKG_UPDATES + "/")]
    if not pending or facts.package_manager != "apt":
        return []
    return [Step("Finishing an interrupted package installation", (
        Command(("dpkg", "--configure", "-a"), timeout=1800, locks=packaging.DPKG,
                reason=f"dpkg was interrupted ({len(pending)} pending entr{'y' if len(pending) == 1 else 'ies'} "
                       f"in {DPKG_UPDATES})"),))]


CONCERN = Concern(name="packages", reads=lambda config: (DPKG_UPDATES,),
                  planners=(Planner(Phase.REPAIR, plan_dpkg_repair, (INSTALL, BAKE)),))
