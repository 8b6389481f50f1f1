"""Firewall planner: recorded ufw / firewalld / iptables output -> parsed state; config + fake facts ->
expected commands; the record of added rules and its removal; the empty plan after a run."""

import dataclasses

import pytest

from installer.concerns import firewall
from installer.core.actions import Command, File
from installer.core.facts import Listener, ProbeResult
from installer.plans.registry import Context, Decisions

from helpers import make_config, make_facts

CTX = Context(version="1.0.0", now="2026-11-26T00:00:00Z")
STANDALONE = Decisions(mode="standalone", webserver="none")
PROXY = Decisions(mode="proxy", webserver="nginx")

UFW_ACTIVE = """Status: active

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW       Anywhere
Nginx HTTP                 ALLOW       Anywhere
8000:8100/tcp              ALLOW       Anywhere
53/udp                     ALLOW       Anywhere
9999                       DENY        Anywhere
22/tcp (v6)                ALLOW       Anywhere (v6)
Nginx HTTP (v6)            ALLOW       Anywhere (v6)
"""
UFW_INACTIVE = "Status: inactive\n"
UFW_ADDED = """Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp
ufw allow 'Nginx HTTP'
ufw limit 2222/tcp
ufw allow from 10.0.0.0/8 to any port 4096 proto tcp
ufw allow 80,443/udp
ufw deny 9999
ufw route allow in on eth1 out on eth2 to any port 5000
"""
UFW_ADDED_NONE = "Added user rules (see 'ufw status' for running firewall):\n(None)\n"
IPTABLES_OPEN = "-P INPUT ACCEPT\n"
IPTABLES_CLOSED = """-P INPUT DROP
-A INPUT -i lo -j ACCEPT
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -i lo -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 80,8080 -j ACCEPT
"""


def facts_with(files=None, listeners=(), **probes):
    return dataclasses.replace(make_facts(files=files),
                               probes={name: ProbeResult(*value) for name, value in probes.items()},
                               listeners=tuple(listeners))


def plan(facts, decisions=STANDALONE, **values):
    steps = firewall.plan_firewall(make_config(**values), facts, decisions, CTX)
    return [action for step in steps for action in step.actions]


def argvs(actions):
    return [action.argv for action in actions if isinstance(action, Command)]


def record(actions):
    files = [action for action in actions if isinstance(action, File)]
    assert [f.path for f in files] == ["/var/lib/actvt/firewall.added"] and files[0].mode == 0o600
    return firewall.record_lines(files[0].content.decode())


# --- parsers --------------------------------------------------------------------------------------


def test_parse_ufw_status():
    assert firewall.parse_ufw_status(UFW_ACTIVE) == (True, {22, 80} | set(range(8000, 8101)))
    assert firewall.parse_ufw_status(UFW_INACTIVE) == (False, set())
    assert firewall.parse_ufw_status("ERROR: You need to be root to run this script") == (None, set())


def test_parse_ufw_added():
    assert firewall.parse_ufw_added(UFW_ADDED) == {22, 80, 2222, 4096}  # udp, deny and route rules do not count
    assert firewall.parse_ufw_added(UFW_ADDED_NONE) == set()


def test_parse_firewalld():
    assert firewall.parse_firewalld("4096/tcp 53/udp 8000-8002/tcp", "ssh http dhcpv6-client") == \
        {4096, 8000, 8001, 8002, 22, 80}


def test_parse_iptables():
    assert firewall.parse_iptables(IPTABLES_OPEN) == (True, set())
    assert firewall.parse_iptables(IPTABLES_CLOSED) == (False, {22, 80, 8080})  # lo-only 443 is not open
    assert firewall.parse_iptables("-P INPUT ACCEPT\n-A INPUT -j DROP\n")[0] is False


# --- ufw ------------------------------------------------------------------------------------------


