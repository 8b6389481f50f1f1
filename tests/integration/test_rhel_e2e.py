"""The RHEL family end to end (issue 21, item 2), on the server-rhel harness image: real dnf 4 and rpm 4.18,
signed RPM repositories made with createrepo_c and rpmsign on the rpmmirror container, firewalld running,
the os-release of Rocky 9 / Alma 9 / Amazon Linux 2023 / Rocky 8 (tests/integration/README.md, "RHEL
family", says what is real and what is a stand-in).

Two servers, each scenario continuing on the one before to keep the CI budget (measured on the 2-core
machine: about 100 s and 90 s):
1. Rocky 9: the pipe, standalone with mTLS (metrics with the bundle's certificate, refused without);
   a re-run changes nothing and keeps Vector's PID; revocation with the kept `actvt` command; then proxy
   mode (nginx from AppStream, conf.d layout) with mTLS; uninstall puts back exactly the repository
   folder, the keys and firewalld's ports (EPEL's repository stays: epel-release is kept, like certbot).
2. Amazon Linux 2023 (dnf; certbot from the distribution's own repository, no EPEL): a wrong repository
   key refused before anything is written; another dnf holding its locks (the bound, then the wait);
   then the install completes.
3. Alma 9 then Rocky 8 on one server (`actvt-test-become` between them, after an uninstall): standalone
   with mTLS on Alma 9, proxy with mTLS on Rocky 8 (nginx from its AppStream, then a re-run that changes
   nothing); each an uninstall that puts back the repository folder, the keys, firewalld's ports and rpm's
   trusted keys (on Rocky 8 the user trusted Vector's key before: it stays trusted).
"""
import re
import time

import pytest

import harness as H
from installer.core import openpgp, rpmkeys
from installer.core.facts import ProbeResult
from test_wiring_e2e import FIRST, MTLS, MTLS_DIR, PROXY_URL, SECOND, STANDALONE_URL, App, assert_no_changes, \
    install, main_pid, wait_until

pytestmark = pytest.mark.e2e

YUM_REPO = "/etc/yum.repos.d/vector.repo"
KEY_DIR = "/etc/pki/rpm-gpg"
# What install and uninstall touch of the family's own configuration (compared before and after);
# firewalld's is compared as firewalld reports it: it keeps the zone file it wrote once a port was added
# (/etc/firewalld/zones/public.xml, and .old), with the same content as its default once the port is gone
FAMILY_ROOTS = ("/etc/yum.repos.d", KEY_DIR)
WAIT_LINE = re.compile(r"^  ⚠ another package manager is running: (.*)$", re.M)


def rhel_install(harness, server, env, rc=0):
    return install(server, H.rhel_env(harness, env), rc=rc)


def firewalld_ports(server):
    return server.sh(["firewall-cmd", "--list-ports"]).out.split()


def firewalld_permanent(server):
    return server.sh(["firewall-cmd", "--permanent", "--list-all"]).out


def rpm_q(server, name):
    return server.exec(["rpm", "-q", "--queryformat", "%{VERSION}-%{RELEASE}", name])


@pytest.fixture
def rhel_server(request, harness):
    hosts = []
    request.node._actvt_hosts = hosts

    def make(system):
        try:
            host = H.rhel_server(harness, system)
        except H.HarnessUnavailable as exc:
            pytest.skip(str(exc))
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        harness.remove(host)


