"""SELinux (issue 21, item 3): recorded `semanage port -l` output -> port types; facts + config -> the label
command (or nothing); the record and its exact undo; doctor's verdict; and whole runs on --root trees that
carry /sys/fs/selinux/enforce (dry run, install, uninstall)."""

import dataclasses
import json

import pytest

from installer.concerns import selinux
from installer.core import facts as host_facts
from installer.core.actions import Command, Directory, File, Packages
from installer.core.facts import OSInfo, ProbeResult
from installer.core.paths import Root
from installer.plans.registry import Context, Decisions

from helpers import make_config, make_facts
from helpers import run_cli as run

CTX = Context(version="1.0.0", now="2026-12-07T00:00:00Z")
PROXY = Decisions(mode="proxy", webserver="nginx")
STANDALONE = Decisions(mode="standalone", webserver="none")

#: as `semanage port -l` prints it (the policy's lines for these types, from RHEL 9's targeted policy)
PORTS = """SELinux Port Type              Proto    Port Number

http_cache_port_t              tcp      8080, 8118, 8123, 10001-10010
http_cache_port_t              udp      3130
http_port_t                    tcp      80, 81, 443, 488, 8008, 8009, 8443, 9000
unreserved_port_t              sctp     1024-65535
unreserved_port_t              tcp      61000-65535, 1024-32767
unreserved_port_t              udp      61000-65535, 1024-32767
"""
LOCAL_NONE = ""
LOCAL_8080 = """SELinux Port Type              Proto    Port Number

http_cache_port_t              tcp      8080
"""


def facts_with(enforcing=True, ports=PORTS, local=LOCAL_NONE, files=None, **extra):
    probes = {}
    if ports is not None:
        probes = {selinux.PORTS.name: ProbeResult(0, ports), selinux.LOCAL_PORTS.name: ProbeResult(0, local)}
    return dataclasses.replace(make_facts(web="nginx", files=files, **extra), selinux_enforcing=enforcing,
                               probes=probes)


def plan(facts, decisions=PROXY, **values):
    steps = selinux.plan_port_label(make_config(install_mode="proxy", **values), facts, decisions, CTX)
    return [action for step in steps for action in step.actions]


def test_port_types_from_semanage_output():
    entries = selinux.parse_ports(PORTS)
    assert selinux.port_type(entries, 4096) == selinux.PortType("unreserved_port_t", False)
    assert selinux.port_type(entries, 443) == selinux.PortType("http_port_t", True)
    assert selinux.port_type(entries, 10005) == selinux.PortType("http_cache_port_t", False)  # the narrower range
    assert selinux.port_type(entries, 3130) == selinux.PortType("unreserved_port_t", False)  # tcp: the range
    assert selinux.port_type(entries, 3130, "udp") == selinux.PortType("http_cache_port_t", True)
    assert selinux.port_type(entries, 40000) is None and selinux.port_type(entries, 500) is None


def test_enforcing_proxy_labels_the_port_once_and_records_it():
    actions = plan(facts_with())
    assert [a.argv for a in actions if isinstance(a, Command)] == [
        ("semanage", "port", "-a", "-t", "http_port_t", "-p", "tcp", "4096")]
    label = actions[0]
    assert label.on_rollback == (("semanage", "port", "-d", "-p", "tcp", "4096"),)
    [record] = [a for a in actions if isinstance(a, File)]
    assert record.path == selinux.RECORD and record.mode == 0o600
    assert selinux.record_lines(record.content.decode()) == ["tcp 4096 added"]
    # the run after: the port is http_port_t now (the local definition this run added): nothing to do
    after = PORTS + "http_port_t                    tcp      4096\n"
    assert plan(facts_with(ports=after, local="http_port_t  tcp  4096\n")) == []


def test_a_port_of_another_type_is_modified_and_its_type_recorded():
    policy = plan(facts_with(), vector_port="8080")
    assert policy[0].argv == ("semanage", "port", "-m", "-t", "http_port_t", "-p", "tcp", "8080")
    assert selinux.record_lines(policy[-1].content.decode()) == ["tcp 8080 was http_cache_port_t policy"]
    local = plan(facts_with(local=LOCAL_8080), vector_port="8080")
    assert selinux.record_lines(local[-1].content.decode()) == ["tcp 8080 was http_cache_port_t local"]
    assert local[0].on_rollback == (("semanage", "port", "-m", "-t", "http_cache_port_t", "-p", "tcp", "8080"),)


