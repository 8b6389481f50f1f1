"""Ubuntu's defaults (issue 21, item 5), on a server "like Ubuntu 24.04" (Dockerfile.test,
server-ubuntu-noble): needrestart installed and hooked into apt as Ubuntu ships it, restarting services
by itself after an apt run as Ubuntu 24.04's does; ufw installed and inactive; unattended-upgrades
upgrading a package at first boot (apt-daily-upgrade's job) and holding dpkg's lock while the
installer starts; a daemon
(actvt-test-canary) that the upgrade left mapping a replaced binary, as a library upgrade leaves one,
so that needrestart counts it as a service to restart; sshd running.

The documented pipe runs under a real terminal (script(1)) that never types anything:
- it ends by itself within a bound: no needrestart, debconf or other question waited for an answer;
- it waited for unattended-upgrades and said so, and the upgrade finished;
- no service was restarted unasked: the canary's and sshd's PIDs are the same, and needrestart still
  lists the canary (the restart is left to the user);
- ufw was enabled only after SSH was allowed (the installer's own log, in order), and SSH still answers
  from another host with ufw active;
- the app reads metrics.
"""
import os
import re
import shlex
import time

import pytest

import harness as H
from test_wiring_e2e import ENV, STANDALONE_URL, App

pytestmark = pytest.mark.e2e

#: ACTVT_E2E_UBUNTU=server-ubuntu-jammy runs the same scenario on the 22.04-like image (not in CI: time)
KIND = os.environ.get("ACTVT_E2E_UBUNTU", "server-ubuntu-noble")
PRETTY = {"server-ubuntu-noble": 'PRETTY_NAME="Ubuntu 24.04', "server-ubuntu-jammy": 'PRETTY_NAME="Ubuntu 22.04'}
UPGRADING = "/run/actvt-test-upgrading"  # present while actvt-test-canary 1.1's preinst holds dpkg
BOUND = 600  # seconds the whole piped run may take on this shared machine; a blocked prompt never ends


def pid(server, unit):
    value = server.unit(unit)["MainPID"]
    assert value not in ("", "0"), server.unit(unit)
    return value


def wait_for(server, predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("%s within %d s:\n%s" % (what, timeout,
                                                  server.journal("actvt-test-first-boot-upgrades.service", 30)))


def run_pipe_on_a_terminal(server, env):
    """`curl … | sudo VARS python3 -I -` typed into a terminal (script(1)) whose keyboard is never
    touched: its input is a FIFO nobody writes to, so a question on the terminal would wait for ever
    (until the bound). Returns the Result; its output is what the terminal showed."""
    variables = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(server.installer_env(env).items()))
    pipe = "curl -fsSL %s | sudo %s python3 -I -" % (H.PIPE_URL, variables)
    script = ("rm -f /tmp/no-input && mkfifo /tmp/no-input && exec 3<>/tmp/no-input && "
              "exec timeout -k 5 %d script -qec %s /dev/null <&3" % (BOUND, shlex.quote(pipe)))
    r = server.exec(["bash", "-c", script], timeout=BOUND + 30)
    server.harness.record(server, r)
    return r


def test_the_pipe_on_a_terminal_asks_nothing_restarts_nothing_and_enables_ufw_after_ssh(harness, new_server):
    server = new_server(KIND, firewall=True)
    server.trust_acme_ca()
    assert server.sh("cat /etc/os-release").out.startswith(PRETTY[KIND])
    assert "Status: inactive" in server.sh("ufw status").out
    # the first boot's unattended-upgrades, started as apt-daily-upgrade.timer starts it (Dockerfile.test)
    server.sh("systemctl start --no-block actvt-test-first-boot-upgrades.service")
    wait_for(server, lambda: server.exists(UPGRADING), 120, "unattended-upgrades did not start upgrading")
    canary, sshd = pid(server, "actvt-test-canary.service"), pid(server, "ssh.service")

    r = run_pipe_on_a_terminal(server, ENV)
    shown = r.out
    assert r.rc == 0 and r.seconds < BOUND, r
    assert "another package manager is running: unattended-upgr" in shown and "waiting for it" in shown, shown
    assert "Which services should be restarted" not in shown and "Restarting services" not in shown, shown
    assert re.search(r"^ii\s+actvt-test-canary\s+1\.1\s", server.sh("dpkg -l actvt-test-canary").out, re.M), \
        "unattended-upgrades' upgrade did not finish"

    # no service restarted unasked: the same processes, although the upgrade (finished before the
    # installer's apt runs, which waited for it) left the canary running a replaced binary, so that
    # needrestart, had it run after them, would have restarted it: it still lists it
    assert pid(server, "actvt-test-canary.service") == canary, \
        "the installer's apt run restarted a service:\n%s\n%s" % (shown, server.journal("actvt-test-canary.service", 10))
    assert "/usr/lib/actvt-test-canary/canary (deleted)" in server.sh("cat /proc/%s/maps" % canary).out
    assert pid(server, "ssh.service") == sshd
    assert "NEEDRESTART-SVC: actvt-test-canary.service" in server.sh("needrestart -b").out

    # ufw: enabled, and only after SSH was allowed; SSH still answers from another host
    status = server.sh("ufw status").out
    assert "Status: active" in status and re.search(r"^22/tcp\s+ALLOW", status, re.M), status
    log = server.installer_log()
    allow, enable = log.find("run: ufw allow 22/tcp"), log.find("run: ufw --force enable")
    assert 0 <= allow < enable, "ufw was not enabled after SSH was allowed:\n%s" % log
    banner = harness.client_host.exec(["python3", "-c", "import socket; s = socket.create_connection(('server', 22), 10); "
                                       "print(s.recv(64).decode())"], timeout=30)
    assert banner.rc == 0 and banner.out.startswith("SSH-2.0-"), banner

    App(harness, KIND).metrics(STANDALONE_URL)
