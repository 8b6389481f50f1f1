"""`actvt doctor` end to end (issue 14, items 4 and 5): on a healthy server every check passes and nothing
is written; each fault injected on the harness (Vector stopped, a key chmod-ed 0644, an expired client,
nginx broken) is named, with its fix, and exit status 1; after the fix it passes again.

Two servers, each shared by its fault cases (every fault is put right before the next): a standalone
mTLS server and one behind nginx with mTLS. Doctor runs as the kept `actvt` command, trusting Pebble's
issuing root as certbot would trust Let's Encrypt's (REQUESTS_CA_BUNDLE). Each run's output is printed
(pytest -s) for the issue's note.
"""
import datetime
import json
import time

import pytest

import harness as H
from test_wiring_e2e import App, install

from installer.concerns import pki

pytestmark = pytest.mark.e2e

MTLS = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL, "ACTVT_ENABLE_MTLS": "yes"}
MTLS_DIR = "/etc/vector/certs/mtls"
ROOTS = "/root/pebble-roots.pem"
FIRST = "actvt-client-001"


def doctor(server, label, rc, *extra):
    """`actvt doctor` as root; its output is printed under ``label``; returns (human lines, JSON report)."""
    env = {"REQUESTS_CA_BUNDLE": ROOTS, "NO_COLOR": "1"}
    r = server.exec(["actvt", "doctor"], env=env, timeout=120)
    print("\n===== actvt doctor: %s (exit %d, %.1f s)\n%s" % (label, r.rc, r.seconds, r.out.rstrip()))
    assert r.rc == rc, r
    j = server.exec(["actvt", "doctor", "--json"] + list(extra), env=env, timeout=120)
    assert j.rc == rc, j
    return r.out.splitlines(), j.json()


def failed(report):
    return {item["check"]: item for item in report["checks"] if item["level"] == "fail"}


def healthy(server, lines, report):
    assert report["failed"] == 0 and report["warnings"] == 0 and report["skipped"] == 0, lines
    assert all(line.startswith("  ✓ ") for line in lines[1:-1]), "\n".join(lines)
    assert H.EMAIL not in "\n".join(lines) and "PRIVATE KEY" not in json.dumps(report)