def test_nothing_when_not_needed():
    assert plan(facts_with(enforcing=False)) == []  # permissive or disabled: nothing is refused
    assert plan(facts_with(), STANDALONE) == []  # Vector listens itself: no confined domain connects to it
    assert plan(facts_with(), vector_port="8443") == []  # already http_port_t (the policy's): left alone


@pytest.mark.parametrize("manager,os_info,package", [
    ("apt", OSInfo("debian", "12", ()), "policycoreutils-python-utils"),
    ("dnf", OSInfo("rocky", "9.4", ("rhel", "centos", "fedora")), "policycoreutils-python-utils"),
    ("dnf", OSInfo("almalinux", "8.10", ("rhel", "centos", "fedora")), "policycoreutils-python-utils"),
    ("yum", OSInfo("centos", "7", ("rhel", "fedora")), "policycoreutils-python"),
    ("yum", OSInfo("amzn", "2", ("centos", "rhel", "fedora")), "policycoreutils-python"),
])
def test_semanage_is_installed_first_when_missing(manager, os_info, package):
    facts = dataclasses.replace(facts_with(ports=None), package_manager=manager, os=os_info)
    actions = plan(facts)
    assert isinstance(actions[0], Packages) and (actions[0].manager, actions[0].names) == (manager, (package,))
    assert actions[1].argv == ("semanage", "port", "-a", "-t", "http_port_t", "-p", "tcp", "4096")


def test_the_record_keeps_earlier_lines_and_uninstall_undoes_exactly_them():
    earlier = b"# header\ntcp 5000 added\n"
    actions = plan(facts_with(files={selinux.RECORD: earlier}))
    text = actions[-1].content.decode()
    assert selinux.record_lines(text) == ["tcp 5000 added", "tcp 4096 added"]
    text += "tcp 8080 was http_cache_port_t local\ntcp 8081 was transproxy_port_t policy\nnot a line\ntcp x added\n"
    steps = selinux.uninstall_labels({}, make_facts(files={selinux.RECORD: text.encode()}), None)
    commands = [a.argv for step in steps for a in step.actions if isinstance(a, Command)]
    assert commands == [("semanage", "port", "-d", "-p", "tcp", "5000"),
                        ("semanage", "port", "-d", "-p", "tcp", "4096"),
                        ("semanage", "port", "-m", "-t", "http_cache_port_t", "-p", "tcp", "8080"),
                        ("semanage", "port", "-d", "-p", "tcp", "8081")]
    assert selinux.uninstall_labels({}, make_facts(), None) == []  # nothing recorded: nothing touched


def test_doctor_names_the_fix():
    config = make_config(install_mode="proxy")
    [bad] = selinux.doctor_checks(config, facts_with(), PROXY, CTX)
    assert (bad.check, bad.level) == ("selinux.port", "fail")
    assert bad.text == ("SELinux is enforcing and tcp/4096 is unreserved_port_t, not http_port_t: nginx cannot "
                        "connect to Vector (clients get 502)")
    assert bad.fix == "sudo semanage port -a -t http_port_t -p tcp 4096"
    [other] = selinux.doctor_checks(make_config(install_mode="proxy", vector_port="8080"), facts_with(), PROXY, CTX)
    assert other.fix == "sudo semanage port -m -t http_port_t -p tcp 8080"
    good = facts_with(ports=PORTS + "http_port_t   tcp   4096\n")
    assert [f.level for f in selinux.doctor_checks(config, good, PROXY, CTX)] == ["pass"]
    missing = dataclasses.replace(facts_with(ports=None), probes={"nginx_T": ProbeResult(0, "")},
                                  package_manager="dnf")
    [none] = selinux.doctor_checks(config, missing, PROXY, CTX)
    assert none.level == "fail" and none.fix == ("sudo dnf install -y policycoreutils-python-utils && "
                                                 "sudo semanage port -a -t http_port_t -p tcp 4096")
    assert selinux.doctor_checks(config, facts_with(ports=None), PROXY, CTX)[0].level == "skip"  # --root
    assert selinux.doctor_checks(config, facts_with(enforcing=False), PROXY, CTX) == []
    assert selinux.doctor_checks(config, facts_with(), STANDALONE, CTX) == []


# --- whole runs on --root trees ------------------------------------------------------------------------


def make_root(tmp_path, enforce):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
                                             'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n')
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/dnf").write_text("")
    if enforce is not None:
        (tmp_path / "sys/fs/selinux").mkdir(parents=True)
        (tmp_path / "sys/fs/selinux/enforce").write_text(enforce)
    return tmp_path


