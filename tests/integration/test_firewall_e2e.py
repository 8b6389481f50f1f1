"""The three firewalls on real hosts (issue 13, item 4), `actvt doctor` seeing them (issue 20, item 6),
and a first boot waiting for its DNS record (issue 20, item 2): ufw (inactive, as after `apt-get install
ufw`), firewalld (running, default zone "public"), and iptables with a default-deny INPUT chain saved by
iptables-persistent.

One server per firewall, shared by both issues' checks (one install instead of two: CI's time budget):
1. a standalone install opens exactly the mode's ports (before certbot needs port 80); doctor passes;
2. with the app's port rule taken away the Actvt app is kept out, a re-run puts exactly that rule back
   and the app then connects; a further re-run changes nothing;
3. the fault a user makes (`ufw deny` on the Vector port, the port removed from firewalld, an iptables
   DROP before the installer's rule) makes doctor fail with its fix, exit 1, and the app really cannot
   connect; the fix run as doctor prints it makes doctor pass again, and the app connects;
4. uninstall removes exactly what was added, at run time and in what the firewall keeps across a reboot.

The iptables server's install is started before the harness's DNS record for the domain exists, with
ACTVT_WAIT_FOR_DNS: it announces the wait, the record is added while it waits (the server's network
alias, as Terraform makes the record after the instance), and the install goes on and succeeds.
Each doctor run's output is printed (pytest -s) for the issue's note.
"""
import re
import threading
import time

import pytest

import harness as H
from test_doctor_e2e import ROOTS, doctor, failed
from test_wiring_e2e import ENV, STANDALONE_URL, App, assert_no_changes, install, main_pid

pytestmark = pytest.mark.e2e

PORTS = {"80", "443", "4096"}


def ufw_state(server):
    return {"status": server.sh("ufw status").out, "added": server.sh("ufw show added").out}


def firewalld_state(server):
    return {"runtime": server.sh("firewall-cmd --list-ports").out.split(),
            "permanent": server.sh("firewall-cmd --permanent --list-ports").out.split(),
            "services": server.sh("firewall-cmd --list-services").out.split()}


def iptables_state(server):
    saved = server.read_text("/etc/iptables/rules.v4")  # iptables-save: chain policies carry packet counters
    return {"rules": server.sh("iptables -S INPUT").out.splitlines(),
            "saved": [line.split(" [")[0] for line in saved.splitlines() if line.startswith(("-A", ":", "*"))]}


STATE = {"server-ufw": ufw_state, "server-firewalld": firewalld_state, "server-iptables": iptables_state}
#: The installer's rule for the app's port (4096) taken away, as a user would: the firewall's own command
CLOSE_APP_PORT = {"server-ufw": "ufw delete allow 4096/tcp",
                  "server-firewalld": "firewall-cmd --remove-port=4096/tcp",
                  "server-iptables": "iptables -D INPUT -p tcp -m tcp --dport 4096 -j ACCEPT"}
#: The port closed by a rule of the user's (doctor's case): the rule stays, something else keeps the app out
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


def assert_opened(kind, before, after):
    if kind == "server-ufw":
        assert "Status: active" in after["status"], after
        assert set(re.findall(r"^(\d+)/tcp\s+ALLOW", after["status"], re.M)) == PORTS | {"22"}, after
    elif kind == "server-firewalld":
        assert set(after["runtime"]) - set(before["runtime"]) == {p + "/tcp" for p in PORTS}, (before, after)
        assert set(after["permanent"]) - set(before["permanent"]) == {p + "/tcp" for p in PORTS}, (before, after)
        assert after["services"] == before["services"]
    else:
        added = [rule for rule in after["rules"] if rule not in before["rules"]]
        assert sorted(added) == sorted("-A INPUT -p tcp -m tcp --dport %s -j ACCEPT" % p for p in PORTS), after
        assert all(rule in after["rules"] for rule in before["rules"])  # nothing of the user's removed
        assert [line for line in after["saved"] if line not in before["saved"]] == \
            [rule for rule in after["rules"] if rule not in before["rules"]], after  # saved for the next boot


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