def wait_listening(server, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.exec("ss -Htln 'sport = :%d' | grep -q LISTEN" % port).rc == 0:
            return
        time.sleep(0.3)
    raise AssertionError("nothing listens on %d:\n%s" % (port, server.journal("vector", 30)))


def prepare(harness, server):
    server.trust_acme_ca()
    server.put_file(ROOTS, harness.pebble_issuer_pem())


def test_standalone_mtls(harness, new_server):
    server = new_server()
    prepare(harness, server)
    install(server, MTLS)
    app = App(harness, "doctor-standalone")

    # healthy: every check passes, and doctor writes nothing at all (its log neither)
    roots = H.snapshot_roots(server.written_paths() + ["/run/actvt/lock"])  # what the installer wrote, its lock
    before, log = server.snapshot(roots), server.sha256("/var/log/actvt-install.log")
    lines, report = doctor(server, "healthy standalone mTLS server", 0)
    assert H.diff_snapshots(before, server.snapshot(roots)) == {"added": [], "removed": [], "changed": []}
    assert server.sha256("/var/log/actvt-install.log") == log
    healthy(server, lines, report)
    assert lines[0] == "actvt doctor: %s, standalone, mTLS with this server's CA (wss://%s:4096)" % (H.DOMAIN, H.DOMAIN)
    checked = {item["check"] for item in report["checks"]}
    assert {"dns", "vector.service", "port", "certificate.served", "metrics", "mtls.refused", "files",
            "vector.validate", "certbot.timer", "certbot.hook", "mtls.ca", "mtls.crl", "mtls.client"} <= checked
    assert any("Metrics with %s's certificate: a metrics message arrives" % FIRST in line for line in lines), lines

    # Vector stopped
    server.sh("systemctl stop vector")
    lines, report = doctor(server, "Vector stopped", 1)
    found = failed(report)
    assert found["vector.service"]["text"].startswith("Vector: inactive")
    assert found["vector.service"]["fix"].startswith("sudo systemctl restart vector")
    assert "nothing answers on 127.0.0.1:4096" in found["port"]["text"]
    server.sh("systemctl start vector")
    wait_listening(server, 4096)
    doctor(server, "Vector started again", 0)

    # the TLS key chmod-ed 0644
    server.sh("chmod 0644 /etc/vector/certs/server.key")
    lines, report = doctor(server, "server.key chmod-ed 0644", 1)
    assert list(failed(report)) == ["files"]
    assert failed(report)["files"]["text"] == (
        "Files: /etc/vector/certs/server.key is 0644 root:vector; the installer makes it 0640 root:vector (a private "
        "key readable by more users than it should be)")
    server.sh(failed(report)["files"]["fix"].replace("sudo ", ""))
    doctor(server, "after the fix it names", 0)

    # an expired client: a certificate of this server's CA that ended ten days ago
    ca_key = pki.load_key(server.read_file(MTLS_DIR + "/ca.key"))
    ca_cert = pki.load_cert(server.read_file(MTLS_DIR + "/ca.crt"))
    key, cert = pki.issue_client(ca_cert, ca_key, "old-laptop", 30, "rsa",
                                 now=pki.now_utc() - datetime.timedelta(days=40))
    server.put_file(MTLS_DIR + "/clients/old-laptop.crt", pki.cert_pem(cert), mode=0o644)
    server.put_file(MTLS_DIR + "/clients/old-laptop.key", pki.key_pem(key), mode=0o600)
    lines, report = doctor(server, "an expired client", 1)
    assert list(failed(report)) == ["mtls.client"]
    expired = failed(report)["mtls.client"]
    assert expired["text"].startswith("client old-laptop: expired on ")
    assert expired["fix"].startswith("sudo actvt client renew old-laptop")
    # the fix: renew it (same name and key type; the old one recorded as replaced), then the app connects
    r = server.exec(["actvt", "client", "renew", "old-laptop"])
    assert r.rc == 0, r
    assert "⚠ the previous certificate of old-laptop stays valid until" in r.out, r
    index = json.loads(server.read_text(MTLS_DIR + "/index.json"))
    assert [e["status"] for e in index["certificates"] if e["name"] == "old-laptop"] == ["replaced", "active"]
    app.metrics("wss://%s:4096" % H.DOMAIN, app.take_bundle(server, "old-laptop"), count=1)
    doctor(server, "after actvt client renew old-laptop", 0)


def test_proxy_mtls(harness, new_server):
    server = new_server()
    prepare(harness, server)
    install(server, dict(MTLS, ACTVT_INSTALL_MODE="proxy"))

    lines, report = doctor(server, "healthy mTLS server behind nginx", 0)
    healthy(server, lines, report)
    assert lines[0] == "actvt doctor: %s, proxy, mTLS with this server's CA (wss://%s/actvt)" % (H.DOMAIN, H.DOMAIN)
    by = {item["check"]: item for item in report["checks"]}
    assert by["mtls.refused"]["text"] == ("Without a client certificate: https://127.0.0.1:443/actvt answers 496 (nginx "
                                          "sends it as 400 'No required SSL certificate was sent'), as it should")
    assert by["nginx.config"]["level"] == "pass" and by["metrics.upstream"]["level"] == "pass"

    # nginx broken by a file of someone else's: named, with what to correct
    server.put_file("/etc/nginx/conf.d/broken.conf", b"this is not nginx;\n")
    lines, report = doctor(server, "nginx broken", 1)
    assert list(failed(report)) == ["nginx.config"]
    assert "/etc/nginx/conf.d/broken.conf" in failed(report)["nginx.config"]["text"]
    assert failed(report)["nginx.config"]["fix"] == ("correct /etc/nginx/conf.d/broken.conf, then: sudo nginx -t && "
                                                     "sudo systemctl reload nginx")
    server.sh("rm /etc/nginx/conf.d/broken.conf")

    # Vector stopped behind nginx: nginx answers, the hop does not
    server.sh("systemctl stop vector")
    lines, report = doctor(server, "Vector stopped behind nginx", 1)
    found = failed(report)
    assert {"vector.service", "metrics", "port.upstream"} <= set(found), found
    assert "HTTP 502" in found["metrics"]["text"]
    server.sh("systemctl start vector")
    wait_listening(server, 4096)
    doctor(server, "Vector started again behind nginx", 0)