def test_ufw_active_opens_only_what_is_missing():
    facts = facts_with(ufw_status=(0, UFW_ACTIVE), ufw_added=(0, UFW_ADDED_NONE))
    actions = plan(facts)
    assert argvs(actions) == [("ufw", "allow", "443/tcp"), ("ufw", "allow", "4096/tcp")]
    assert record(actions) == ["ufw allow 443/tcp", "ufw allow 4096/tcp"]


def test_ufw_proxy_mode_does_not_open_the_vector_port():
    facts = facts_with(ufw_status=(0, UFW_ACTIVE), ufw_added=(0, UFW_ADDED_NONE))
    assert argvs(plan(facts, PROXY)) == [("ufw", "allow", "443/tcp")]


def test_ufw_inactive_allows_ssh_first_then_enables():
    facts = facts_with(ufw_status=(0, UFW_INACTIVE), ufw_added=(0, UFW_ADDED_NONE),
                       listeners=[Listener(2222, "0.0.0.0", "sshd"), Listener(80, "0.0.0.0", "nginx")])
    actions = plan(facts, vector_port="9000")
    assert argvs(actions) == [("ufw", "allow", "22/tcp"), ("ufw", "allow", "2222/tcp"), ("ufw", "allow", "80/tcp"),
                              ("ufw", "allow", "443/tcp"), ("ufw", "allow", "9000/tcp"), ("ufw", "--force", "enable")]
    assert record(actions)[-1] == "ufw enable"


def test_ufw_inactive_with_rules_already_added():
    facts = facts_with(ufw_status=(0, UFW_INACTIVE), ufw_added=(0, UFW_ADDED))
    # 22, 80 (Nginx HTTP) and 4096 (source-restricted: the user's choice) already have rules
    assert argvs(plan(facts)) == [("ufw", "allow", "443/tcp"), ("ufw", "--force", "enable")]


def test_ufw_status_unknown_still_allows_but_never_enables():
    facts = facts_with(ufw_status=(1, "ERROR: You need to be root to run this script"),
                       ufw_added=(1, "ERROR: You need to be root to run this script"))
    assert argvs(plan(facts, PROXY)) == [("ufw", "allow", "80/tcp"), ("ufw", "allow", "443/tcp")]


# --- firewalld ------------------------------------------------------------------------------------


def test_firewalld_adds_missing_ports_runtime_and_permanent():
    facts = facts_with(firewalld_state=(0, "running\n"), firewalld_ports=(0, "\n"),
                       firewalld_services=(0, "ssh http dhcpv6-client\n"), iptables_input=(0, IPTABLES_CLOSED))
    actions = plan(facts)
    assert argvs(actions) == [("firewall-cmd", "--add-port=443/tcp"), ("firewall-cmd", "--permanent", "--add-port=443/tcp"),
                              ("firewall-cmd", "--add-port=4096/tcp"),
                              ("firewall-cmd", "--permanent", "--add-port=4096/tcp")]
    assert record(actions) == ["firewalld 443/tcp", "firewalld 4096/tcp"]


def test_firewalld_not_running_falls_back_to_iptables():
    facts = facts_with(firewalld_state=(252, "not running\n"), iptables_input=(0, IPTABLES_CLOSED))
    assert firewall.backend(facts) == "iptables"


# --- iptables -------------------------------------------------------------------------------------


def test_iptables_accepting_everything_needs_nothing():
    assert plan(facts_with(iptables_input=(0, IPTABLES_OPEN))) == []


