"""A flood of idle connections against the port the app uses (issue 13, item 3).

Vector 0.50's WebSocket server has no TLS handshake timeout and ends its accept loop on the first
failed accept, while the process stays up; the test double does the same (vector_standin/vector).
From the client container (the harness's own, bounded in count and time, `docker/flood.py`):

1. the failure, shown first: with systemd's default open-file limit (1024) and no health check, 1100
   idle connections end Vector's server for good; it stays "active", and nobody can connect after
   the flood is over;
2. the installer's health check (actvt-vector-health.timer, every 30 s) notices and restarts Vector:
   the app receives metrics again within 75 s;
3. with the installer's LimitNOFILE=65536 the same flood ends nothing: the app receives metrics during
   it, and Vector is not restarted;
4. behind nginx, the same flood against 443: nginx holds the idle connections (and closes them after
   its client_header_timeout, 60 s); Vector's loopback port never sees them, keeps answering, and the
   app receives metrics through nginx during the flood.
"""
import json
import time

import pytest

import harness as H
from test_wiring_e2e import ENV, PROXY_URL, STANDALONE_URL, App, install, main_pid, wait_until

pytestmark = pytest.mark.e2e

TEST_LIMIT = "/etc/systemd/system/vector.service.d/zz-test-default-limit.conf"
RECOVERY_SECONDS = 75  # timer interval (30 s) + three failed attempts + Vector's restart, with room
FLOOD = 1100  # more than systemd's default soft limit of 1024 file descriptors


def flood(app, port, count, hold, background=False):
    argv = "flood %s %d %d %s" % (H.DOMAIN, port, count, hold)
    if background:
        app.host.sh("rm -f /tmp/flood.out; nohup sh -c '%s > /tmp/flood.out 2>&1' >/dev/null 2>&1 &" % argv)
        return None
    r = app.host.exec(argv, timeout=hold + 60)
    assert r.rc == 0, r
    return json.loads(r.out)


def established(server, port):
    """TCP connections to the server's PORT, counted on the server."""
    out = server.exec(["sh", "-c", "ss -Htn state established '( sport = :%d )' | wc -l" % port]).out.strip()
    return int(out) if out.isdigit() else 0


def flood_result(app, hold):
    wait_until(lambda: app.host.exec("test -s /tmp/flood.out").rc == 0, timeout=hold + 60, what="the flood's end")
    return json.loads(app.host.read_text("/tmp/flood.out"))


def test_a_flood_of_idle_connections_standalone_then_behind_nginx(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    app = App(harness, "flood")
    r, summary = install(server, ENV)
    assert server.is_active("actvt-vector-health.timer")
    assert server.sh("systemctl show vector -p LimitNOFILESoft").out.strip() == "LimitNOFILESoft=65536"
    app.metrics(STANDALONE_URL)

    # 1. without the installer's two guards, the flood ends the server for good
    server.sh("systemctl stop actvt-vector-health.timer")
    server.put_file(TEST_LIMIT, b"[Service]\nLimitNOFILE=1024:524288\n")
    server.sh("systemctl daemon-reload && systemctl restart vector")
    wait_until(lambda: app.ws(STANDALONE_URL, count=1).rc == 0, what="Vector with the default limit")
    result = flood(app, 4096, FLOOD, 5)
    assert result["connected"] > 1000, result
    time.sleep(2)  # the flood is over, its connections closed
    assert server.is_active("vector"), "Vector's process stays up"
    r = app.ws(STANDALONE_URL, count=1, timeout=5)
    assert r.rc == 1, "the server still accepts after the flood, so this scenario shows nothing:\n%s" % r

    # 2. the installer's settings back (a re-run starts the timer again): the health check restarts Vector
    server.sh("rm -f %s && systemctl daemon-reload" % TEST_LIMIT)
    dead_pid = main_pid(server)
    r, summary = install(server, ENV)
    assert server.is_active("actvt-vector-health.timer")
    started = time.time()
    wait_until(lambda: app.ws(STANDALONE_URL, count=1, timeout=5).rc == 0, timeout=RECOVERY_SECONDS + 30,
               interval=2, what="metrics again after the health check")
    took = time.time() - started
    print("metrics again %.0f s after the health check was back" % took)
    assert took <= RECOVERY_SECONDS, took
    assert main_pid(server) != dead_pid
    assert "completed no TLS handshake in 3 attempts: restarting vector.service" in server.journal(
        "actvt-vector-health", 50)

    # 3. with LimitNOFILE=65536 the same flood ends nothing, and nothing needs a restart
    assert server.sh("systemctl show vector -p LimitNOFILESoft").out.strip() == "LimitNOFILESoft=65536"
    pid = main_pid(server)
    flood(app, 4096, FLOOD, 40, background=True)
    wait_until(lambda: established(server, 4096) > 1000, timeout=45, what="the flood's connections to be open")
    app.metrics(STANDALONE_URL)  # during the flood
    result = flood_result(app, 40)
    assert result["connected"] == FLOOD and result["closed_by_server"] == 0, result  # no timeout: all held
    app.metrics(STANDALONE_URL)
    assert main_pid(server) == pid, "Vector was restarted under a flood it could take"

    # 4. behind nginx: the flood reaches nginx, never Vector
    r, summary = install(server, dict(ENV, ACTVT_INSTALL_MODE="proxy"))
    assert summary["mode"] == "proxy"
    wait_until(lambda: app.ws(PROXY_URL, count=1).rc == 0, what="metrics through nginx")
    pid = main_pid(server)
    hold = 75  # longer than nginx's client_header_timeout (60 s), which also bounds an idle TLS handshake
    flood(app, 443, 1000, hold, background=True)
    wait_until(lambda: established(server, 443) > 900, timeout=45, what="the flood's connections to nginx")
    app.metrics(PROXY_URL)  # during the flood
    # Vector's loopback port answers, as the health check sees it (exit 0: nothing to restart)
    assert server.exec(["python3", "-I", "/usr/local/lib/actvt/vector-health", "4096", H.DOMAIN]).rc == 0
    result = flood_result(app, hold)
    assert result["connected"] == 1000 and result["closed_by_server"] == 1000, result  # nginx's timeout
    app.metrics(PROXY_URL)
    assert main_pid(server) == pid, "Vector was restarted by a flood against nginx"
