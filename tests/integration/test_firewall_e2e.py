"""The three firewalls on real hosts (issue 13, item 4): ufw (inactive, as after `apt-get install ufw`),
firewalld (running, default zone "public"), and iptables with a default-deny INPUT chain saved by
iptables-persistent. On each: a standalone install opens exactly the mode's ports (before certbot
needs port 80); with the app's port rule taken away the Actvt app is kept out, a re-run puts exactly
that rule back and the app then connects; a further re-run changes nothing, and uninstall removes
exactly what was added, at run time and in what the firewall keeps across a reboot.
"""
import re

import pytest

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


@pytest.mark.parametrize("kind", ["server-ufw", "server-firewalld", "server-iptables"])
def test_the_modes_ports_are_opened_exactly_and_uninstall_closes_them(harness, new_server, kind):
    server = new_server(kind)
    server.trust_acme_ca()
    state = STATE[kind]
    before = state(server)
    if kind == "server-ufw":  # ACTVT_CONFIGURE_FIREWALL=no leaves it alone (only an inactive ufw lets
        # certbot's challenge in without the installer's rules)
        r, summary = install(server, dict(ENV, ACTVT_CONFIGURE_FIREWALL="no"))
        assert state(server) == before and "firewall left alone" in r.err, r
        assert not server.exists("/var/lib/actvt/firewall.added")

    r, summary = install(server, ENV)
    after = state(server)
    assert_opened(kind, before, after)
    assert server.stat("/var/lib/actvt/firewall.added").mode == 0o600
    # the opened port really lets the app in: without the rule the firewall keeps the app out (Vector
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

    r = server.exec(["actvt", "uninstall", "--yes"])
    assert r.rc == 0, r
    assert state(server) == before, "uninstall left firewall rules behind or removed the user's"
    assert not server.exists("/var/lib/actvt/firewall.added")
