"""Service wiring proven end to end (issue 5, item 10): each scenario runs the installer as a user does
(`curl -fsSL http://mirror/install.pyz | python3 - --yes --json`) on a fresh systemd server and asserts what
the user observes: the Actvt app's connection (wsclient, curl, openssl from the client container), HTTP
codes, files and modes, systemd state, the JSON summary and the log.

Scenarios that naturally continue share one server (install -> re-run -> generate-client -> renew ->
revoke), to keep the file's run time within the CI budget. The scenario that stops Pebble runs last:
Pebble forgets its accounts and changes its issuing root when it restarts.
"""
import json
import re
import shlex
import time

import pytest

import harness as H

pytestmark = pytest.mark.e2e

ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}
MTLS = dict(ENV, ACTVT_ENABLE_MTLS="yes")
STANDALONE_URL = "wss://%s:4096" % H.DOMAIN
PROXY_URL = "wss://%s/actvt" % H.DOMAIN
MTLS_DIR = "/etc/vector/certs/mtls"
FIRST = "actvt-client-001"
SECOND = "actvt-client-002"
LIVE = "/etc/letsencrypt/live/%s" % H.DOMAIN
NO_CERT_400 = "No required SSL certificate was sent"  # nginx's page for `return 496`
BAD_CERT_400 = "The SSL certificate error"  # nginx 495: revoked, or signed by another CA

OTHER_CA_SETUP = """
set -e
mkdir -p /tmp/other-ca && cd /tmp/other-ca
[ -s client.crt ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=Actvt-CA/O=Actvt/C=US 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=%s/O=Actvt 2>/dev/null
printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > ext.cnf
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out client.crt -extfile ext.cnf 2>/dev/null
""" % FIRST


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def install(server, env, rc=0, timeout=900):
    """The installer with --yes --json; returns (Result, summary)."""
    r = server.run_installer("--yes", "--json", env=env, timeout=timeout)
    assert r.rc == rc, r
    try:
        summary = r.json()
    except ValueError:
        raise AssertionError("--json printed no JSON:\n%s" % r)
    return r, summary


def changed_actions(summary):
    return [a for a in summary["actions"] if a["status"] == "changed"]


def assert_no_changes(server, summary, pid_before):
    assert summary["status"] == "ok", summary
    assert summary["changed"] == 0, "a re-run with the same variables changed: %s" % changed_actions(summary)
    assert server.unit("vector.service")["MainPID"] == pid_before, "Vector was restarted by a no-change re-run"


def main_pid(server):
    pid = server.unit("vector.service")["MainPID"]
    assert pid not in ("", "0"), server.unit("vector.service")
    return pid


def assert_vector_up(server):
    unit = server.unit("vector.service")
    assert unit["ActiveState"] == "active" and unit["UnitFileState"] == "enabled", unit
    r = server.exec(["vector", "validate", "/etc/vector/vector.toml"])
    assert r.rc == 0, r
    assert "VECTOR_CONFIG=/etc/vector/vector.toml" in server.read_text("/etc/default/vector")


def step_seconds(summary):
    return sum(s.get("seconds", 0) if isinstance(s, dict) else s[-1] for s in summary["steps"])


