"""`actvt doctor` sees the firewall (issue 20, item 6), and a first boot waits for its DNS record
(item 2), on real hosts.

One server per firewall, a plain standalone install on each (the images tests/integration/
test_firewall_e2e.py uses): doctor passes; then the fault a user makes (`ufw deny` on the Vector port,
the port removed from firewalld, an iptables DROP before the installer's rule) makes doctor fail with
its fix, exit 1, and the app really cannot connect; the fix run as doctor prints it makes doctor pass
again, and the app connects.

The iptables server's install is started before the harness's DNS record for the domain exists, with
ACTVT_WAIT_FOR_DNS: it announces the wait, the record is added while it waits (the server's network
alias, as Terraform makes the record after the instance), and the install goes on and succeeds.
Each doctor run's output is printed (pytest -s) for the issue's note.
"""
import threading
import time

import pytest

import harness as H
from test_doctor_e2e import ROOTS, doctor, failed
from test_wiring_e2e import ENV, STANDALONE_URL, App, install

pytestmark = pytest.mark.e2e

FAULTS = {
    "server-ufw": "ufw deny 4096/tcp",
    "server-firewalld": "firewall-cmd --remove-port=4096/tcp",
    "server-iptables": "iptables -I INPUT -p tcp --dport 4096 -j DROP",
}
FIXES = {  # what doctor must print as the fix of each fault
    "server-ufw": "sudo ufw allow 4096/tcp",
    "server-firewalld": "sudo firewall-cmd --add-port=4096/tcp && sudo firewall-cmd --permanent --add-port=4096/tcp",
    "server-iptables": "sudo iptables -D INPUT -p tcp -m tcp --dport 4096 -j DROP  (and from /etc/iptables/rules.v4)",
}


def run_as_printed(server, fix):
    """The fix's command (before its note in parentheses), as root: the servers have no sudo."""
    command = fix.split("  (")[0].replace("sudo ", "")
    server.sh(command)


def firewall_checks(report):
    return [item for item in report["checks"] if item["check"] == "firewall"]


def install_waiting_for_dns(harness, server, bound=180):
    """The documented pipe with ACTVT_WAIT_FOR_DNS, started while the domain does not resolve; the
    record (the network alias) is added once the installer says it waits. Returns (Result, stderr)."""
    env = server.installer_env(dict(ENV, ACTVT_WAIT_FOR_DNS=str(bound)))
    script = "curl -fsSL %s | python3 - --yes --json 2>/root/install.err" % H.PIPE_URL
    done = {}
    thread = threading.Thread(target=lambda: done.update(r=server.exec(["sh", "-c", script], env=env, timeout=900)))
    started = time.time()
    thread.start()
    while "waiting for DNS" not in server.exec("cat /root/install.err 2>/dev/null").out:
        assert thread.is_alive() and time.time() - started < 120, server.exec("cat /root/install.err").out
        time.sleep(0.5)
    time.sleep(6)  # at least one more look-up that fails
    harness.give_domain(server)
    thread.join(900)
    return done["r"], server.read_text("/root/install.err")


@pytest.mark.parametrize("kind", ["server-ufw", "server-firewalld", "server-iptables"])
def test_doctor_names_the_closed_port_and_its_fix(harness, new_server, kind):
    waits = kind == "server-iptables"
    server = new_server(kind, domain=None if waits else H.DOMAIN)
    server.trust_acme_ca()
    server.put_file(ROOTS, harness.pebble_issuer_pem())
    if waits:
        r, err = install_waiting_for_dns(harness, server)
        print("\n===== install with ACTVT_WAIT_FOR_DNS=180, DNS record added while it waits\n" + err)
        assert r.rc == 0, (r, err)
        lines = [line.strip() for line in err.splitlines()]
        assert ("→ waiting for DNS: %s has no public address yet; looking it up every 5 s, for at most 180 s "
                "(ACTVT_WAIT_FOR_DNS)" % H.DOMAIN) in lines, err
        [resolved] = [line for line in lines if line.startswith("→ DNS: %s resolves to " % H.DOMAIN)]
        assert resolved.endswith("; going on") and int(resolved.split(" after ")[1].split(" s")[0]) >= 5, resolved
        assert not r.json().get("error"), r
    else:
        install(server, ENV)
    app = App(harness, "doctor-" + kind)

    lines, report = doctor(server, "%s after a standalone install" % kind, 0)
    ports = firewall_checks(report)
    assert [item["level"] for item in ports] == ["pass"] * 3, lines
    assert any(item["text"].startswith("Firewall (%s): 4096/tcp is open" % kind.split("-")[1]) for item in ports), lines

    server.sh(FAULTS[kind])
    lines, report = doctor(server, "%s after `%s`" % (kind, FAULTS[kind]), 1)
    # the DROP names no interface, so it drops doctor's own connection over 127.0.0.1 too (ufw and
    # firewalld accept loopback first): the port check says a rule drops it
    assert set(failed(report)) == ({"firewall", "port"} if kind == "server-iptables" else {"firewall"}), lines
    if kind == "server-iptables":
        assert "a firewall rule drops the packets" in failed(report)["port"]["text"]
    [closed] = [item for item in firewall_checks(report) if item["level"] == "fail"]
    assert "4096/tcp" in closed["text"] and closed["fix"] == FIXES[kind], closed
    assert "  ✗ " + closed["text"] in lines and "      fix: " + closed["fix"] in lines
    blocked = app.ws(STANDALONE_URL, count=1, timeout=5)
    assert blocked.rc != 0, "doctor failed the port, but the app connects:\n%s" % blocked

    run_as_printed(server, closed["fix"])
    lines, report = doctor(server, "%s after the fix `%s`" % (kind, closed["fix"]), 0)
    assert [item["level"] for item in firewall_checks(report)] == ["pass"] * 3, lines
    app.metrics(STANDALONE_URL, count=1)
