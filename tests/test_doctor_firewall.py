"""``actvt doctor`` sees the firewall and, where it can, the outside (issue 20, item 6).

The firewall: the mode's ports judged from what ufw, firewalld and iptables print (the recorded outputs
of tests/test_firewall.py, and the faults a user makes: a ufw ``deny``, a port removed from firewalld,
an iptables DROP), read with the concern's own probes and parsers; each FAIL carries the command that
fixes it, and the output after that command passes. The outside: the domain resolving (an injected
resolver) to an address that is not this host's, the connection there made (an injected ``reach``) to
a listener on 127.0.0.1: nothing here contacts another address.
"""

import socket

import pytest

from installer.commands import doctor
from installer.concerns import firewall
from installer.core import paths, websocket
from installer.core.concern import FAIL, PASS, SKIP, WARN
from installer.core.facts import ProbeResult
from installer.core.paths import Root

from helpers import DOMAIN, ENV, make_config
from test_doctor import closed_port, installed, read, servers, web  # noqa: F401 - fixtures
from test_firewall import (IPTABLES_CLOSED, IPTABLES_OPEN, PROXY, STANDALONE, UFW_ACTIVE, UFW_ADDED, UFW_AFTER,
                           UFW_INACTIVE, facts_with)

pytestmark = pytest.mark.usefixtures("small_ca_keys")

CTX = None  # the firewall's checks read no context