def first_install(harness, server, kind, state, before):
    """The install that opens the ports: iptables' waits for its DNS record (see the docstring)."""
    if kind == "server-ufw":  # ACTVT_CONFIGURE_FIREWALL=no leaves it alone (only an inactive ufw lets
        # certbot's challenge in without the installer's rules)
        r, summary = install(server, dict(ENV, ACTVT_CONFIGURE_FIREWALL="no"))
        assert state(server) == before and "firewall left alone" in r.err, r
        assert not server.exists("/var/lib/actvt/firewall.added")
    if kind != "server-iptables":
        install(server, ENV)
        return
    r, err = install_waiting_for_dns(harness, server)
    print("\n===== install with ACTVT_WAIT_FOR_DNS=180, DNS record added while it waits\n" + err)
    assert r.rc == 0, (r, err)
    lines = [line.strip() for line in err.splitlines()]
    assert ("→ waiting for DNS: %s has no public address yet; looking it up every 5 s, for at most 180 s "
            "(ACTVT_WAIT_FOR_DNS)" % H.DOMAIN) in lines, err
    [resolved] = [line for line in lines if line.startswith("→ DNS: %s resolves to " % H.DOMAIN)]
    assert resolved.endswith("; going on") and int(resolved.split(" after ")[1].split(" s")[0]) >= 5, resolved
    assert not r.json().get("error"), r


def assert_doctor_names_the_closed_port_and_its_fix(server, app, kind):
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


@pytest.mark.parametrize("kind", ["server-ufw", "server-firewalld", "server-iptables"])
def test_ports_opened_exactly_doctor_names_a_closed_port_and_uninstall_closes_them(harness, new_server, kind):
    server = new_server(kind, domain=None if kind == "server-iptables" else H.DOMAIN)
    server.trust_acme_ca()
    server.put_file(ROOTS, harness.pebble_issuer_pem())
    state = STATE[kind]
    before = state(server)

    # 1. exactly the mode's ports, and doctor sees them open
    first_install(harness, server, kind, state, before)
    after = state(server)
    assert_opened(kind, before, after)
    assert server.stat("/var/lib/actvt/firewall.added").mode == 0o600
    lines, report = doctor(server, "%s after a standalone install" % kind, 0)
    ports = firewall_checks(report)
    assert [item["level"] for item in ports] == ["pass"] * 3, lines
    assert any(item["text"].startswith("Firewall (%s): 4096/tcp is open" % kind.split("-")[1]) for item in ports), lines

    # 2. the opened port really lets the app in: without the rule the firewall keeps the app out (Vector
    # listens all along), a re-run puts back exactly the installer's rule, and the app connects
    app = App(harness, kind)
    server.sh(CLOSE_APP_PORT[kind])
    assert state(server) != after
    r = app.ws(STANDALONE_URL, count=1, timeout=5)
    assert r.rc != 0 and not r.out.strip(), "the app connected with the port's rule removed:\n%s" % r
    assert server.is_active("vector")
    r, summary = install(server, ENV)
    assert summary["changed"] > 0 and state(server) == after, (r, state(server))
    app.metrics(STANDALONE_URL)
    r, summary = install(server, ENV)
    assert_no_changes(server, summary, main_pid(server))
    assert state(server) == after

    # 3. a rule of the user's closes the port: doctor names it and the command that fixes it
    assert_doctor_names_the_closed_port_and_its_fix(server, app, kind)

    # 4. uninstall takes away exactly the installer's rules (the user's fix of 3 re-opened the same port)
    r = server.exec(["actvt", "uninstall", "--yes"])
    assert r.rc == 0, r
    assert state(server) == before, "uninstall left firewall rules behind or removed the user's"
    assert not server.exists("/var/lib/actvt/firewall.added")