def test_rocky9_standalone_mtls_rerun_revoke_proxy_uninstall(harness, rhel_server):
    started = time.time()
    server = rhel_server("rocky9")
    server.trust_acme_ca()
    assert server.exec(["sh", "-c", "command -v apt-get || command -v dpkg"]).rc != 0, "apt is in reach"
    ports_before = firewalld_ports(server)
    firewalld_before = firewalld_permanent(server)
    before = server.snapshot(FAMILY_ROOTS)
    app = App(harness, "rhel-rocky9")

    # the pipe, standalone with mTLS
    r, summary = rhel_install(harness, server, MTLS)
    assert summary["status"] == "ok" and summary["mode"] == "standalone" and summary["mtls"] is True, summary
    assert "Installation complete" in r.err and STANDALONE_URL in r.err, r
    repo = server.read_text(YUM_REPO)
    assert "baseurl=%s\n" % H.VECTOR_YUM_URL in repo and "gpgcheck=1\n" in repo and "repo_gpgcheck=1\n" in repo, repo
    keys = [line for line in server.sh(["ls", KEY_DIR]).out.split() if line.startswith("actvt-vector-")]
    assert len(keys) == 1 and keys[0].endswith(".asc"), keys
    assert "gpgkey=file://%s/%s\n" % (KEY_DIR, keys[0]) in repo, repo
    assert rpm_q(server, "vector").out == "0.50.0-1", "Vector is not the RPM from the mirror"
    assert rpm_q(server, "certbot").rc == 0 and rpm_q(server, "epel-release").rc == 0, "certbot not from EPEL"
    assert server.is_active("certbot-renew.timer"), "EPEL's renewal timer is not running: no renewal"
    assert "4096/tcp" in firewalld_ports(server), firewalld_ports(server)
    bundle = app.take_bundle(server, FIRST)
    app.metrics(STANDALONE_URL, bundle)
    app.refused(STANDALONE_URL)

    # a re-run with the same variables: nothing changes, Vector keeps its PID
    pid = main_pid(server)
    r, summary = rhel_install(harness, server, MTLS)
    assert_no_changes(server, summary, pid)

    # revocation through the kept `actvt` command
    r = server.exec([MTLS_DIR + "/generate-client.sh", SECOND])
    assert r.rc == 0, r
    second = app.take_bundle(server, SECOND)
    app.metrics(STANDALONE_URL, second)
    r = server.exec(["actvt", "client", "revoke", SECOND, "--yes"])
    assert r.rc == 0, r
    wait_until(lambda: main_pid(server) != pid, what="Vector restarted after the CA rotation")
    first = app.take_bundle(server, FIRST, as_name=FIRST + "-reissued")
    wait_until(lambda: app.ws(STANDALONE_URL, first, count=1).rc == 0, what="the re-issued client connects")
    app.refused(STANDALONE_URL, second)

    # proxy mode on the same server: nginx from AppStream, the family's conf.d layout
    r, summary = rhel_install(harness, server, dict(MTLS, ACTVT_INSTALL_MODE="proxy"))
    assert summary["status"] == "ok" and summary["mode"] == "proxy", summary
    assert rpm_q(server, "nginx").rc == 0, "nginx is not the RPM from AppStream"
    assert server.exists("/etc/nginx/conf.d/actvt-vector.conf"), server.sh(["ls", "/etc/nginx/conf.d"]).out
    assert server.is_active("nginx")
    # the certificate from standalone mode renews through nginx's webroot now (issue 21: the renewal
    # file kept `authenticator = standalone`, and every renewal failed once nginx held port 80); this
    # certbot is older than 2.3 (no `reconfigure`), so the switch re-issued it with --webroot
    renewed = [a for a in summary["actions"] if a["action"].startswith("run certbot renew --dry-run")]
    assert renewed and renewed[0]["status"] == "changed" and "failed" not in (renewed[0]["why"] or ""), renewed
    conf = "/etc/letsencrypt/renewal/%s.conf" % H.DOMAIN
    assert server.exec(["grep", "-qx", "authenticator = webroot", conf]).rc == 0, "renewal still not by webroot"
    app.metrics(PROXY_URL, first)
    app.refused(PROXY_URL)
    assert "443/tcp" in firewalld_ports(server), firewalld_ports(server)

    # uninstall with the kept command (--remove-vector: the package and its repository go)
    r = server.exec(["actvt", "uninstall", "--remove-vector"], timeout=300)
    assert r.rc == 0, r
    assert rpm_q(server, "vector").rc != 0, "Vector's package is still installed"
    assert not server.exists("/usr/local/bin/actvt")
    assert sorted(firewalld_ports(server)) == sorted(ports_before)
    assert firewalld_permanent(server) == firewalld_before
    diff = H.diff_snapshots(before, server.snapshot(FAMILY_ROOTS))
    # EPEL's repository and key stay (epel-release is a package of the distribution, kept like certbot)
    diff["added"] = [p for p in diff["added"] if p not in (
        "/etc/yum.repos.d/epel.repo", KEY_DIR + "/RPM-GPG-KEY-EPEL-9")]
    assert diff == {"added": [], "removed": [], "changed": []}, diff
    print("rocky9 scenario: %.0f s" % (time.time() - started))


