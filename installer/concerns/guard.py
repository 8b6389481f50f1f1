"""Keeping Vector's port in service through a flood of connections.

In standalone mode Vector serves its port to the Internet. Vector 0.50's WebSocket server puts no
time limit on a TLS handshake and ends its accept loop on the first failed accept, while the process
stays up (see tests/integration/vector_standin/vector, which behaves the same way): a flood of idle
connections that uses up the process's file descriptors (systemd's default soft limit is 1024, and
Vector does not raise it) would end the server for good, with nothing to restart it. Two things here:

- ``/etc/systemd/system/vector.service.d/actvt-limits.conf`` raises ``LimitNOFILE`` to 65536, so
  that a flood has to be some sixty times larger to get there (Vector restarts when it changes);
- ``actvt-vector-health.timer`` runs ``/usr/local/lib/actvt/vector-health`` every 30 s: when the
  port completes no TLS handshake in three attempts while Vector has been active for 20 s, it
  restarts Vector, which drops the flood's connections. A legitimate client is served again within
  about a minute of the server ending (at most 75 s: tests/integration/test_flood_e2e.py).

Both modes get them: behind nginx, Vector's loopback listener is reached only through nginx, whose
own timeouts close idle connections, and the check costs nothing there.

No per-source connection limit is added to the firewall: ufw has no rule for it (its ``limit`` counts
new connections, and would refuse a team behind one NAT address reconnecting after a restart),
firewalld only through deprecated direct rules, and a flood from many addresses goes around it. The
two above hold whatever the sources, and whichever firewall (or none) the host has.
"""

from typing import List

from installer.core import paths
from installer.core.actions import Command, Directory, File, Service, Step
from installer.core.concern import Concern, Phase, Planner, Undo, Uninstaller
from installer.core.render import template

LIMIT_NOFILE = 65536
TIMER = "actvt-vector-health.timer"
INTERVAL_SECONDS = 30

LIMITS = f"""\
# Written by actvt-installer (re-running it rewrites this file).
# Each connection to Vector's port takes a file descriptor. With systemd's default soft limit
# (1024) a flood of idle connections could use them all, and Vector's WebSocket server stops
# accepting for good after a failed accept.
[Service]
LimitNOFILE={LIMIT_NOFILE}
"""

SERVICE_UNIT = """\
# Written by actvt-installer (re-running it rewrites this file).
[Unit]
Description=Actvt: restart Vector when its port stops completing TLS handshakes
After=vector.service

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 -I {script} {port} {name}
"""

TIMER_UNIT = f"""\
# Written by actvt-installer (re-running it rewrites this file).
[Unit]
Description=Actvt: check Vector's port every {INTERVAL_SECONDS} s

[Timer]
OnBootSec=60
OnUnitActiveSec={INTERVAL_SECONDS}
AccuracySec=5

[Install]
WantedBy=timers.target
"""

UNITS = (paths.VECTOR_LIMITS, paths.HEALTH_SERVICE, paths.HEALTH_TIMER)


def plan_guard(config, facts, decisions, ctx) -> List[Step]:
    service = SERVICE_UNIT.format(script=paths.HEALTH_SCRIPT, port=int(config.vector_port), name=config.domain)
    return [Step("Keeping Vector's port in service", (
        Directory(paths.VECTOR_DROPIN_DIR, 0o755, reason="settings added to Vector's unit"),
        File(paths.VECTOR_LIMITS, LIMITS.encode(), 0o644,
             reason=f"LimitNOFILE={LIMIT_NOFILE}: a flood of idle connections cannot use up Vector's file descriptors"),
        File(paths.HEALTH_SCRIPT, template("vector-health.py").encode(), 0o755,
             reason="restarts Vector when its port stops completing TLS handshakes"),
        File(paths.HEALTH_SERVICE, service.encode(), 0o644, reason=f"checks port {config.vector_port} on 127.0.0.1"),
        File(paths.HEALTH_TIMER, TIMER_UNIT.encode(), 0o644, reason=f"every {INTERVAL_SECONDS} s"),
        Command(("systemctl", "daemon-reload"), "systemd reads the changed units", when_changed=UNITS,
                on_rollback=(("systemctl", "daemon-reload"),)),
    ))]


def plan_timer(config, facts, decisions, ctx) -> List[Step]:
    return [Step("Checking Vector's port every 30 s", (
        Service(TIMER, enabled=True, running=True, restart_when_changed=(paths.HEALTH_TIMER,), wait_seconds=10,
                reason="actvt-vector-health"),
    ))]


def uninstall_stop(entries, facts, options) -> List[Step]:
    if paths.HEALTH_TIMER not in entries:
        return []
    return [Step("Stopping the health check of Vector's port", (
        Service(TIMER, enabled=False, running=False, reason="uninstall"),))]


def uninstall_reload(entries, facts, options) -> List[Step]:
    if not any(path in entries for path in UNITS):
        return []
    return [Step("systemd forgets the removed units", (
        Command(("systemctl", "daemon-reload"), "the health check and Vector's limits are gone", when_changed=UNITS),))]


CONCERN = Concern(
    name="guard",
    planners=(Planner(Phase.CONFIG, plan_guard), Planner(Phase.SERVICE, plan_timer)),
    uninstall=(Uninstaller(Undo.STOP, uninstall_stop), Uninstaller(Undo.RELOAD, uninstall_reload)),
)