SAVED = """# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 80
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""


def test_iptables_inserts_missing_rules_and_keeps_them_for_the_next_boot():
    actions = plan(facts_with(files={firewall.IPTABLES_RULES: SAVED.encode()}, iptables_input=(0, IPTABLES_CLOSED)))
    assert argvs(actions) == [("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "443", "-j", "ACCEPT"),
                              ("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "4096", "-j", "ACCEPT")]
    assert record(actions[:2] + actions[3:]) == ["iptables -p tcp --dport 443 -j ACCEPT",
                                                 "iptables -p tcp --dport 4096 -j ACCEPT"]
    saved = actions[2]
    assert saved.path == firewall.IPTABLES_RULES and saved.shared and saved.mode is None  # its own mode kept
    # the rules in *filter only, first in INPUT as the run-time chain has them; the nat table untouched
    assert saved.content.decode() == SAVED.replace(
        ":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 4096 -j ACCEPT\n"
                                   "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\n")
    rules = firewall.recorded_iptables_rules(firewall.record_text([], record(actions[:2] + actions[3:])).decode())
    assert firewall.without_saved_rules(saved.content.decode(), rules) == SAVED


def test_iptables_a_rule_deleted_at_run_time_only_is_inserted_again_and_saved_once():
    """rules.v4 still holds the installer's rules (someone ran iptables -D): the run-time rules come
    back, the saved file is left as it is (before, each re-run added its lines to it once more)."""
    first = plan(facts_with(files={firewall.IPTABLES_RULES: SAVED.encode()}, iptables_input=(0, IPTABLES_CLOSED)))
    saved = first[2].content
    again = plan(facts_with(files={firewall.IPTABLES_RULES: saved}, iptables_input=(0, IPTABLES_CLOSED)))
    assert argvs(again) == argvs(first)
    assert not [a for a in again if isinstance(a, File) and a.path == firewall.IPTABLES_RULES]
    assert firewall.with_saved_rules(saved.decode(), [("-p", "tcp", "--dport", "4096", "-j", "ACCEPT")]) == saved.decode()


def test_iptables_without_a_saved_file_says_the_rules_do_not_survive_a_reboot():
    facts = facts_with(iptables_input=(0, IPTABLES_CLOSED))
    assert not [a for a in plan(facts) if isinstance(a, File) and a.path == firewall.IPTABLES_RULES]
    assert "not kept across a reboot" in firewall.notes(make_config(), facts, STANDALONE, CTX)[0]


def test_uninstall_takes_its_lines_out_of_the_saved_rules():
    added = SAVED.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n")
    record_text = firewall.record_text([], ["iptables -p tcp --dport 80 -j ACCEPT"])
    facts = facts_with(files={firewall.RECORD: record_text, firewall.IPTABLES_RULES: added.encode()})
    step, = firewall.uninstall_rules({}, facts, None)
    saved = [a for a in step.actions if isinstance(a, File)]
    assert [(a.path, a.content.decode(), a.mode, a.shared) for a in saved] == [(firewall.IPTABLES_RULES, SAVED, None, True)]
    assert argvs(step.actions) == [("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")]


# --- off, nothing found, record ---------------------------------------------------------------------


def test_firewall_off_plans_nothing():
    facts = facts_with(ufw_status=(0, UFW_INACTIVE), ufw_added=(0, UFW_ADDED_NONE))
    assert plan(facts, configure_firewall="no") == []
    assert "ACTVT_CONFIGURE_FIREWALL=no" in firewall.notes(make_config(configure_firewall="no"), facts, STANDALONE,
                                                           CTX)[0]


def test_no_firewall_tool_plans_nothing():
    assert plan(facts_with()) == []  # also what --root gives: no probes are run there


def test_record_keeps_earlier_lines():
    facts = facts_with(files={firewall.RECORD: b"# header\nufw allow 22/tcp\nufw enable\n"},
                       ufw_status=(0, UFW_ACTIVE), ufw_added=(0, UFW_ADDED_NONE))
    assert record(plan(facts)) == ["ufw allow 22/tcp", "ufw enable", "ufw allow 443/tcp", "ufw allow 4096/tcp"]


def test_removal_commands_undo_exactly_the_record_in_a_safe_order():
    text = firewall.record_text([], ["ufw allow 22/tcp", "ufw allow 443/tcp", "ufw enable"]).decode()
    assert firewall.removal_commands(text) == [("ufw", "--force", "disable"), ("ufw", "delete", "allow", "22/tcp"),
                                               ("ufw", "delete", "allow", "443/tcp")]
    text = firewall.record_text([], ["firewalld 443/tcp", "iptables -p tcp --dport 80 -j ACCEPT"]).decode()
    commands = firewall.removal_commands(text)
    assert commands == [("firewall-cmd", "--remove-port=443/tcp"),
                        ("firewall-cmd", "--permanent", "--remove-port=443/tcp"),
                        ("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")]


# --- after the run --------------------------------------------------------------------------------


UFW_AFTER = """Status: active

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW       Anywhere
80/tcp                     ALLOW       Anywhere
443/tcp                    ALLOW       Anywhere
4096/tcp                   ALLOW       Anywhere
"""


@pytest.mark.parametrize("before,after", [
    ({"ufw_status": (0, UFW_INACTIVE), "ufw_added": (0, UFW_ADDED_NONE)},
     {"ufw_status": (0, UFW_AFTER), "ufw_added": (0, "ufw allow 22/tcp\nufw allow 80/tcp\nufw allow 443/tcp\n"
                                                     "ufw allow 4096/tcp\n")}),
    ({"firewalld_state": (0, "running"), "firewalld_ports": (0, ""), "firewalld_services": (0, "ssh")},
     {"firewalld_state": (0, "running"), "firewalld_ports": (0, "80/tcp 443/tcp 4096/tcp"),
      "firewalld_services": (0, "ssh")}),
    ({"iptables_input": (0, "-P INPUT DROP\n")},
     {"iptables_input": (0, "-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport 4096 -j ACCEPT\n"
                            "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n")}),
], ids=["ufw", "firewalld", "iptables"])
def test_after_facts_give_an_empty_plan(before, after):
    actions = plan(facts_with(**before))
    assert actions
    record_file = [action for action in actions if isinstance(action, File)][0]
    assert plan(facts_with(files={firewall.RECORD: record_file.content}, **after)) == []


# --- before certbot, and undone with a failed run ----------------------------------------------------


def test_ports_are_opened_before_certbot_needs_port_80():
    from installer.concerns import certbot
    from installer.core.concern import Phase
    firewall_phase = {p.phase for p in firewall.CONCERN.planners}
    certbot_phases = {p.phase for p in certbot.CONCERN.planners}
    assert max(firewall_phase) < min(certbot_phases) and max(firewall_phase) < Phase.CHALLENGE


def undo_of(actions):
    """What the engine runs when a later action fails: every on_rollback, last first."""
    undo = [argv for action in actions if isinstance(action, Command) for argv in action.on_rollback]
    return list(reversed(undo))


def test_a_failed_run_takes_its_rules_away_again():
    ufw = plan(facts_with(ufw_status=(0, UFW_INACTIVE), ufw_added=(0, UFW_ADDED_NONE)), PROXY)
    assert undo_of(ufw) == [("ufw", "--force", "disable"), ("ufw", "delete", "allow", "443/tcp"),
                            ("ufw", "delete", "allow", "80/tcp"), ("ufw", "delete", "allow", "22/tcp")]
    firewalld = plan(facts_with(firewalld_state=(0, "running\n"), firewalld_ports=(0, "\n"),
                                firewalld_services=(0, "ssh http\n")), PROXY)
    assert undo_of(firewalld) == [("firewall-cmd", "--permanent", "--remove-port=443/tcp"),
                                  ("firewall-cmd", "--remove-port=443/tcp")]
    iptables = plan(facts_with(iptables_input=(0, IPTABLES_CLOSED)))
    # the saved rules file is a File: the engine puts it back with the other files
    assert undo_of(iptables) == [("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "4096", "-j", "ACCEPT"),
                                 ("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "443", "-j", "ACCEPT")]