def test_amzn2023_wrong_key_then_another_dnf_holds_its_locks(harness, rhel_server):
    started = time.time()
    server = rhel_server("amzn2023")
    server.trust_acme_ca()
    env = H.rhel_env(harness, {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL})

    # a key that is not the pinned one: refused before anything is written
    roots = H.snapshot_roots(server.planned_paths(env))
    assert "/etc" in roots, roots  # the .repo file and the keyring (/etc/yum.repos.d, /etc/pki/rpm-gpg)
    before = server.snapshot(roots)
    wrong = dict(env, ACTVT_VECTOR_KEY_URL=H.RPM_MIRROR_URL + "/wrong-key.asc")
    r = server.run_installer("--yes", env=wrong)
    assert r.rc == 1, r
    wrong_fpr = harness.rpm_mirror_host.read_text("/srv/rpm/wrong-key.fpr").strip()
    assert ("refused the key from %s/wrong-key.asc: its fingerprint %s is not one of the pinned %s"
            % (H.RPM_MIRROR_URL, wrong_fpr, harness.vector_rpm_key_fingerprint)) in r.out, r
    assert "running the installer again is safe" in r.out, r
    assert H.diff_snapshots(before, server.snapshot(roots)) == {"added": [], "removed": [], "changed": []}

    # another dnf holds its locks for longer than the bound
    holder = hold_dnf(server, seconds=60)
    r = server.run_installer("--yes", env=dict(env, ACTVT_PACKAGE_LOCK_TIMEOUT="3"))
    assert r.rc == 1, r
    waits = WAIT_LINE.findall(r.out)
    assert len(waits) == 1 and re.match(r"(dnf|python3) \(pid \d+\) holds /var/lib/(dnf/rpmdb_lock.pid|rpm/.rpm.lock)"
                                        r"; waiting for it, at most 3 s \(ACTVT_PACKAGE_LOCK_TIMEOUT\)$", waits[0]), r
    assert "another package manager still holds its lock after 3 s" in r.out, r
    assert "running the installer again is safe" in r.out, r
    assert rpm_q(server, "vector").rc != 0, "Vector was installed after all"
    assert not server.exists(YUM_REPO), "the failed run left its repository file"
    server.sh(["pkill", "-P", str(holder)], check=False)
    server.sh("kill %d; while kill -0 %d 2>/dev/null; do sleep 0.2; done" % (holder, holder), check=False)

    # the re-run waits for a dnf that finishes, and completes
    server.sh(["rpm", "-e", "actvt-test-slow"], check=False)
    holder = hold_dnf(server, seconds=15)
    waited_from = time.time()
    r = server.run_installer("--yes", env=env)
    assert r.rc == 0, r
    assert len(WAIT_LINE.findall(r.out)) == 1, r
    assert "Installation complete" in r.out, r
    assert time.time() - waited_from >= 10
    assert rpm_q(server, "actvt-test-slow").rc == 0, "the other dnf's transaction did not complete"
    assert server.unit("vector.service")["ActiveState"] == "active"
    assert rpm_q(server, "certbot").rc == 0 and rpm_q(server, "epel-release").rc != 0, "EPEL on Amazon Linux 2023"
    print("amzn2023 scenario: %.0f s" % (time.time() - started))


def rpm_keys(server):
    """The fingerprints of the keys rpm trusts (the installer's own probe and parser)."""
    r = server.exec(list(rpmkeys.TRUSTED.argv))
    found = rpmkeys.parse_trusted(ProbeResult(r.rc, r.out + r.err))
    assert found is not None, r
    return set(found)


def key_file_fingerprints(server, path):
    return {cert.fingerprint for cert in openpgp.certificates(server.read_file(path))}