@pytest.mark.parametrize("enforce,expected", [("1", True), ("0", False), (None, False)])
def test_the_fact_is_read_from_the_tree(tmp_path, enforce, expected):
    root = make_root(tmp_path, enforce)
    assert host_facts.gather(Root(str(root)), {}).selinux_enforcing is expected


PROXY_ENV = {"ACTVT_INSTALL_MODE": "proxy"}


def test_dry_run_install_and_uninstall_on_an_enforcing_tree(tmp_path):
    root = make_root(tmp_path, "1\n")
    status, out = run(["--root", str(root), "--dry-run"], PROXY_ENV)
    assert status == 0, out
    assert "SELinux: tcp/4096 as http_port_t for nginx" in out
    assert "install packages (dnf): policycoreutils-python-utils" in out
    assert "semanage port -a -t http_port_t -p tcp 4096" in out
    assert not (root / selinux.RECORD.lstrip("/")).exists()

    # /var/www/html is not there: made, and (the policy not read under --root) given the rule
    assert "SELinux: /var/www/html as httpd_sys_content_t for nginx" in out
    assert "semanage fcontext -a -t httpd_sys_content_t '/var/www/html(/.*)?'" in out
    assert "restorecon -R /var/www/html" in out

    status, out = run(["--root", str(root), "--json"], PROXY_ENV)
    assert status == 0, out
    record = root / selinux.RECORD.lstrip("/")
    assert selinux.record_lines(record.read_text()) == ["fcontext /var/www/html(/.*)? added", "tcp 4096 added"]
    entries = json.loads((root / "var/lib/actvt/manifest.json").read_text())["paths"]
    assert selinux.RECORD in entries

    status, out = run(["uninstall", "--dry-run", "--root", str(root)])
    assert status == 0 and "semanage port -d -p tcp 4096" in out, out
    assert "semanage fcontext -d /var/www/html(/.*)?" in out, out
    status, out = run(["uninstall", "--root", str(root)])
    assert status == 0 and not record.exists(), out


def test_a_tree_that_is_not_enforcing_plans_no_label(tmp_path):
    for enforce, sub in (("0", "permissive"), (None, "none")):
        root = make_root(tmp_path / sub, enforce) if (tmp_path / sub).mkdir() is None else None
        status, out = run(["--root", str(root), "--dry-run"], PROXY_ENV)
        assert status == 0 and "semanage" not in out and "SELinux" not in out, out
    status, out = run(["--root", str(make_root(tmp_path / "x", "1") if (tmp_path / "x").mkdir() is None else None),
                       "--dry-run"], {"ACTVT_INSTALL_MODE": "standalone"})
    assert status == 0 and "semanage" not in out, out


# --- the challenge webroot (issue 22) -------------------------------------------------------------------

#: `semanage fcontext -l` lines for these paths, from Debian's selinux-policy-default (refpolicy)
FCONTEXTS = """SELinux fcontext                                   type               Context

/srv                                               directory          system_u:object_r:var_t:s0
/srv/([^/]*/)?www(/.*)?                            all files          system_u:object_r:httpd_sys_content_t:s0
/srv/.*                                            all files          system_u:object_r:var_t:s0
/var/lib(/.*)?                                     all files          system_u:object_r:var_lib_t:s0
/var/lib/nfs/rpc_pipefs(/.*)?                      all files          <<None>>
/var/www(/.*)?                                     all files          system_u:object_r:httpd_sys_content_t:s0
/var/www(/.*)?/logs                                directory          system_u:object_r:httpd_sys_ra_content_t:s0
/var/www/[^/]*/cgi-bin(/.*)?                       all files          system_u:object_r:httpd_sys_script_exec_t:s0
"""
ACME = "/var/lib/actvt-acme"
OURS = "/srv/acme(/.*)?                          all files          system_u:object_r:httpd_sys_content_t:s0\n"


def webroot_facts(local="", dirs=(), files=None, fcontexts=FCONTEXTS, **extra):
    facts = facts_with(files=files, **extra)
    probes = dict(facts.probes)
    if fcontexts is not None:
        probes[selinux.FCONTEXTS.name] = ProbeResult(0, fcontexts)
        probes[selinux.LOCAL_FCONTEXTS.name] = ProbeResult(0, local)
    else:
        probes = {}
    return dataclasses.replace(facts, probes=probes, dirs=frozenset(dirs))