# `ufw status verbose` after the installer's run, then after `ufw deny 4096/tcp` (ufw updates the rule
# of the same port and protocol in place)
UFW_VERBOSE = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     ALLOW IN    Anywhere
443/tcp                    ALLOW IN    Anywhere
4096/tcp                   ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                ALLOW IN    Anywhere (v6)
443/tcp (v6)               ALLOW IN    Anywhere (v6)
4096/tcp (v6)              ALLOW IN    Anywhere (v6)
"""
UFW_DENIED = UFW_VERBOSE.replace("4096/tcp                   ALLOW IN", "4096/tcp                   DENY IN") \
    .replace("4096/tcp (v6)              ALLOW IN", "4096/tcp (v6)              DENY IN")
IPTABLES_AFTER = IPTABLES_CLOSED + "".join(f"-A INPUT -p tcp -m tcp --dport {port} -j ACCEPT\n" for port in (4096, 443))
IPTABLES_DROPPED = IPTABLES_AFTER.replace("-P INPUT DROP\n", "-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport 4096 -j DROP\n")


def check(mode=STANDALONE, files=None, **probes):
    facts = facts_with(files=files, **probes)
    return firewall.CONCERN.checks.judge(make_config(), facts, mode, CTX)


def by_port(found):
    return {int(item.text.split(": ", 1)[1].split("/")[0]): item for item in found}


# --- ufw ---------------------------------------------------------------------------------------------


def test_ufw_after_the_install_names_each_rule():
    found = by_port(check(ufw_status=(0, UFW_VERBOSE), ufw_added=(0, "")))
    assert sorted(found) == [80, 443, 4096] and {item.level for item in found.values()} == {PASS}
    assert found[4096].text == "Firewall (ufw): 4096/tcp is open (ufw rule: 4096/tcp  ALLOW IN  Anywhere)"
    assert found[4096].check == "firewall" and found[4096].fix == ""


def test_ufw_deny_on_the_vector_port_fails_with_the_fix_and_the_fix_passes():
    found = by_port(check(ufw_status=(0, UFW_DENIED), ufw_added=(0, "")))
    assert found[4096].level == FAIL
    assert found[4096].text == "Firewall (ufw): 4096/tcp is blocked by the ufw rule '4096/tcp  DENY IN  Anywhere'"
    assert found[4096].fix == "sudo ufw allow 4096/tcp"  # ufw makes the rule an allow again where it stands
    assert found[80].level == found[443].level == PASS
    assert by_port(check(ufw_status=(0, UFW_VERBOSE), ufw_added=(0, "")))[4096].level == PASS  # after the fix
    # a deny of the port for any protocol is another rule: an allow of 4096/tcp must come first
    any_proto = UFW_VERBOSE.replace("--                         ------      ----\n",
                                    "--                         ------      ----\n"
                                    "4096                       DENY IN     Anywhere\n")
    found = by_port(check(ufw_status=(0, any_proto), ufw_added=(0, "")))
    assert found[4096].level == FAIL and found[4096].fix == "sudo ufw insert 1 allow 4096/tcp"
    fixed = any_proto.replace("--                         ------      ----\n",
                              "--                         ------      ----\n"
                              "4096/tcp                   ALLOW IN    Anywhere\n")
    assert by_port(check(ufw_status=(0, fixed), ufw_added=(0, "")))[4096].level == PASS


def test_ufw_without_a_rule_for_the_port():
    found = by_port(check(ufw_status=(0, UFW_ACTIVE), ufw_added=(0, UFW_ADDED)))  # 22, Nginx HTTP, 8000:8100
    assert found[80].level == PASS and "Nginx HTTP" in found[80].text
    assert found[443].level == FAIL and found[443].fix == "sudo ufw allow 443/tcp"
    assert "no ufw rule allows it" in found[443].text
    # ufw's default policy allowing incoming connections opens what no rule names
    allowing = UFW_VERBOSE.replace("Default: deny (incoming)", "Default: allow (incoming)").replace(
        "4096/tcp                   ALLOW IN    Anywhere\n", "")
    assert by_port(check(ufw_status=(0, allowing), ufw_added=(0, "")))[4096].level == PASS


def test_a_ufw_deny_of_some_sources_only_does_not_close_the_port():
    status = UFW_VERBOSE.replace("--                         ------      ----\n",
                                 "--                         ------      ----\n"
                                 "4096/tcp                   DENY IN     198.51.100.0/24\n"
                                 "Anywhere                   DENY IN     203.0.113.9\n")
    assert by_port(check(ufw_status=(0, status), ufw_added=(0, "")))[4096].level == PASS
    everyone = UFW_VERBOSE.replace("--                         ------      ----\n",
                                   "--                         ------      ----\n"
                                   "Anywhere                   REJECT IN   Anywhere\n")
    assert {item.level for item in check(ufw_status=(0, everyone), ufw_added=(0, ""))} == {FAIL}


def test_ufw_inactive_filters_nothing_but_says_what_enabling_it_would_block():
    found = by_port(check(ufw_status=(0, UFW_INACTIVE), ufw_added=(0, UFW_ADDED)))
    assert found[80].level == PASS and found[80].text == \
        "Firewall (ufw): 80/tcp: ufw is inactive (it filters nothing); once enabled, `ufw allow 'Nginx HTTP'` opens it"
    assert found[4096].level == PASS  # `ufw allow from 10.0.0.0/8 to any port 4096 proto tcp`
    assert found[443].level == WARN and found[443].fix == "sudo ufw allow 443/tcp"


def test_ufw_status_failing_is_not_checked():
    [*found] = check(ufw_status=(1, "ERROR: problem running iptables"), ufw_added=(1, ""))
    assert {item.level for item in found} == {SKIP}
    assert found[0].text == "Firewall (ufw): not checked: `ufw status verbose` failed (exit status 1)"
    [*iptables] = check(iptables_input=(4, "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id"))
    assert {item.level for item in iptables} == {SKIP} and "`iptables -S INPUT` failed (exit status 4)" in \
        iptables[0].text
    assert all("problem running" not in item.text for item in found)  # a tool's output is not repeated


def test_proxy_mode_checks_80_and_443_only():
    assert sorted(by_port(check(PROXY, ufw_status=(0, UFW_AFTER), ufw_added=(0, "")))) == [80, 443]


# --- firewalld ---------------------------------------------------------------------------------------


def test_firewalld_port_removed_fails_with_the_fix_and_the_fix_passes():
    running = {"firewalld_state": (0, "running\n"), "firewalld_services": (0, "dhcpv6-client https ssh\n")}
    found = by_port(check(firewalld_ports=(0, "80/tcp 443/tcp\n"), **running))
    assert found[80].level == PASS and found[80].text == \
        "Firewall (firewalld): 80/tcp is open in firewalld's default zone (port 80/tcp)"
    assert found[443].text.endswith("(port 443/tcp)")
    assert found[4096].level == FAIL and "no port or service for it" in found[4096].text
    assert found[4096].fix == "sudo firewall-cmd --add-port=4096/tcp && sudo firewall-cmd --permanent --add-port=4096/tcp"
    fixed = by_port(check(firewalld_ports=(0, "80/tcp 443/tcp 4096/tcp\n"), **running))
    assert {item.level for item in fixed.values()} == {PASS}
    services = by_port(check(firewalld_ports=(0, "4000-4100/tcp\n"), **running))
    assert services[443].text.endswith("(service https)") and services[4096].text.endswith("(port 4000-4100/tcp)")


# --- iptables ----------------------------------------------------------------------------------------


def test_iptables_drop_before_the_accept_fails_with_the_fix_and_the_fix_passes():
    found = by_port(check(iptables_input=(0, IPTABLES_DROPPED)))
    assert found[4096].level == FAIL
    assert found[4096].text == \
        "Firewall (iptables): 4096/tcp is blocked by the iptables rule '-A INPUT -p tcp -m tcp --dport 4096 -j DROP'"
    assert found[4096].fix == "sudo iptables -D INPUT -p tcp -m tcp --dport 4096 -j DROP"
    assert found[80].level == PASS and found[80].text == \
        "Firewall (iptables): 80/tcp is open (iptables: -A INPUT -p tcp -m multiport --dports 80,8080 -j ACCEPT)"
    # `iptables -D` deletes the first rule of these words: what -S prints after it
    after_fix = IPTABLES_DROPPED.replace("-A INPUT -p tcp -m tcp --dport 4096 -j DROP\n", "", 1)
    assert {item.level for item in check(iptables_input=(0, after_fix))} == {PASS}
    # the same fault with iptables-persistent: the fix says where the boot's copy is
    saved = by_port(check(files={firewall.IPTABLES_RULES: b"*filter\nCOMMIT\n"}, iptables_input=(0, IPTABLES_DROPPED)))
    assert saved[4096].fix.endswith(f"  (and from {firewall.IPTABLES_RULES})")


def test_iptables_accept_after_a_catch_all_drop_does_nothing():
    chain = "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j DROP\n" \
            "-A INPUT -p tcp -m tcp --dport 4096 -j ACCEPT\n"
    found = by_port(check(iptables_input=(0, chain)))
    assert found[4096].level == FAIL and "before the rule '-A INPUT -j DROP' drops it" in found[4096].text
    assert found[4096].fix == "sudo iptables -I INPUT -p tcp --dport 4096 -j ACCEPT"
    # the planner reads the chain the same way: it inserts the rule at the top, where it works
    steps = firewall.plan_firewall(make_config(), facts_with(iptables_input=(0, chain)), STANDALONE, CTX)
    assert ("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "4096", "-j", "ACCEPT") in \
        [action.argv for step in steps for action in step.actions if hasattr(action, "argv")]


def test_iptables_policy_and_conditional_drops():
    closed = by_port(check(iptables_input=(0, "-P INPUT DROP\n")))
    assert closed[443].level == FAIL and "the INPUT policy is DROP" in closed[443].text
    assert by_port(check(iptables_input=(0, IPTABLES_OPEN)))[4096].text == \
        "Firewall (iptables): 4096/tcp is open (iptables: -P INPUT ACCEPT)"
    some = "-P INPUT ACCEPT\n-A INPUT -s 203.0.113.9/32 -j DROP\n-A INPUT -p tcp ! --dport 22 -m state --state " \
           "INVALID -j DROP\n-A INPUT -i eth1 -p tcp -m tcp --dport 4096 -j REJECT --reject-with tcp-reset\n"
    assert {item.level for item in check(iptables_input=(0, some))} == {PASS}
    rejected = "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 4096 -j REJECT --reject-with tcp-reset\n"
    assert by_port(check(iptables_input=(0, rejected)))[4096].level == FAIL


# --- no firewall, --root -----------------------------------------------------------------------------


def test_no_firewall_tool_and_root():
    [none] = check(vector_validate=(0, "ok"))  # commands ran on this host, none of a firewall
    assert none.level == PASS and "no ufw, firewalld or iptables here" in none.text
    [root] = check()
    assert root.level == SKIP and "not checked" in root.text


def test_doctor_lists_the_firewall_checks_and_fails_on_them(monkeypatch):
    """The checks reach doctor through the concern (registry.findings), and a FAIL is exit status 1."""
    from installer.plans import registry

    facts = facts_with(iptables_input=(0, IPTABLES_DROPPED))
    found = registry.findings(make_config(), facts, STANDALONE, CTX)
    assert [item.level for item in found if item.check == "firewall"].count(FAIL) == 1


# --- the outside: the domain's address that is not this host's -----------------------------------------

PUBLIC = "203.0.113.7"  # TEST-NET-3: the injected resolver's answer; never contacted


def outside(root, web, vector, reach, addresses=(PUBLIC,)):
    environ = {**ENV, "ACTVT_VECTOR_PORT": str(vector), "SSL_CERT_FILE": str(web.bundle)}
    looked_up = []

    def lookup(domain):
        looked_up.append(domain)
        return addresses

    result = doctor.report(Root(str(root)), environ, address="127.0.0.1", lookup=lookup,
                           local=lambda address: False, reach=reach)
    assert looked_up == [DOMAIN]
    return [item for item in result["checks"] if item["check"] in ("outside", "dns")]


def to_local(port, calls):
    """``reach`` as doctor calls it, sent to 127.0.0.1:port instead of the public address."""
    def reach(address, front_port, domain, path, ctx, timeout):
        calls.append((address, front_port, timeout))
        return websocket.attempt("127.0.0.1", port, domain, path, ctx, timeout=timeout)

    return reach


def test_the_domains_public_address_reaches_this_server(tmp_path, web, servers):
    root = installed(tmp_path, web)
    vector = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY), client_ca=read(root, paths.CA_CERT))
    calls = []
    dns, found = outside(root, web, vector.port, to_local(vector.port, calls))
    assert dns["level"] == WARN and "not an address of this host's interfaces" in dns["text"]
    assert calls == [(PUBLIC, vector.port, doctor.OUTSIDE_TIMEOUT)]
    assert found == {"check": "outside", "level": PASS, "fix": "",
                     "text": f"From the domain's address {PUBLIC}:{vector.port}: reaches this server (it serves the "
                             "same certificate)"}


def test_another_machine_answering_there(tmp_path, web, servers):
    root = installed(tmp_path, web)
    vector = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY))
    other = servers(*web.server())  # a valid certificate for the domain, not this server's
    _, found = outside(root, web, vector.port, to_local(other.port, []))
    assert found["level"] == WARN and "answers with another certificate than this server's" in found["text"]


def test_refused_at_the_public_address(tmp_path, web, servers):
    root = installed(tmp_path, web)
    vector = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY))
    _, found = outside(root, web, vector.port, to_local(closed_port(), []))
    assert found["level"] == WARN and "Connection refused: the address does not forward port" in found["text"]
    assert f"open TCP {vector.port}" in found["fix"]


def test_a_timeout_at_the_public_address_names_the_providers_firewall(tmp_path, web, servers, monkeypatch):
    """A full accept queue drops SYNs as a security group does: the connection times out for real."""
    monkeypatch.setattr(doctor, "OUTSIDE_TIMEOUT", 1)
    root = installed(tmp_path, web)
    vector = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY))
    with socket.socket() as full, socket.socket() as first:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        first.connect(full.getsockname())  # fills the queue (never accepted)
        _, found = outside(root, web, vector.port, to_local(full.getsockname()[1], []))
    assert found["level"] == WARN
    assert found["text"] == (f"From the domain's address {PUBLIC}:{vector.port}: no answer within 1 s: the packets "
                             "are dropped on the way, usually by the cloud provider's firewall or security group")
    assert "security group" in found["fix"]


def test_no_outside_connection_when_the_domain_is_this_hosts(tmp_path, web, servers):
    root = installed(tmp_path, web)
    vector = servers(read(root, paths.SERVER_CERT), read(root, paths.SERVER_KEY))
    environ = {**ENV, "ACTVT_VECTOR_PORT": str(vector.port), "SSL_CERT_FILE": str(web.bundle)}
    result = doctor.report(Root(str(root)), environ, address="127.0.0.1", lookup=lambda domain: (PUBLIC,),
                           local=lambda address: True, reach=lambda *a, **k: pytest.fail("reached out"))
    assert not [item for item in result["checks"] if item["check"] == "outside"]


def test_a_file_the_installer_edits_as_it_is_has_no_mode_to_compare(tmp_path, web, monkeypatch):
    """A closed port makes the plan rewrite rules.v4 keeping its mode (``File`` mode None): the file
    check (which reads the same plan) says nothing of it, and doctor still reports (seen on the
    iptables host after a DROP: doctor stopped with a TypeError)."""
    import dataclasses

    from installer.core.actions import File, Plan, Step
    from installer.plans import registry
    from test_doctor import write

    root = installed(tmp_path, web)
    write(root, firewall.IPTABLES_RULES, b"*filter\nCOMMIT\n", 0o640)
    real = registry.build_plan

    def with_rules(*args, **kwargs):
        plan = real(*args, **kwargs)
        return Plan(plan.steps + (Step("rules", (File(firewall.IPTABLES_RULES, b"", None, shared=True),)),))

    monkeypatch.setattr(registry, "build_plan", with_rules)
    code, out = __import__("test_doctor").run_doctor(root)
    assert code == 0 and "  ✓ Files: " in out and firewall.IPTABLES_RULES not in out, out


def test_a_silent_loopback_port_is_a_dropping_rule_not_a_missing_listener():
    """An iptables DROP without ``-i`` drops 127.0.0.1 too: the port check says so instead of sending the
    user to Vector's journal."""
    from installer.core.facts import Listener

    vector = (Listener(4096, "0.0.0.0", "vector"),)
    silent = websocket.Attempt("tcp", "no answer within 10 s", timed_out=True)
    found = doctor.port_finding("port", silent, 4096, vector, "vector", service_down=False)
    assert found.level == FAIL and found.text == (
        "Port 4096: no answer on 127.0.0.1:4096 within its timeout, though vector listens there: a firewall rule "
        "drops the packets (the Firewall check names it)")
    refused = doctor.port_finding("port", websocket.Attempt("tcp", "Connection refused"), 4096, (), "vector", False)
    assert "nothing answers on 127.0.0.1:4096 (Connection refused)" in refused.text and "journalctl" in refused.fix
