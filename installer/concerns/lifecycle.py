"""Image baking and first-boot completion.

``ACTVT_BAKE=yes`` is for ``docker build``, Packer and the like, where systemd is not running and the
server's domain, DNS and ports do not exist yet. The bake plan installs the packages, keeps the
installer on the image and writes and enables (not starts) ``actvt-firstboot.service``, which runs
``actvt install --yes`` on boot with the variables of ``/etc/actvt/install.env`` (written by
cloud-init or the operator, 0600). Nothing unique to one server is baked: no CA, no keys, no
certificates, no state. The unit runs once: a success leaves ``/var/lib/actvt/firstboot.done``; a
failure leaves no marker, shows in the journal and the log, and the next boot tries again.
"""

from typing import List

from installer.core import paths
from installer.core.actions import Directory, File, Step, Symlink
from installer.core.concern import BAKE, Concern, Phase, Planner

ENV_DIR = "/etc/actvt"
ENV_FILE = "/etc/actvt/install.env"
FIRSTBOOT_UNIT = "/etc/systemd/system/actvt-firstboot.service"
FIRSTBOOT_LINK = "/etc/systemd/system/multi-user.target.wants/actvt-firstboot.service"
FIRSTBOOT_DONE = "/var/lib/actvt/firstboot.done"

UNIT = f"""\
# Written by actvt-installer (bake mode): finishes the Actvt installation on first boot.
[Unit]
Description=Finish the Actvt installation (first boot)
Documentation=https://actvt.io
Wants=network-online.target
After=network-online.target
ConditionPathExists={ENV_FILE}
ConditionPathExists=!{FIRSTBOOT_DONE}

[Service]
Type=oneshot
EnvironmentFile={ENV_FILE}
Environment=ACTVT_NON_INTERACTIVE=yes
ExecStart={paths.COMMAND} install --yes
ExecStartPost=/bin/sh -c 'date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ > {FIRSTBOOT_DONE}'
RemainAfterExit=yes
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
"""


def plan_firstboot(config, facts, decisions, ctx) -> List[Step]:
    return [Step("Preparing first-boot completion", (
        Directory(ENV_DIR, 0o700, reason="the variables first boot installs with (install.env, 0600)"),
        File(FIRSTBOOT_UNIT, UNIT.encode(), 0o644, reason="runs `actvt install` once on first boot"),
        Symlink(FIRSTBOOT_LINK, FIRSTBOOT_UNIT, reason="enabled (not started) for multi-user.target"),
    ))]


CONCERN = Concern(name="lifecycle", planners=(Planner(Phase.FIRSTBOOT, plan_firstboot, (BAKE,)),))