def webroot_plan(facts, webroot, **values):
    decisions = Decisions(mode="proxy", webserver="nginx", webroot=webroot)
    config = make_config(install_mode="proxy", **values)
    return [action for step in selinux.plan_webroot_label(config, facts, decisions, CTX) for action in step.actions]


def commands(actions):
    return [a.argv for a in actions if isinstance(a, Command)]


def test_the_policy_type_of_a_folder():
    entries = selinux.parse_fcontexts(FCONTEXTS)
    assert selinux.policy_type(entries, [], ACME) == "var_lib_t"
    assert selinux.policy_type(entries, [], "/var/www/html") == "httpd_sys_content_t"
    assert selinux.policy_type(entries, [], "/srv/acme") == "var_t"  # /srv/.*: the longer stem of /srv/ wins
    assert selinux.policy_type(entries, [], "/srv/site/www") == "httpd_sys_content_t"
    assert selinux.policy_type(entries, [], "/var/www/logs") == "httpd_sys_ra_content_t"
    assert selinux.policy_type(entries, [], "/opt/acme") is None
    local = selinux.parse_fcontexts(OURS)
    assert selinux.policy_type(entries + local, local, "/srv/acme") == "httpd_sys_content_t"  # a local rule wins
    assert selinux.rule_for("/srv/a.b/") == "/srv/a\\.b(/.*)?"


def test_a_webroot_the_installer_makes_is_labelled_before_certbot():
    # Apache's: var_lib_t in the policy, which httpd_t reads: no rule, restorecon on the new folder only
    assert commands(webroot_plan(webroot_facts(), ACME)) == [("restorecon", "-R", ACME)]
    assert webroot_plan(webroot_facts(dirs=[ACME]), ACME) == []  # the run after: nothing
    # nginx's default, not there (nginx alone on the RHEL family): made, then restorecon gives the policy's type
    actions = webroot_plan(webroot_facts(), "/var/www/html")
    assert [a.path for a in actions if isinstance(a, Directory)] == ["/var/www/html"]
    assert commands(actions) == [("restorecon", "-R", "/var/www/html")]
    assert not [a for a in actions if isinstance(a, File)]  # nothing to undo: nothing recorded


def test_a_webroot_of_an_unreadable_type_gets_a_rule_recorded_and_undone():
    actions = webroot_plan(webroot_facts(), "/srv/acme", nginx_webroot="/srv/acme")
    rule = ("semanage", "fcontext", "-a", "-t", "httpd_sys_content_t", "/srv/acme(/.*)?")
    assert commands(actions) == [rule, ("restorecon", "-R", "/srv/acme")]
    assert actions[1].on_rollback == (("semanage", "fcontext", "-d", "/srv/acme(/.*)?"),)
    assert actions[1].describe() == "run semanage fcontext -a -t httpd_sys_content_t '/srv/acme(/.*)?'"
    [record] = [a for a in actions if isinstance(a, File)]
    assert selinux.record_lines(record.content.decode()) == ["fcontext /srv/acme(/.*)? added"]
    # with the port label in the same run, the port's record keeps the rule's line
    [port_record] = [a for a in plan(webroot_facts(), Decisions(mode="proxy", webserver="nginx", webroot="/srv/acme"),
                                     nginx_webroot="/srv/acme") if isinstance(a, File)]
    assert selinux.record_lines(port_record.content.decode()) == ["fcontext /srv/acme(/.*)? added", "tcp 4096 added"]
    # the run after: the rule is there, so is the folder (still the installer's: no note)
    after = webroot_facts(local=OURS, dirs=["/srv/acme"], files={selinux.RECORD: record.content})
    assert webroot_plan(after, "/srv/acme", nginx_webroot="/srv/acme") == []
    assert selinux.notes(make_config(install_mode="proxy", nginx_webroot="/srv/acme"), after,
                         dataclasses.replace(PROXY, webroot="/srv/acme"), CTX) == []
    # uninstall deletes that rule and only it (a rule of the admin's is not in the record; other lines ignored)
    text = record.content.decode() + "fcontext /etc(/.*)? removed\nfcontext /srv/x added\ntcp 4096 added\n"
    steps = selinux.uninstall_labels({}, make_facts(files={selinux.RECORD: text.encode()}), None)
    assert [a.argv for step in steps for a in step.actions if isinstance(a, Command)] == [
        ("semanage", "port", "-d", "-p", "tcp", "4096"), ("semanage", "fcontext", "-d", "/srv/acme(/.*)?")]