def family_scenario(harness, server, system, env, url, before_keys, rerun=True):
    """Install (the pipe), metrics with the bundle's certificate and refused without, a re-run that
    changes nothing, uninstall --remove-vector; returns rpm's trusted keys while installed."""
    ports_before = firewalld_ports(server)
    firewalld_before = firewalld_permanent(server)
    before = server.snapshot(FAMILY_ROOTS)
    app = App(harness, "rhel-" + system)
    r, summary = rhel_install(harness, server, env)
    assert summary["status"] == "ok" and summary["mtls"] is True, summary
    assert url in r.err, r
    assert rpm_q(server, "vector").out == "0.50.0-1", "Vector is not the RPM from the mirror"
    installed_keys = rpm_keys(server)
    assert harness.vector_rpm_key_fingerprint in installed_keys, "rpm does not trust Vector's key"
    app.metrics(url, app.take_bundle(server, FIRST))
    app.refused(url)
    if rerun:
        pid = main_pid(server)
        r, summary = rhel_install(harness, server, env)
        assert_no_changes(server, summary, pid)
    r = server.exec(["actvt", "uninstall", "--remove-vector"], timeout=300)
    assert r.rc == 0, r
    assert rpm_q(server, "vector").rc != 0, "Vector's package is still installed"
    assert sorted(firewalld_ports(server)) == sorted(ports_before)
    assert firewalld_permanent(server) == firewalld_before
    diff = H.diff_snapshots(before, server.snapshot(FAMILY_ROOTS))
    # EPEL's repository and key stay (epel-release is a package of the distribution, kept like certbot)
    epel_files = ("/etc/yum.repos.d/epel", KEY_DIR + "/RPM-GPG-KEY-EPEL")
    diff["added"] = [p for p in diff["added"] if not p.startswith(epel_files)]
    assert diff == {"added": [], "removed": [], "changed": []}, diff
    assert not server.exists(rpmkeys.RECORD)
    # rpm's trusted keys: as before, plus only what dnf imported for the family's own packages (EPEL's
    # key with certbot, kept like certbot); Vector's exactly as before (removed unless the user trusted it)
    epel = set()
    for name in server.sh(["ls", KEY_DIR]).out.split():
        if name.startswith("RPM-GPG-KEY-EPEL"):
            epel |= key_file_fingerprints(server, KEY_DIR + "/" + name)
    after = rpm_keys(server)
    assert before_keys <= after and after - before_keys <= epel, (before_keys, after, epel)
    assert (harness.vector_rpm_key_fingerprint in after) == (harness.vector_rpm_key_fingerprint in before_keys)
    return installed_keys


def test_alma9_standalone_then_rocky8_proxy_rerun_uninstall_rpm_keys(harness, rhel_server):
    started = time.time()
    server = rhel_server("alma9")
    server.trust_acme_ca()
    # as on the family's images: the distribution's key is trusted before anything is installed
    server.sh(["rpm", "--import", KEY_DIR + "/RPM-GPG-KEY-actvt-test-distribution"])
    before_keys = rpm_keys(server)
    assert harness.vector_rpm_key_fingerprint not in before_keys
    # no re-run here (the CI budget): Rocky 9's scenario re-runs the same standalone mTLS dnf path
    family_scenario(harness, server, "alma9", MTLS, STANDALONE_URL, before_keys, rerun=False)
    print("alma9 part: %.0f s" % (time.time() - started))

    # Rocky 8 (dnf 4, EL8's layout) on the same server; the user trusts Vector's key already: never removed
    server.sh(["actvt-test-become", "rocky8"])
    server.sh("curl -fsS -o /tmp/vector-key.asc %s && rpm --import /tmp/vector-key.asc" % H.VECTOR_RPM_KEY_URL)
    before_keys = rpm_keys(server)
    assert harness.vector_rpm_key_fingerprint in before_keys
    family_scenario(harness, server, "rocky8", dict(MTLS, ACTVT_INSTALL_MODE="proxy"), PROXY_URL, before_keys)
    print("alma9 + rocky8 scenario: %.0f s" % (time.time() - started))


def hold_dnf(server, seconds):
    """A real `dnf install` of a package whose installation sleeps `seconds`: returns dnf's pid once its
    transaction runs (dnf and rpm hold their locks then)."""
    server.put_file("/etc/actvt-test-slow", b"%d\n" % seconds)
    server.sh(["rm", "-f", "/run/actvt-test-slow.started"])
    server.container.exec_run(["sh", "-c", "echo $$ > /run/actvt-test-dnf.pid; "
                               "exec dnf -y -q install actvt-test-slow >/run/actvt-test-dnf.log 2>&1"], detach=True)
    deadline = time.time() + 120
    while not server.exists("/run/actvt-test-slow.started"):
        assert time.time() < deadline, "the other dnf never started its transaction:\n%s" % (
            server.exec(["cat", "/run/actvt-test-dnf.log"]).out)
        time.sleep(0.2)
    return int(server.sh(["cat", "/run/actvt-test-dnf.pid"]).out)  # /run is a tmpfs: not in docker cp
