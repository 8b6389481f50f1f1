"""certbot planner: the decision table (config + fake facts -> certbot commands or a clear stop),
the masked e-mail, the files for Vector, and the deploy hook run for real against a temporary lineage."""

import dataclasses
import datetime
import grp
import os
import shutil
import stat
import subprocess

import pytest

from installer.concerns import certbot
from installer.concerns import nginx
from installer.core import paths
from installer.core.actions import Command, Copy, File, Packages
from installer.concerns.certbot import CertbotError, plan_certbot
from installer.core.facts import OSInfo
from installer.core.errors import ActvtError
from installer.plans.registry import Context, ModeError, build_plan, decide

from helpers import DOMAIN, EMAIL, make_config, make_facts

CTX = Context(version="1.0.0", now="2026-06-01T00:00:00Z")
LIVE = f"/etc/letsencrypt/live/{DOMAIN}"
PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def _cert_pem(not_after: datetime.datetime) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(not_after - datetime.timedelta(days=90)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


VALID = _cert_pem(datetime.datetime(2026, 8, 1, tzinfo=datetime.timezone.utc))
EXPIRED = _cert_pem(datetime.datetime(2026, 5, 1, tzinfo=datetime.timezone.utc))


def lineage_facts(cert=VALID, **extra):
    files = {f"{LIVE}/README": b"certbot's README", f"{LIVE}/fullchain.pem": cert}
    files.update(extra.pop("files", {}))
    return make_facts(files=files, dirs=frozenset({LIVE}), **extra)


def plan(cfg, facts, ctx=CTX):
    return plan_certbot(cfg, facts, decide(cfg, facts), ctx)


def actions(steps):
    return [action for step in steps for action in step.actions]


def certonly(steps):
    found = [a for a in actions(steps) if isinstance(a, Command) and a.argv[:2] == ("certbot", "certonly")]
    assert len(found) <= 1
    return found[0] if found else None


# --- the renewal method follows the mode (issue 21) ------------------------------------------------

CONF = f"/etc/letsencrypt/renewal/{DOMAIN}.conf"
# as certbot 1.12 (Debian 11) writes them after `certonly --standalone` ...
STANDALONE_112 = f"""# renew_before_expiry = 30 days
version = 1.12.0
archive_dir = /etc/letsencrypt/archive/{DOMAIN}
cert = /etc/letsencrypt/live/{DOMAIN}/cert.pem
privkey = /etc/letsencrypt/live/{DOMAIN}/privkey.pem
chain = /etc/letsencrypt/live/{DOMAIN}/chain.pem
fullchain = /etc/letsencrypt/live/{DOMAIN}/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef0123456789abcdef
authenticator = standalone
server = {PRODUCTION}
""".encode()
# ... and certbot 2.x after `certonly --webroot -w /var/www/html -d <domain>`
WEBROOT_2X = f"""# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/{DOMAIN}
cert = /etc/letsencrypt/live/{DOMAIN}/cert.pem
privkey = /etc/letsencrypt/live/{DOMAIN}/privkey.pem
chain = /etc/letsencrypt/live/{DOMAIN}/chain.pem
fullchain = /etc/letsencrypt/live/{DOMAIN}/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef0123456789abcdef
authenticator = webroot
webroot_path = /var/www/html,
server = {PRODUCTION}
key_type = ecdsa
[[webroot_map]]
{DOMAIN} = /var/www/html
""".encode()


def with_version(facts, version):
    from installer.core.facts import ProbeResult

    return dataclasses.replace(facts, probes={"certbot_version": ProbeResult(0, f"certbot {version}\n")})


def switch(steps):
    found = [a for a in actions(steps) if isinstance(a, Command) and a.saves]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_reader_on_what_certbot_writes():
    from installer.core import renewal

    standalone = renewal.parse(STANDALONE_112, CONF)
    assert (standalone.authenticator, standalone.server, standalone.webroot_for(DOMAIN)) == ("standalone", PRODUCTION, None)
    webroot = renewal.parse(WEBROOT_2X, CONF)
    assert webroot.authenticator == "webroot" and webroot.webroot_path == ("/var/www/html",)
    assert webroot.webroot_map == {DOMAIN: "/var/www/html"} and webroot.webroot_for(DOMAIN) == "/var/www/html"
    assert renewal.parse(WEBROOT_2X.replace(b"[[webroot_map]]", b"[[other]]"), CONF).webroot_for(DOMAIN) == "/var/www/html"
    quoted = renewal.parse(b"[renewalparams]\nauthenticator = 'webroot'  # a comment\nwebroot_path = \"/srv/a, b\"\n", CONF)
    assert quoted.authenticator == "webroot" and quoted.webroot_path == ("/srv/a, b",)


@pytest.mark.parametrize("damage,words", [
    (lambda t: t.replace(b"authenticator = standalone", b'authenticator = "standalone'), "line 12: a quote that is not closed"),
    (lambda t: t.replace(b"[renewalparams]", b"[renewalparams"), "line 10: a section header"),
    (lambda t: t + b"authenticator = webroot\n", "line 14: a key given twice"),
    (lambda t: t + b"this is not a setting\n", "line 14: a line that is not `key = value`"),
    (lambda t: t + b"[[webroot_map]]\n[renewalparams]\n", "line 15: a section given twice"),
    (lambda t: t.replace(b"[renewalparams]", b"[[renewalparams]]"), "line 10: a subsection outside its section"),
    (lambda t: t + b"note = '''two\n", "line 14: a multi-line"),
    (lambda t: t.replace(b"authenticator = standalone\n", b""), "names no authenticator"),
    (lambda t: t.replace(b"[renewalparams]", b"[other]"), "no [renewalparams] section"),
    (lambda t: t + b"\xff\n", "not UTF-8"),
])
def test_a_damaged_renewal_file_stops_the_run_without_showing_it(damage, words):
    data = damage(STANDALONE_112)
    facts = with_version(lineage_facts(web="nginx", files={CONF: data}), "2.11.0")
    with pytest.raises(CertbotError) as caught:
        plan(make_config(install_mode="proxy"), facts)
    message = str(caught.value)
    assert CONF in message and words in message and "Nothing was changed" in message, message
    assert "0123456789abcdef" not in message and "acme-v02" not in message and "\n" not in message


@pytest.mark.parametrize("version,conf,mode,expected", [
    # standalone -> proxy: certbot >= 2.3 reconfigures, keeping the certificate
    ("2.11.0", STANDALONE_112, "proxy",
     ("certbot", "reconfigure", "--cert-name", DOMAIN, "--webroot", "-w", "/var/www/html",
      "--non-interactive", "--server", PRODUCTION)),
    # a webroot_map left from an earlier webroot of the same folder does not matter
    ("2.11.0", WEBROOT_2X.replace(b"authenticator = webroot", b"authenticator = standalone"), "proxy",
     ("certbot", "reconfigure", "--cert-name", DOMAIN, "--webroot", "-w", "/var/www/html")),
    ("2.3.0", WEBROOT_2X, "standalone",
     ("certbot", "reconfigure", "--cert-name", DOMAIN, "--standalone", "--non-interactive", "--server", PRODUCTION)),
    # older certbot (Debian 11: 1.12, Debian 12: 2.1) re-issues it with the new method
    ("1.12.0", STANDALONE_112, "proxy", ("certbot", "certonly", "--webroot", "-w", "/var/www/html", "--cert-name", DOMAIN)),
    ("2.1.0", WEBROOT_2X, "standalone", ("certbot", "certonly", "--standalone", "--cert-name", DOMAIN)),
    # version not known (no certbot yet, or --root): the way every certbot has
    (None, WEBROOT_2X, "standalone", ("certbot", "certonly", "--standalone", "--cert-name", DOMAIN)),
])
def test_a_mode_switch_switches_how_the_certificate_renews(version, conf, mode, expected):
    cfg = make_config(install_mode=mode)
    facts = lineage_facts(web="nginx" if mode == "proxy" else None, files={CONF: conf})
    facts = with_version(facts, version) if version else facts
    steps = plan(cfg, facts)
    command = switch(steps)
    assert command is not None and command.argv[:len(expected)] == expected, command
    assert command.saves == (CONF,) and CONF in command.creates  # backed up first, put back on a rollback
    if command.argv[1] == "certonly":
        assert "--force-renewal" in command.argv and EMAIL not in command.describe()
    assert steps[1].title.endswith(f"its renewal switched to {'webroot' if mode == 'proxy' else 'standalone'}")
    renew = [a for a in actions(steps) if isinstance(a, Command) and a.argv[:2] == ("certbot", "renew")][0]
    assert CONF in renew.when_changed  # the switch is checked by a real renewal dry run
    assert [e.url for e in certbot.endpoints(cfg, actions(steps))] == [PRODUCTION]


def test_a_renewal_that_fits_the_mode_is_left_alone():
    for mode, conf in (("standalone", STANDALONE_112), ("proxy", WEBROOT_2X)):
        cfg = make_config(install_mode=mode)
        facts = with_version(lineage_facts(web="nginx" if mode == "proxy" else None, files={CONF: conf}), "2.11.0")
        assert switch(plan(cfg, facts)) is None and certonly(plan(cfg, facts)) is None
    # another webroot than the decided one is switched; a DNS or manual authenticator is not the mode's business
    cfg = make_config(install_mode="proxy", nginx_webroot="/srv/acme")
    facts = with_version(lineage_facts(web="nginx", files={CONF: WEBROOT_2X}), "2.11.0")
    # ... by re-issuing: reconfigure would keep the stored map's folder (it wins over -w) and takes no map
    assert switch(plan(cfg, facts)).argv[:5] == ("certbot", "certonly", "--webroot", "-w", "/srv/acme")
    dns = WEBROOT_2X.replace(b"authenticator = webroot", b"authenticator = dns-cloudflare")
    assert switch(plan(cfg, with_version(lineage_facts(web="nginx", files={CONF: dns}), "2.11.0"))) is None
    # another ACME server than the lineage's: reconfigure refuses that, so the certificate is re-issued
    other = make_config(install_mode="proxy", acme_server=STAGING)
    facts = with_version(lineage_facts(web="nginx", files={CONF: STANDALONE_112}), "2.11.0")
    assert switch(plan(other, facts)).argv[:2] == ("certbot", "certonly")


@pytest.mark.parametrize("output,rc,expected", [
    ("certbot 2.1.0\n", 0, (2, 1, 0)), ("certbot 1.12.0\n", 0, (1, 12, 0)), ("certbot 4.0.0\n", 0, (4, 0, 0)),
    ("Traceback (most recent call last):\n", 1, None), ("certbot 2.1.0\n", 1, None),
])
def test_the_certbot_version_probe(output, rc, expected):
    from installer.core.facts import ProbeResult

    assert certbot.parse_certbot_version(ProbeResult(rc, output)) == expected
    probe = certbot.CERTBOT_VERSION
    assert probe.argv == ("certbot", "--version") and probe in certbot.CONCERN.probes
    assert probe.when(lineage_facts(files={CONF: b""})) and not probe.when(lineage_facts())


# --- the decision table ---------------------------------------------------------------------------

CASES = [
    # (id, config values, facts, expected certonly argv fragment or None)
    ("new standalone", {}, make_facts(domain_addresses=("192.0.2.1",)), ("--standalone",)),
    ("new proxy nginx -> webroot", {"install_mode": "proxy"}, make_facts(web="nginx"),
     ("--webroot", "-w", "/var/www/html")),
    ("new proxy, nginx to be installed -> webroot", {"install_mode": "proxy"}, make_facts(),
     ("--webroot", "-w", "/var/www/html")),
    ("custom webroot", {"install_mode": "proxy", "nginx_webroot": "/srv/acme root"}, make_facts(web="nginx"),
     ("--webroot", "-w", "/srv/acme root")),
    ("lineage + reuse -> no certbot", {}, lineage_facts(), None),
    ("lineage + reuse, proxy -> no certbot", {"install_mode": "proxy"}, lineage_facts(web="nginx"), None),
    ("lineage + reuse=no -> force", {"reuse_cert": "no"}, lineage_facts(), ("--standalone", "--force-renewal")),
    ("lineage + reuse=no, proxy -> force webroot", {"reuse_cert": "no", "install_mode": "proxy"},
     lineage_facts(web="nginx"), ("--webroot", "--force-renewal")),
    ("expired lineage -> renewed", {}, lineage_facts(EXPIRED), ("--standalone", "--force-renewal")),
    ("lineage folder without readable certificate -> reused", {},
     make_facts(files={f"{LIVE}/README": b"x"}, dirs=frozenset({LIVE})), None),
    ("forced standalone, nginx on 80, lineage reused", {"force_standalone": "yes"}, lineage_facts(web="nginx"), None),
    ("no DNS but reusing", {}, lineage_facts(domain_addresses=()), None),
    ("no DNS, allowed", {"continue_without_dns": "yes"}, make_facts(domain_addresses=()), ("--standalone",)),
    ("DNS not looked up (--root)", {}, make_facts(domain_addresses=None), ("--standalone",)),
]


@pytest.mark.parametrize("name,values,facts,expected", CASES, ids=[case[0] for case in CASES])
def test_decision_table(name, values, facts, expected):
    cfg = make_config(**values)
    command = certonly(plan(cfg, facts))
    if expected is None:
        assert command is None
        return
    assert command is not None
    argv = command.argv
    position = argv.index(expected[0])
    for part in expected:
        assert part in argv
    assert argv[position:position + len(expected)] == expected or "--force-renewal" in expected
    assert ("--force-renewal" in argv) == ("--force-renewal" in expected)
    # always: the lineage keeps the domain's name; terms, no prompts, e-mail, ACME directory
    for fragment in (("--cert-name", DOMAIN), ("-d", DOMAIN), ("--email", EMAIL), ("--server", PRODUCTION)):
        index = argv.index(fragment[0])
        assert argv[index:index + 2] == fragment
    for flag in ("--agree-tos", "--non-interactive", "--no-eff-email"):
        assert flag in argv
    assert command.creates == (f"{LIVE}/fullchain.pem", f"{LIVE}/privkey.pem")
    assert not command.when_changed and not command.may_fail


STOPS = [
    ("proxy with caddy, forced", {"install_mode": "proxy"}, make_facts(web="caddy"), ["another web server",
                                                                               "ACTVT_FORCE_STANDALONE=yes"]),
    ("proxy with an unknown server", {"install_mode": "proxy"}, make_facts(web="caddy"), ["another web server"]),
    ("proxy caddy, reuse=no", {"reuse_cert": "no", "install_mode": "proxy"}, lineage_facts(web="caddy"),
     ["another web server"]),
    ("standalone, port 80 taken", {"force_standalone": "yes"}, make_facts(web="nginx"), ["port 80", "nginx"]),
    ("no DNS", {}, make_facts(domain_addresses=()), ["does not resolve", "ACTVT_CONTINUE_WITHOUT_DNS=yes"]),
    ("no DNS, force renewal", {"reuse_cert": "no"}, lineage_facts(domain_addresses=()), ["does not resolve"]),
]


@pytest.mark.parametrize("name,values,facts,words", STOPS, ids=[case[0] for case in STOPS])
def test_clear_stops_before_anything_changes(name, values, facts, words):
    """Whether the mode decision refuses the host (another web server) or certbot's planner does."""
    cfg = make_config(**values)
    with pytest.raises(ActvtError) as caught:
        build_plan(cfg, facts, CTX)
    assert isinstance(caught.value, (CertbotError, ModeError))
    message = str(caught.value)
    for word in words:
        assert word in message
    assert "Nothing was changed" in message
    assert EMAIL not in message


def test_prompt_answers_are_used_when_the_variable_is_not_set():
    facts = lineage_facts()
    renew = Context(version="1.0.0", now=CTX.now, answers={"ACTVT_REUSE_CERT": False})
    assert "--force-renewal" in certonly(plan(make_config(), facts, renew)).argv
    # an explicit variable wins over the answer
    assert certonly(plan(make_config(reuse_cert="yes"), facts, renew)) is None
    go_on = Context(version="1.0.0", now=CTX.now, answers={"ACTVT_CONTINUE_WITHOUT_DNS": True})
    assert certonly(plan(make_config(), make_facts(domain_addresses=()), go_on)) is not None


def test_acme_directory_setting():
    staging = certonly(plan(make_config(acme_server="staging"), make_facts())).argv
    assert staging[staging.index("--server") + 1] == STAGING
    pebble = "https://acme.test:14000/dir"
    custom = certonly(plan(make_config(acme_server=pebble), make_facts())).argv
    assert custom[custom.index("--server") + 1] == pebble
    assert pebble in certonly(plan(make_config(acme_server=pebble), make_facts())).reason


@pytest.mark.parametrize("values,facts", [
    ({}, make_facts()),
    ({"install_mode": "proxy"}, make_facts(web="nginx")),
    ({"reuse_cert": "no"}, lineage_facts()),
    ({"continue_without_dns": "yes"}, make_facts(domain_addresses=())),
])
def test_the_email_never_appears_in_what_is_shown(values, facts):
    cfg = make_config(**values)
    steps = plan(cfg, facts)
    command = certonly(steps)
    assert EMAIL in command.argv  # certbot needs it...
    assert "a***@example.com" in command.display  # ...the console and the log get it masked
    for step in steps:
        assert EMAIL not in step.title
        for action in step.actions:
            assert EMAIL not in action.describe() and EMAIL not in action.reason


def test_files_for_vector_and_the_hook():
    steps = plan(make_config(), lineage_facts())
    by_path = {a.path: a for a in actions(steps) if isinstance(a, (Copy, File))}
    crt, key = by_path[paths.SERVER_CERT], by_path[paths.SERVER_KEY]
    assert (crt.source, crt.mode, crt.owner, crt.group, crt.sensitive) == (f"{LIVE}/fullchain.pem", 0o644, "root", "vector", False)
    assert (key.source, key.mode, key.owner, key.group, key.sensitive) == (f"{LIVE}/privkey.pem", 0o640, "root", "vector", True)
    hook = by_path[paths.DEPLOY_HOOK]
    assert hook.mode == 0o755 and hook.owner == "root"
    assert f"LINEAGE='{LIVE}'" in hook.content.decode()


def test_order_and_the_renewal_check():
    steps = plan(make_config(install_mode="proxy"), make_facts(web="nginx"))
    assert [s.title.split(" (")[0] for s in steps] == ["Installing certbot", f"TLS certificate for {DOMAIN}"]
    assert steps[0].actions == (Packages("apt", ("certbot",), reason=steps[0].actions[0].reason),)
    kinds = [type(a).__name__ for a in steps[1].actions]
    assert kinds == ["Command", "Directory", "Copy", "Copy", "File", "Command"]  # certbot first, check last
    check = steps[1].actions[-1]
    # --server: a dry run otherwise goes to Let's Encrypt's staging server, whatever issued the certificate
    assert check.argv == ("certbot", "renew", "--dry-run", "--no-random-sleep-on-renew", "--non-interactive",
                          "--cert-name", DOMAIN, "--server", "https://acme-v02.api.letsencrypt.org/directory")
    assert check.may_fail
    # only when something it depends on changed in this run
    assert set(check.when_changed) >= {f"{LIVE}/fullchain.pem", paths.DEPLOY_HOOK, nginx.CHALLENGE_SITE}


def test_reuse_title_and_notes():
    facts = lineage_facts(domain_addresses=())
    steps = plan(make_config(), facts)
    assert "reusing the existing certificate" in steps[1].title
    assert any("does not resolve" in note for note in certbot.notes(make_config(), facts, decide(make_config(), facts), CTX))
    # standalone, but nginx holds port 80: the proxy lineage cannot be switched to --standalone, and the note says why
    cfg = make_config(install_mode="standalone", force_standalone="yes")
    facts = lineage_facts(web="nginx", files={CONF: WEBROOT_2X})
    assert any("cannot use port 80 while nginx holds it" in note for note in certbot.notes(cfg, facts, decide(cfg, facts), CTX))
    assert switch(plan(cfg, facts)) is None


def test_watch_names_the_lineage_and_prompts_see_it():
    from installer.ui import prompt as prompts

    cfg = make_config()
    assert certbot.reads(cfg) == (LIVE, f"{LIVE}/fullchain.pem", f"/etc/letsencrypt/renewal/{DOMAIN}.conf")
    assert certbot.reads(None) == ()
    applies = dict(prompts.QUESTIONS)["ACTVT_REUSE_CERT"]
    assert applies(cfg, lineage_facts()) and not applies(cfg, make_facts())


@pytest.mark.parametrize("os_info,manager,installed,expected", [
    (OSInfo(id="debian", version_id="12"), "apt", {}, ["packages apt: certbot"]),
    (OSInfo(id="rocky", version_id="9.3", id_like=("rhel", "centos", "fedora")), "dnf", {},
     ["packages dnf: epel-release", "packages dnf: certbot"]),
    (OSInfo(id="centos", version_id="7", id_like=("rhel", "fedora")), "yum", {},
     ["packages yum: epel-release", "packages yum: certbot"]),
    (OSInfo(id="rhel", version_id="9.4", id_like=("fedora",)), "dnf", {},
     ["run dnf install -y https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm",
      "packages dnf: certbot"]),
    (OSInfo(id="rocky", version_id="9.3", id_like=("rhel",)), "dnf", {"epel-release": "9-7"}, ["packages dnf: certbot"]),
    (OSInfo(id="rocky", version_id="9.3", id_like=("rhel",)), "dnf", {"certbot": "2.11"}, ["packages dnf: certbot"]),
    (OSInfo(id="fedora", version_id="40"), "dnf", {}, ["packages dnf: certbot"]),
    (OSInfo(id="amzn", version_id="2"), "yum", {}, ["run amazon-linux-extras install -y epel", "packages yum: certbot"]),
    (OSInfo(id="amzn", version_id="2023"), "dnf", {}, ["packages dnf: certbot"]),
])
def test_certbot_installation_per_distribution(os_info, manager, installed, expected):
    facts = dataclasses.replace(make_facts(), os=os_info, package_manager=manager, packages=installed)
    got = []
    for action in certbot.install_certbot(facts):
        if isinstance(action, Packages):
            got.append(f"packages {action.manager}: {' '.join(action.names)}")
        else:
            got.append(action.describe())
    assert got == expected


def test_certbot_accepts_the_arguments_we_pass(tmp_path):
    """Real certbot parses our command lines (it fails later, at the unreachable ACME directory)."""
    if not shutil.which("certbot"):
        pytest.skip("certbot is not installed (Debian package: certbot)")
    dirs = ("--config-dir", str(tmp_path / "config"), "--work-dir", str(tmp_path / "work"),
            "--logs-dir", str(tmp_path / "logs"))
    cfg = make_config(acme_server="https://127.0.0.1:9/dir", reuse_cert="no", install_mode="proxy")
    # each gets past parsing to the step that needs the network or a certificate, and fails there
    for argv, reached in ((certbot.certonly_argv(cfg, ("--webroot", "-w", str(tmp_path)), True), "Requesting 127.0.0.1/dir"),
                          (certbot.certonly_argv(cfg, ("--standalone",), False), "Requesting 127.0.0.1/dir"),
                          (("certbot", "renew", "--dry-run", "--no-random-sleep-on-renew", "--non-interactive",
                            "--cert-name", DOMAIN), f"No certificate found with name {DOMAIN}")):
        done = subprocess.run(list(argv) + list(dirs), capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        assert done.returncode != 0 and reached in output, output
        assert "unrecognized arguments" not in output and "error: argument" not in output, output
    bogus = subprocess.run(["certbot", "renew", "--no-such-option"] + list(dirs), capture_output=True, text=True)
    assert "unrecognized arguments: --no-such-option" in bogus.stderr  # the check above can fail


# --- the deploy hook, run for real ----------------------------------------------------------------


def test_hook_is_valid_shell():
    script = certbot.hook_text(DOMAIN)
    for shell in ("sh", "bash"):
        if shutil.which(shell):
            subprocess.run([shell, "-n", "/dev/stdin"], input=script, check=True)
    assert script.startswith(b"#!/bin/sh\n")
    with pytest.raises(ValueError):
        certbot.hook_text(DOMAIN, cert_dir="/tmp/it's")


@pytest.fixture
def hook_env(tmp_path):
    """A temporary lineage, target folder and fake systemctl/nginx that record their calls."""
    live = tmp_path / "live"
    lineage = live / DOMAIN
    lineage.mkdir(parents=True)
    (lineage / "fullchain.pem").write_bytes(b"NEW CHAIN\n")
    (lineage / "privkey.pem").write_bytes(b"NEW KEY\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "server.crt").write_bytes(b"OLD CHAIN\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    active = tmp_path / "active"
    active.write_text("vector\nnginx\n")
    failing = tmp_path / "failing"  # commands (as recorded) that exit 1
    failing.write_text("")
    for name in ("systemctl", "nginx", "apache2ctl", "apachectl"):
        fake = bindir / name
        fake.write_text(f"""#!/bin/sh
echo "{name} $*" >> {calls}
if [ "{name} $1 $2" = "systemctl is-active --quiet" ]; then grep -qx "$3" {active}; exit $?; fi
if grep -qxF "{name} $*" {failing}; then exit 1; fi
exit 0
""")
        fake.chmod(0o755)
    group = grp.getgrgid(os.getgid()).gr_name
    hook = tmp_path / "actvt-vector.sh"
    hook.write_bytes(certbot.hook_text(DOMAIN, cert_dir=str(certs), group=group, live=str(live)))
    hook.chmod(0o755)

    def run(renewed=str(lineage)):
        env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", RENEWED_LINEAGE=renewed,
                   RENEWED_DOMAINS=DOMAIN)
        return subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=30)

    def recorded():
        return calls.read_text().splitlines() if calls.exists() else []

    return dict(run=run, recorded=recorded, certs=certs, lineage=lineage, active=active, group=group, failing=failing)


def test_hook_copies_atomically_restarts_vector_and_reloads_nginx(hook_env):
    done = hook_env["run"]()
    assert done.returncode == 0, done.stderr
    certs = hook_env["certs"]
    assert (certs / "server.crt").read_bytes() == b"NEW CHAIN\n"
    assert (certs / "server.key").read_bytes() == b"NEW KEY\n"
    for name, mode in (("server.crt", 0o644), ("server.key", 0o640)):
        st = os.stat(certs / name)
        assert stat.S_IMODE(st.st_mode) == mode
        assert grp.getgrgid(st.st_gid).gr_name == hook_env["group"]
    assert sorted(os.listdir(certs)) == ["server.crt", "server.key"]  # no temporary file left
    calls = hook_env["recorded"]()
    assert "systemctl restart vector" in calls and "systemctl reload vector" not in calls
    assert calls.index("nginx -t") < calls.index("systemctl reload nginx")


@pytest.mark.parametrize("unit, test", [("apache2", "apache2ctl configtest"), ("httpd", "apachectl configtest")])
def test_hook_reloads_the_apache_that_runs_after_its_configtest_and_not_when_it_fails(hook_env, unit, test):
    hook_env["active"].write_text(f"vector\n{unit}\n")
    done = hook_env["run"]()
    assert done.returncode == 0, done.stderr
    calls = hook_env["recorded"]()
    assert calls.index(test) < calls.index(f"systemctl reload {unit}") and "nginx -t" not in calls, calls
    assert f"{unit} reloaded" in done.stderr
    hook_env["failing"].write_text(test + "\n")
    done = hook_env["run"]()
    assert done.returncode == 1 and f"systemctl reload {unit}" not in hook_env["recorded"]()[len(calls):]
    assert f"{unit} was not reloaded (the configuration test or the reload failed); see: {test}" in done.stderr


def test_hook_ignores_other_certificates(hook_env):
    done = hook_env["run"]("/etc/letsencrypt/live/www.other.example")
    assert done.returncode == 0
    assert (hook_env["certs"] / "server.crt").read_bytes() == b"OLD CHAIN\n"
    assert not (hook_env["certs"] / "server.key").exists()
    assert hook_env["recorded"]() == []


def test_hook_leaves_stopped_services_alone(hook_env):
    hook_env["active"].write_text("")
    done = hook_env["run"]()
    assert done.returncode == 0, done.stderr
    assert (hook_env["certs"] / "server.key").read_bytes() == b"NEW KEY\n"
    assert not any("restart" in call or "reload" in call for call in hook_env["recorded"]())


def test_hook_fails_without_touching_anything_when_a_file_is_missing(hook_env):
    (hook_env["lineage"] / "privkey.pem").unlink()
    done = hook_env["run"]()
    assert done.returncode == 1 and "privkey.pem is missing" in done.stderr
    assert (hook_env["certs"] / "server.crt").read_bytes() == b"OLD CHAIN\n"
    assert hook_env["recorded"]() == []


def test_the_switch_is_put_back_when_a_later_step_fails(tmp_path, monkeypatch):
    """The engine backs the renewal configuration up before certbot rewrites it and puts it back when a
    later action fails: certbot then renews as before, and a re-run plans the switch again."""
    from helpers import RecordingRunner
    from installer.core.actions import Plan, Step
    from installer.core.errors import ApplyError
    from installer.core.paths import Root
    from installer.engine import engine

    conf = tmp_path / CONF.lstrip("/")
    conf.parent.mkdir(parents=True)
    conf.write_bytes(STANDALONE_112)

    class Certbot(RecordingRunner):
        def run(self, argv, **kwargs):
            if tuple(argv[:2]) == ("certbot", "reconfigure"):  # as certbot does: a new file renamed over it
                (conf.parent / "new").write_bytes(WEBROOT_2X)
                os.replace(conf.parent / "new", conf)
            return super().run(argv, **kwargs)

    cfg = make_config(install_mode="proxy")
    command = switch(plan(cfg, with_version(lineage_facts(web="nginx", files={CONF: STANDALONE_112}), "2.11.0")))
    runner = Certbot(fail_on=("nginx -t",))
    eng = engine.Engine(Root(str(tmp_path)), runner, manage_owner=False)
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    items = eng.check(Plan((Step("certificate", (command, Command(("nginx", "-t")))),)))
    with pytest.raises(ApplyError) as caught:
        eng.apply(items)
    assert runner.calls[0][:2] == ("certbot", "reconfigure") and "put back 1 file(s)" in str(caught.value)
    assert conf.read_bytes() == STANDALONE_112