def test_semanage_missing_is_installed_once_and_the_rule_added():
    facts = webroot_facts(fcontexts=None)
    actions = webroot_plan(facts, ACME)
    assert [type(a).__name__ for a in actions] == ["Packages", "Command", "Command", "File"]
    assert commands(actions)[0] == ("semanage", "fcontext", "-a", "-t", "httpd_sys_content_t", ACME + "(/.*)?")
    port = plan(facts, Decisions(mode="proxy", webserver="apache", webroot=ACME))
    assert not [a for a in port if isinstance(a, Packages)]  # the webroot's step installed it already


def test_a_folder_the_installer_did_not_make_is_never_relabelled():
    site = webroot_facts(dirs=["/srv/site"])
    decisions = Decisions(mode="proxy", webserver="nginx", webroot="/srv/site")  # a site's own document root
    assert webroot_plan(site, "/srv/site") == []
    [note] = selinux.notes(make_config(install_mode="proxy"), site, decisions, CTX)
    assert "/srv/site, a folder the installer did not make and does not relabel" in note
    assert "`ls -Zd /srv/site` should show httpd_sys_content_t" in note
    there = webroot_facts(dirs=["/var/www/html"])  # the default, there before the run (Debian's nginx)
    assert webroot_plan(there, "/var/www/html") == []
    assert selinux.notes(make_config(install_mode="proxy"), there, dataclasses.replace(PROXY, webroot="/var/www/html"),
                         CTX)
    # not enforcing, or standalone: nothing
    assert webroot_plan(webroot_facts(enforcing=False), ACME) == []
    standalone = selinux.plan_webroot_label(make_config(install_mode="standalone"), webroot_facts(),
                                            dataclasses.replace(STANDALONE, webroot=ACME), CTX)
    assert standalone == []


def doctor_webroot(labels, webroot=ACME, **extra):
    facts = webroot_facts(**extra)
    probes = dict(facts.probes)
    if labels is not None:
        probes[selinux.LABELS.name] = ProbeResult(1, labels)
    facts = dataclasses.replace(facts, probes=probes)
    decisions = Decisions(mode="proxy", webserver="nginx", webroot=webroot)
    return [f for f in selinux.all_checks(make_config(install_mode="proxy"), facts, decisions, CTX)
            if f.check == "selinux.webroot"]


def test_doctor_checks_the_webroot_type():
    [bad] = doctor_webroot(f"system_u:object_r:var_t:s0 {ACME}\n"
                           "stat: cannot statx '/var/www/html': No such file or directory\n", dirs=[ACME])
    assert bad.level == "fail" and bad.text == (
        f"SELinux is enforcing and {ACME} is var_t, which nginx (httpd_t) may not read: certbot's http-01 "
        "challenge gets 403 and renewals fail")
    assert bad.fix == f"sudo restorecon -R {ACME}"  # the policy's type (var_lib_t) is readable: no rule
    [good] = doctor_webroot(f"system_u:object_r:var_lib_t:s0 {ACME}\n", dirs=[ACME])
    assert good.level == "pass"
    [none] = doctor_webroot(f"stat: failed to get security context of '{ACME}': No data available\n")
    assert none.level == "skip" and f"`ls -Zd {ACME}` should show httpd_sys_content_t" in none.text
    [site] = doctor_webroot("system_u:object_r:var_t:s0 /var/www/html\n", webroot="/var/www/html",
                            dirs=["/var/www/html"])
    assert site.fix == "sudo restorecon -R /var/www/html" and "look first with restorecon -Rnv" in site.text
    # the policy not read (semanage missing): the fix adds the rule first
    [unknown] = doctor_webroot(f"system_u:object_r:var_t:s0 {ACME}\n", fcontexts=None)
    assert unknown.fix == (f"sudo semanage fcontext -a -t httpd_sys_content_t '{ACME}(/.*)?' && "
                           f"sudo restorecon -R {ACME}")
    assert doctor_webroot(None, enforcing=False) == []


def test_a_tree_with_the_folder_there_relabels_nothing(tmp_path):
    root = make_root(tmp_path, "1\n")
    (root / "var/www/html").mkdir(parents=True)
    status, out = run(["--root", str(root), "--dry-run"], PROXY_ENV)
    assert status == 0, out
    assert "restorecon" not in out and "semanage fcontext" not in out, out
    assert "/var/www/html, a folder the installer did not make and does not relabel" in out, out