class App:
    """The user's Mac, as the client container: trusts Pebble's root, holds bundles taken from a server."""

    def __init__(self, harness, tag):
        self.harness, self.host, self.dir = harness, harness.client_host, "/tmp/app-%s" % tag
        self.host.sh("rm -rf %s && mkdir -p %s" % (self.dir, self.dir))
        self.refresh_root()

    def refresh_root(self):
        self.host.put_file(self.dir + "/root.pem", self.harness.pebble_issuer_pem())

    def take_bundle(self, server, name, as_name=None):
        """scp + tar -xzf as docs/mtls.md says: <dir>/<as_name>/clients/<name>.{crt,key}."""
        dest = "%s/%s" % (self.dir, as_name or name)
        data = server.read_file("%s/%s-bundle.tar.gz" % (MTLS_DIR, name))
        self.host.put_file(dest + "/bundle.tar.gz", data, mode=0o600)
        self.host.sh("cd %s && tar -xzf bundle.tar.gz && test -s clients/%s.crt && test -s clients/%s.key"
                     % (dest, name, name))
        return ("%s/clients/%s.crt" % (dest, name), "%s/clients/%s.key" % (dest, name))

    def other_ca_cert(self):
        self.host.sh(OTHER_CA_SETUP)
        return ("/tmp/other-ca/client.crt", "/tmp/other-ca/client.key")

    def ws(self, url, cert=None, count=2, timeout=15):
        argv = ["wsclient", url, "--ca", self.dir + "/root.pem", "--count", str(count), "--timeout", str(timeout)]
        if cert:
            argv += ["--cert", cert[0], "--key", cert[1]]
        return self.host.exec(argv, timeout=timeout + 30)

    def metrics(self, url, cert=None, count=3):
        r = self.ws(url, cert, count)
        assert r.rc == 0, "the app could not read metrics from %s:\n%s" % (url, r)
        messages = [json.loads(line) for line in r.out.splitlines()]
        assert len(messages) == count and all("metric_type" in m and m.get("host") for m in messages), r
        return messages

    def refused(self, url, cert=None):
        r = self.ws(url, cert, count=1, timeout=8)
        assert r.rc == 1, "connected to %s although it should be refused (cert %s):\n%s" % (url, cert, r)
        return r

    def curl(self, url, cert=None):
        """(HTTP code, body) of a WebSocket upgrade request."""
        argv = ["curl", "-sS", "--max-time", "10", "--cacert", self.dir + "/root.pem", "-o", "/tmp/curl-body",
                "-w", "%{http_code}", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", url]
        if cert:
            argv[1:1] = ["--cert", cert[0], "--key", cert[1]]
        r = self.host.exec(" ".join(shlex.quote(a) for a in argv) + "; echo; cat /tmp/curl-body 2>/dev/null")
        code, _, body = r.out.partition("\n")
        return code.strip(), body

    def served_fingerprint(self, host_port, cert=None):
        """SHA-256 fingerprint of the certificate the server presents (what the app sees)."""
        opts = ("-cert %s -key %s" % cert) if cert else ""
        r = self.host.exec("openssl s_client -connect %s -servername %s %s </dev/null 2>/dev/null "
                           "| openssl x509 -noout -fingerprint -sha256" % (host_port, H.DOMAIN, opts))
        assert "Fingerprint=" in r.out, r
        return r.out.strip().split("=", 1)[1]


def server_fingerprint(server, path=LIVE + "/cert.pem"):
    return server.sh(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"]).out.strip().split("=", 1)[1]


def assert_mtls_files(server, names=(FIRST,)):
    expect = {MTLS_DIR + "/ca.crt": (0o644, "root"), MTLS_DIR + "/ca.key": (0o600, "root"),
              MTLS_DIR + "/generate-client.sh": (0o755, "root")}
    for name in names:
        expect.update({"%s/clients/%s.crt" % (MTLS_DIR, name): (0o644, "root"),
                       "%s/clients/%s.key" % (MTLS_DIR, name): (0o600, "root"),
                       "%s/%s-bundle.tar.gz" % (MTLS_DIR, name): (0o600, "root")})
    for path, (mode, owner) in expect.items():
        info = server.stat(path)
        assert info is not None, "%s is missing" % path
        assert (info.mode, info.owner) == (mode, owner), info
    for path, mode in (("/etc/vector/certs/server.crt", 0o644), ("/etc/vector/certs/server.key", 0o640)):
        info = server.stat(path)
        assert info is not None and info.mode == mode, (path, info)


def wait_until(predicate, timeout=20, interval=0.5, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


@pytest.fixture(scope="module")
def timings():
    found = {}
    yield found
    if found:
        print("\nstandalone mTLS install timings: " + json.dumps(found))


# ------------------------------------------------------------------------------------------------
# standalone mTLS: install, re-run, generate-client.sh, certbot renew, revocation (Debian 12)
# ------------------------------------------------------------------------------------------------
def test_standalone_mtls_lifecycle(harness, new_server, timings):
    server = new_server()
    server.trust_acme_ca()
    app = App(harness, "standalone-mtls")

    # first install
    r, summary = install(server, MTLS)
    assert summary["status"] == "ok" and summary["mode"] == "standalone" and summary["mtls"] is True, summary
    assert summary["url"] == STANDALONE_URL
    timings["first_run_wall_s"] = round(r.seconds, 1)
    timings["first_run_steps_s"] = round(step_seconds(summary), 1)
    timings["first_run_steps"] = summary["steps"]
    assert "Installation complete" in r.err and STANDALONE_URL in r.err, r
    assert "%s-bundle.tar.gz" % FIRST in r.err, "the summary names no bundle to download:\n%s" % r.err
    assert_vector_up(server)
    assert_mtls_files(server)
    toml = server.read_text("/etc/vector/vector.toml")
    assert 'address = "0.0.0.0:4096"' in toml and "verify_certificate = true" in toml, toml
    assert "sources.gpu" not in toml, "GPU sources without a GPU"
    state = server.read_text("/var/lib/actvt/install.state")
    assert "mode=standalone" in state and "mtls=enabled" in state and "mtls_client_cn=%s" % FIRST in state, state
    assert server.stat("/var/lib/actvt").mode == 0o700
    log = server.installer_log()
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[INFO\] ", log, re.M), log[:500]
    assert H.EMAIL not in log, "the log holds the e-mail in full"
    assert server.stat("/var/log/actvt-install.log").mode == 0o644

    # the app: with the bundle it receives metrics; without a certificate, or with another CA's, refused
    first_bundle = app.take_bundle(server, FIRST)
    app.metrics(STANDALONE_URL, first_bundle)
    app.refused(STANDALONE_URL)
    app.refused(STANDALONE_URL, app.other_ca_cert())
    served = app.served_fingerprint(H.DOMAIN + ":4096", first_bundle)
    assert served == server_fingerprint(server)

    # re-run with the same variables: zero changes, Vector not restarted
    pid = main_pid(server)
    r, summary = install(server, MTLS)
    timings["rerun_wall_s"] = round(r.seconds, 1)
    timings["rerun_steps_s"] = round(step_seconds(summary), 1)
    assert_no_changes(server, summary, pid)
    assert "Nothing to change" in r.err, r

    # actvt status (the kept command, no variables): service, URL, certificate dates, nothing to re-run
    r = server.exec(["actvt", "status", "--json"])
    assert r.rc == 0, r
    status = json.loads(r.out)
    assert status["service"] == {"active": "active", "enabled": "enabled", "main_pid": str(pid)}, status
    assert status["url"] == "wss://%s:4096" % H.DOMAIN and status["mtls"] is True
    assert status["certificates"]["server"]["days_left"] > 0 and status["certificates"]["ca"]["days_left"] > 3000
    assert status["rerun"] == {"changes": []}, status
    assert main_pid(server) == pid

    # generate-client.sh actvt-client-002: the lines of docs/mtls.md, then that client connects
    r = server.exec([MTLS_DIR + "/generate-client.sh", SECOND])
    assert r.rc == 0, r
    for line in ("Generating client certificate: %s" % SECOND, "Certificate validity: 365 days",
                 "✓ Client certificate generated successfully",
                 "✓ Bundle: %s/%s-bundle.tar.gz" % (MTLS_DIR, SECOND)):
        assert line in r.out, r
    assert_mtls_files(server, (FIRST, SECOND))
    second_bundle = app.take_bundle(server, SECOND)
    app.metrics(STANDALONE_URL, second_bundle)
    app.metrics(STANDALONE_URL, first_bundle)
    assert main_pid(server) == pid, "issuing a client restarted Vector"

    # certbot renew --force-renewal: the deploy hook restarts Vector, the app sees the new certificate
    old = server_fingerprint(server)
    r = server.exec(["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew"], timeout=300)
    assert r.rc == 0, r
    new = server_fingerprint(server)
    assert new != old
    wait_until(lambda: main_pid(server) != pid, what="the deploy hook's restart of Vector")
    wait_until(lambda: server.is_active("vector.service"), what="vector active after the renewal")
    assert server_fingerprint(server, "/etc/vector/certs/server.crt") == new
    assert server.stat("/etc/vector/certs/server.key").mode == 0o640
    wait_until(lambda: app.ws(STANDALONE_URL, first_bundle, count=1).rc == 0, what="Vector back after renewal")
    assert app.served_fingerprint(H.DOMAIN + ":4096", first_bundle) == new

    # revoke actvt-client-002: Vector reads no CRL, so the CA is rotated and the others re-issued
    pid = main_pid(server)
    r = server.exec(["actvt", "client", "revoke", SECOND])
    assert r.rc != 0 and "--yes" in (r.out + r.err), "revoked without confirmation:\n%s" % r
    assert main_pid(server) == pid
    r = server.exec(["actvt", "client", "revoke", SECOND, "--yes"])
    assert r.rc == 0, r
    assert "%s-bundle.tar.gz" % FIRST in r.out, "revoke does not list the bundles to hand out again:\n%s" % r
    assert not server.exists("%s/%s-bundle.tar.gz" % (MTLS_DIR, SECOND))
    wait_until(lambda: main_pid(server) != pid, what="Vector restarted after the CA rotation")
    assert_vector_up(server)
    assert_mtls_files(server)
    new_first = app.take_bundle(server, FIRST, as_name=FIRST + "-reissued")
    wait_until(lambda: app.ws(STANDALONE_URL, new_first, count=1).rc == 0, what="the re-issued client connects")
    app.metrics(STANDALONE_URL, new_first)
    app.refused(STANDALONE_URL, second_bundle)
    app.refused(STANDALONE_URL, first_bundle)  # the old CA is gone: old bundles are replaced
    r = server.exec(["actvt", "client", "list"])
    assert re.search(r"%s\s.*revoked" % SECOND, r.out), r

    # and the installer, re-run, agrees with what revoke did
    pid = main_pid(server)
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, pid)


# ------------------------------------------------------------------------------------------------
# standalone TLS, GPU absent then present, mTLS switched on then off (one server)
# ------------------------------------------------------------------------------------------------
def test_standalone_tls_gpu_and_mtls_switch(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    app = App(harness, "standalone-tls")

    r, summary = install(server, ENV)
    assert summary["mode"] == "standalone" and summary["mtls"] is False and summary["url"] == STANDALONE_URL
    assert "mTLS is off" in r.err, r
    assert_vector_up(server)
    toml = server.read_text("/etc/vector/vector.toml")
    assert "verify_certificate" not in toml and "nvidia-smi" not in toml
    assert not server.exists(MTLS_DIR)
    messages = app.metrics(STANDALONE_URL, count=5)
    assert not any(m["metric_type"].startswith("gpu_") for m in messages)

    # GPU present: an nvidia-smi test double on PATH -> GPU sources, validate passes, GPU messages flow,
    # even though each query takes 1.5 s (a scheduled command with a 1 s interval would be killed)
    server.install_nvidia_smi_double(delay=1.5)
    pid = main_pid(server)
    r, summary = install(server, ENV)
    assert [a["target"] for a in changed_actions(summary) if a["type"] == "file"] == ["/etc/vector/vector.toml"], \
        changed_actions(summary)
    toml = server.read_text("/etc/vector/vector.toml")
    assert "[sources.gpu_metrics]" in toml and "nvidia-smi" in toml, toml
    assert_vector_up(server)
    assert main_pid(server) != pid, "vector.toml changed but Vector was not restarted"
    wait_until(lambda: app.ws(STANDALONE_URL, count=1).rc == 0, what="Vector back")
    # three samples of the seven GPU messages: one nvidia-smi keeps sampling (2.5 s a sample here)
    r = app.host.exec(["wsclient", STANDALONE_URL, "--ca", app.dir + "/root.pem", "--match", "gpu_",
                       "--count", "21", "--within", "40"], timeout=70)
    assert r.rc == 0, r
    gpu = [json.loads(line) for line in r.out.splitlines()]
    assert {m["metric_type"] for m in gpu} == {"gpu_utilization", "gpu_memory", "gpu_temperature", "gpu_clocks",
                                               "gpu_power", "gpu_encoder_decoder", "gpu_fan_pstate"}, r.out
    assert all(m["gpu_name"] == "NVIDIA TEST DOUBLE GPU" for m in gpu)
    assert {m["value"] for m in gpu if m["metric_type"] == "gpu_utilization"} == {37.0}
    assert all(m["fan_speed"] == 0.0 for m in gpu if m["metric_type"] == "gpu_fan_pstate")  # [N/A] reads 0

    # ACTVT_ENABLE_GPU=no removes them again
    r, summary = install(server, dict(ENV, ACTVT_ENABLE_GPU="no"))
    assert "nvidia-smi" not in server.read_text("/etc/vector/vector.toml")
    assert "GPU metrics are off" in r.err, r
    env = dict(ENV, ACTVT_ENABLE_GPU="no")

    # mTLS switched on: Vector is restarted (its TLS settings are read at start only)
    pid = main_pid(server)
    r, summary = install(server, dict(env, ACTVT_ENABLE_MTLS="yes"))
    assert summary["mtls"] is True
    assert_vector_up(server)
    assert main_pid(server) != pid, "mTLS was switched on but Vector was not restarted"
    assert_mtls_files(server)
    wait_until(lambda: app.ws(STANDALONE_URL, count=1).rc == 1, what="Vector requiring client certificates")
    app.refused(STANDALONE_URL)
    app.metrics(STANDALONE_URL, app.take_bundle(server, FIRST))

    # ... and off again (explicitly: a variable not given keeps the earlier install's value): anyone
    # connects, the CA is left in place (not deleted)
    pid = main_pid(server)
    r, summary = install(server, dict(env, ACTVT_ENABLE_MTLS="no"))
    assert summary["mtls"] is False
    assert main_pid(server) != pid, "mTLS was switched off but Vector was not restarted"
    restarted = [a for a in changed_actions(summary) if a["type"] == "service" and a["target"] == "vector"]
    assert restarted and "restart" in restarted[0]["why"], changed_actions(summary)
    assert "verify_certificate" not in server.read_text("/etc/vector/vector.toml")
    assert "mtls=disabled" in server.read_text("/var/lib/actvt/install.state")
    assert server.exists(MTLS_DIR + "/ca.key")
    wait_until(lambda: app.ws(STANDALONE_URL, count=1).rc == 0, what="Vector without client certificates")
    app.metrics(STANDALONE_URL)


# ------------------------------------------------------------------------------------------------
# the standalone mTLS case on Debian 11 and 13 (12 is the lifecycle above)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", ["bullseye", "trixie"])
def test_standalone_mtls_on_debian(harness, new_server, suite):
    server = new_server(suite=suite)
    server.trust_acme_ca()
    app = App(harness, "mtls-" + suite)
    r, summary = install(server, MTLS)
    assert summary["status"] == "ok" and summary["mode"] == "standalone"
    assert_vector_up(server)
    assert_mtls_files(server)
    app.metrics(STANDALONE_URL, app.take_bundle(server, FIRST))
    app.refused(STANDALONE_URL)
    app.refused(STANDALONE_URL, app.other_ca_cert())
    pid = main_pid(server)
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, pid)
    if suite == "trixie":
        switch_modes_keeping_the_certificate(server, app)


RENEWAL_CONF = "/etc/letsencrypt/renewal/%s.conf" % H.DOMAIN


def renews_with(server):
    """authenticator and the domain's webroot of certbot's renewal file, read with certbot's ConfigObj: the
    webroot_map entry, else the last webroot_path (certbot's webroot plugin; `reconfigure -w` writes no map)."""
    script = ("import configobj; c = configobj.ConfigObj(%r)['renewalparams']; p = c.get('webroot_path') or ['-']; "
              "p = [p] if isinstance(p, str) else p; "
              "print(c['authenticator'], c.get('webroot_map', {}).get(%r, p[-1]))" % (RENEWAL_CONF, H.DOMAIN))
    return server.exec(["python3", "-c", script]).out.split()


def assert_renewal_check_passed(summary):
    """The installer's own `certbot renew --dry-run` (what certbot.timer runs, here against Pebble) ran in
    this run and passed: a failure only warns, so the summary is where it shows."""
    renewed = [a for a in summary["actions"] if a["action"].startswith("run certbot renew --dry-run")]
    assert renewed and renewed[0]["status"] == "changed" and "failed" not in (renewed[0]["why"] or ""), renewed


def switch_modes_keeping_the_certificate(server, app):
    """Issue 21: standalone -> proxy -> standalone (nginx stopped first) with the certificate reused:
    each switch changes how certbot renews it (certbot >= 2.3: `reconfigure`, the certificate kept)."""
    cert = server.sha256(LIVE + "/cert.pem")
    assert renews_with(server) == ["standalone", "-"]
    r, summary = install(server, dict(MTLS, ACTVT_INSTALL_MODE="proxy"))
    assert summary["mode"] == "proxy"
    assert_renewal_check_passed(summary)  # before the fix: "Could not bind TCP port 80"
    assert renews_with(server) == ["webroot", "/var/www/html"]
    switched = [a["action"] for a in changed_actions(summary) if a["action"].startswith("run certbot reconfigure")]
    assert switched and "--webroot" in switched[0], changed_actions(summary)
    assert server.sha256(LIVE + "/cert.pem") == cert, "reconfigure re-issued the certificate"
    app.metrics(PROXY_URL, app.take_bundle(server, FIRST))
    pid = main_pid(server)
    r, summary = install(server, dict(MTLS, ACTVT_INSTALL_MODE="proxy"))
    assert_no_changes(server, summary, pid)

    # back to standalone, nginx stopped by its admin first (port 80 free for certbot --standalone)
    server.sh("systemctl stop nginx")
    # --dry-run shows the switch and changes nothing
    r = server.run_installer("--yes", "--json", "--dry-run", env=dict(MTLS, ACTVT_INSTALL_MODE="standalone"))
    shown = [a for a in r.json()["actions"] if a["action"].startswith("run certbot reconfigure")]
    assert r.rc == 0 and shown and shown[0]["status"] == "would change" and "--standalone" in shown[0]["action"], r
    assert renews_with(server)[0] == "webroot"
    r, summary = install(server, dict(MTLS, ACTVT_INSTALL_MODE="standalone"))
    assert summary["mode"] == "standalone"
    assert_renewal_check_passed(summary)
    assert renews_with(server)[0] == "standalone"
    assert not server.is_active("nginx"), "the installer started the nginx its admin had stopped"
    app.metrics(STANDALONE_URL, app.take_bundle(server, FIRST))
    pid = main_pid(server)
    r, summary = install(server, dict(MTLS, ACTVT_INSTALL_MODE="standalone"))
    assert_no_changes(server, summary, pid)


# ------------------------------------------------------------------------------------------------
# proxy mode, nginx already serving another site: dedicated server block; mTLS, a second client,
# revocation through the CRL (an open WebSocket is closed), then mTLS off (TLS only)
# ------------------------------------------------------------------------------------------------
# another local user's process on Vector's port while Vector is down: TLS with a certificate of its own
# for the domain; it notes every byte a client sends it and answers IMPOSTOR
IMPOSTOR = r"""
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tmp/impostor/cert.pem", "/tmp/impostor/key.pem")
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 4096))
sock.listen(16)
open("/tmp/impostor/ready", "w").close()
while True:
    conn, _ = sock.accept()
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        data = tls.recv(65536)  # b"": the client closed (TLS 1.3: it checks our certificate after we finish)
        if data:
            with open("/tmp/impostor/seen", "ab") as seen:
                seen.write(data)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nIMPOSTOR")
        tls.close()
    except (OSError, ssl.SSLError) as exc:
        with open("/tmp/impostor/errors", "a") as errors:
            errors.write(repr(exc) + "\n")
"""


def assert_impostor_gets_no_client(server, app, cert=None):
    """Vector stopped (and the health timer, which would start it), IMPOSTOR on its port as uid 65534:
    the front verifies the upstream's certificate, so a client gets a 5xx, never the impostor's bytes,
    and the impostor none of the client's. Then Vector is back and the app connects."""
    started = time.time()
    server.sh("systemctl stop actvt-vector-health.timer vector && mkdir -p /tmp/impostor && cd /tmp/impostor && "
              "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN={d} -addext subjectAltName=DNS:{d} "
              "-keyout key.pem -out cert.pem 2>/dev/null && chown -R 65534:65534 /tmp/impostor".format(d=H.DOMAIN))
    server.put_file("/tmp/impostor/serve.py", IMPOSTOR.encode())
    server.sh("systemd-run -q --unit actvt-impostor --uid 65534 --gid 65534 python3 /tmp/impostor/serve.py")
    wait_until(lambda: server.exists("/tmp/impostor/ready"), what="the impostor to listen on 127.0.0.1:4096")
    code, body = app.curl("https://%s/actvt" % H.DOMAIN, cert)
    assert code.startswith("5") and "IMPOSTOR" not in body, (code, body)
    assert app.ws(PROXY_URL, cert, count=1, timeout=8).rc == 1
    assert not server.exists("/tmp/impostor/seen"), server.read_text("/tmp/impostor/seen")
    print("impostor on Vector's port: the client got %s; what the impostor saw: %s" % (
        code, server.sh("head -c 200 /tmp/impostor/errors", check=False).out.strip()))
    server.sh("systemctl stop actvt-impostor && rm -rf /tmp/impostor && systemctl start vector actvt-vector-health.timer")
    wait_until(lambda: app.ws(PROXY_URL, cert, count=1).rc == 0, what="the app to connect again")
    print("impostor check: %.1f s" % (time.time() - started))


def start_background_ws(app, url, cert, tag):
    """A long-lived connection of the app (as an open dashboard); returns the files it writes."""
    out, rc = "/tmp/%s.out" % tag, "/tmp/%s.rc" % tag
    cmd = "wsclient %s --ca %s/root.pem --cert %s --key %s --count 100000 --timeout 30" % (
        url, app.dir, cert[0], cert[1])
    app.host.sh("rm -f %s %s; nohup sh -c '%s > %s 2>&1; echo $? > %s' >/dev/null 2>&1 &" % (out, rc, cmd, out, rc))
    wait_until(lambda: app.host.exec("test -s %s" % out).rc == 0, what="the open WebSocket's first message")
    return out, rc


def test_proxy_nginx_dedicated_block_mtls_revocation_then_tls(harness, new_server):
    server = new_server("server-nginx-other")
    server.trust_acme_ca()
    app = App(harness, "proxy")
    other_site = {p: server.sha256(p) for p in ("/etc/nginx/sites-available/other-site", "/etc/nginx/nginx.conf")}

    r, summary = install(server, MTLS)
    assert summary["mode"] == "proxy" and summary["webserver"] == "nginx" and summary["url"] == PROXY_URL, summary
    assert_vector_up(server)
    assert_mtls_files(server)
    assert 'address = "127.0.0.1:4096"' in server.read_text("/etc/vector/vector.toml")
    site = server.read_text("/etc/nginx/sites-available/actvt-vector")
    assert server.stat("/etc/nginx/sites-enabled/actvt-vector").kind == "link"
    assert "ssl_verify_client optional" in site and "ssl_crl" in site and "server_name %s;" % H.DOMAIN in site
    assert {p: server.sha256(p) for p in other_site} == other_site, "the other site's files were changed"
    assert server.exec("curl -s -o /dev/null -w '%{http_code}' -H 'Host: other.example.net' http://127.0.0.1/").out == "200"
    assert server.is_active("nginx.service")

    # the app: with the bundle metrics through nginx; without a certificate 400 (nginx's 496); other CA 400
    first = app.take_bundle(server, FIRST)
    app.metrics(PROXY_URL, first)
    code, body = app.curl("https://%s/actvt" % H.DOMAIN)
    assert code == "400" and NO_CERT_400 in body, (code, body)
    app.refused(PROXY_URL)
    code, body = app.curl("https://%s/actvt" % H.DOMAIN, app.other_ca_cert())
    assert code == "400" and BAD_CERT_400 in body, (code, body)
    code, body = app.curl("https://%s/actvt/health" % H.DOMAIN)
    assert code == "200" and body.strip() == "OK", (code, body)
    assert app.ws(STANDALONE_URL, first, count=1, timeout=5).rc == 1, "Vector's port is reachable from outside"
    assert_impostor_gets_no_client(server, app, first)  # nginx verifies Vector's certificate

    # re-run: nothing changes, neither Vector nor nginx restarts
    pid, nginx_pid = main_pid(server), server.unit("nginx.service")["MainPID"]
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, pid)
    assert server.unit("nginx.service")["MainPID"] == nginx_pid

    # a second client; its open WebSocket is closed within seconds of its revocation. The reload that
    # makes nginx read the new CRL ends its old workers after worker_shutdown_timeout (10 s), and with
    # them every open WebSocket, the first client's too: that one reconnects at once, the revoked is refused
    r = server.exec([MTLS_DIR + "/generate-client.sh", SECOND])
    assert r.rc == 0, r
    second = app.take_bundle(server, SECOND)
    app.metrics(PROXY_URL, second)
    out, rc = start_background_ws(app, PROXY_URL, second, "proxy-second")
    first_out, first_rc = start_background_ws(app, PROXY_URL, first, "proxy-first")
    r = server.exec(["actvt", "client", "revoke", SECOND, "--yes"])
    assert r.rc == 0, r
    assert server.read_file(MTLS_DIR + "/ca.crt") and "nginx refuses" in r.out, r
    started = time.time()
    wait_until(lambda: app.host.exec("test -s %s" % rc).rc == 0, timeout=30,
               what="the revoked client's open WebSocket to be closed")
    print("revoked client's WebSocket closed after %.1f s" % (time.time() - started))
    wait_until(lambda: app.host.exec("test -s %s" % first_rc).rc == 0, timeout=30,
               what="the other client's open WebSocket to be closed by the reload too")
    assert time.time() - started < 25
    code, body = app.curl("https://%s/actvt" % H.DOMAIN, second)
    assert code == "400" and BAD_CERT_400 in body, (code, body)
    app.refused(PROXY_URL, second)
    app.metrics(PROXY_URL, first)  # the first client's bundle, unchanged, still works
    assert main_pid(server) == pid, "revocation behind nginx restarted Vector"

    # mTLS off: a dedicated block with TLS only; anyone with the URL connects
    r, summary = install(server, dict(ENV, ACTVT_ENABLE_MTLS="no"))
    site = server.read_text("/etc/nginx/sites-available/actvt-vector")
    assert "ssl_verify_client" not in site and "return 496" not in site, site
    assert "verify_certificate" not in server.read_text("/etc/vector/vector.toml")
    wait_until(lambda: app.ws(PROXY_URL, count=1).rc == 0, what="TLS-only proxy")
    app.metrics(PROXY_URL)
    assert {p: server.sha256(p) for p in other_site} == other_site


# ------------------------------------------------------------------------------------------------
# the domain already served by nginx: only the snippet; the existing site untouched byte for byte
# ------------------------------------------------------------------------------------------------
def test_domain_already_served_by_nginx_gets_only_the_snippet(harness, new_server):
    server = new_server("server-nginx-domain")
    server.trust_acme_ca()
    before = server.snapshot(("/etc/nginx",))
    r, summary = install(server, ENV)
    assert summary["mode"] == "proxy", summary
    assert server.exists("/etc/nginx/snippets/actvt-vector-location.conf")
    assert not server.exists("/etc/nginx/sites-available/actvt-vector")
    assert not server.exists("/etc/nginx/sites-enabled/actvt-vector")
    after = server.snapshot(("/etc/nginx",))
    diff = H.diff_snapshots(before, after)
    assert diff["removed"] == [] and diff["changed"] == [], diff
    assert set(diff["added"]) <= {"/etc/nginx/snippets/actvt-vector-location.conf"}, diff
    notes = " ".join(summary["notes"]) + r.err
    assert "include" in notes and "actvt-vector-location.conf" in notes, r
    assert server.exec("curl -sk https://127.0.0.1/ -H 'Host: %s'" % H.DOMAIN).out.startswith("existing site")
    assert_vector_up(server)


# ------------------------------------------------------------------------------------------------
# failures: unreachable mirror, wrong ACME URL, Pebble stopped; each a clear error and a clean host,
# then a run that converges (last in the file: restarting Pebble resets its accounts and root)
# ------------------------------------------------------------------------------------------------
def assert_clean_after_failure(server, summary):
    """No half-configured service: no state, Vector not running on a config of ours, no nginx site."""
    assert summary["status"] == "failed" and summary["error"], summary
    assert not server.exists("/var/lib/actvt/install.state")
    assert not server.is_active("vector.service"), "Vector runs after a failed install"
    for path in ("/etc/vector/vector.toml", "/etc/vector/certs/server.crt", "/etc/vector/certs/server.key",
                 "/etc/nginx/sites-enabled/actvt-vector"):
        assert not server.exists(path), "%s left after the failure" % path
    assert "VECTOR_CONFIG=/etc/vector/vector.toml" not in server.read_text("/etc/default/vector")


def assert_nothing_changed(server, before, summary, *expected, roots=H.SNAPSHOT_ROOTS):
    assert summary["status"] == "failed" and summary["changed"] == 0, summary
    for text in expected:
        assert text in summary["error"], summary["error"]
    assert "Nothing was changed" in summary["error"], summary["error"]
    assert H.diff_snapshots(before, server.snapshot(roots)) == {"added": [], "removed": [], "changed": []}


def test_failures_are_clear_and_leave_a_clean_host_then_converge(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    # every folder the install's plan writes to (/usr/share/keyrings, /var/cache, ... : its dry run's paths)
    roots = H.snapshot_roots(server.planned_paths(MTLS))
    before = server.snapshot(roots)

    # the Vector mirror cannot be reached; a wrong ACME directory URL: stopped before any change
    gone = "http://mirror-gone.invalid/vector-apt"
    r, summary = install(server, dict(MTLS, ACTVT_VECTOR_APT_URL=gone), rc=1)
    assert_nothing_changed(server, before, summary, gone, "ACTVT_VECTOR_APT_URL", roots=roots)
    wrong = "https://acme:14000/no-such-dir"
    r, summary = install(server, dict(MTLS, ACTVT_ACME_SERVER=wrong), rc=1)
    assert_nothing_changed(server, before, summary, wrong, "HTTP 404", "ACTVT_ACME_SERVER", roots=roots)

    # Pebble stopped: the same clear stop; then back
    harness.acme.container.stop(timeout=5)
    try:
        r, summary = install(server, MTLS, rc=1)
        assert_nothing_changed(server, before, summary, H.ACME_DIRECTORY, "ACTVT_ACME_SERVER", roots=roots)
    finally:
        harness.acme.container.start()
        harness._wait_http(harness.acme, "https://localhost:14000/dir")

    # certbot itself fails (http-01 reaches another host): a clear error, no half-configured service
    harness.give_domain(harness.client_host)
    try:
        r, summary = install(server, dict(MTLS, ACTVT_CONTINUE_WITHOUT_DNS="yes"), rc=1)
    finally:
        harness.give_domain(server)
    assert "certbot" in summary["error"], summary
    assert "running the installer again is safe" in summary["error"], summary
    assert_clean_after_failure(server, summary)
    assert not server.exists(MTLS_DIR + "/ca.key")

    # the same command once the problem is gone: converges
    r, summary = install(server, MTLS)
    assert summary["status"] == "ok"
    assert_vector_up(server)
    app = App(harness, "after-failures")  # Pebble's root changed with its restart
    app.metrics(STANDALONE_URL, app.take_bundle(server, FIRST))
    pid = main_pid(server)
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, pid)
