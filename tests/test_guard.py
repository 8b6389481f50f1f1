"""Vector's port kept in service (issue 13, item 3): the unit's file limit, and the health check that
restarts Vector when its port completes no TLS handshake (installer/concerns/guard.py).

The health check is run here against real sockets on 127.0.0.1 (a TLS server, one that wants a client
certificate, one that accepts and never answers, a closed port), with a `systemctl` on PATH that
records what it is asked; the end-to-end flood scenario runs it under real systemd.
"""

import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from installer.concerns import guard
from installer.core import paths

from helpers import DOMAIN
from helpers import run_cli as run

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "installer", "concerns",
                      "templates", "vector-health.py")


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return tmp_path


def test_install_raises_vectors_file_limit_and_checks_its_port(root):
    status, out = run(["--root", str(root), "--json"], {"ACTVT_VECTOR_PORT": "9000"})
    assert status == 0, out
    limits = (root / paths.VECTOR_LIMITS.lstrip("/")).read_text()
    assert "[Service]\nLimitNOFILE=65536\n" in limits
    service = (root / paths.HEALTH_SERVICE.lstrip("/")).read_text()
    assert f"ExecStart=/usr/bin/python3 -I {paths.HEALTH_SCRIPT} 9000 {DOMAIN}\n" in service
    timer = (root / paths.HEALTH_TIMER.lstrip("/")).read_text()
    assert "OnUnitActiveSec=30\n" in timer and "WantedBy=timers.target" in timer
    assert oct(os.stat(root / paths.HEALTH_SCRIPT.lstrip("/")).st_mode & 0o777) == "0o755"
    summary = json.loads(out)
    assert "run systemctl daemon-reload" in [a["action"] for a in summary["actions"] if a["type"] == "command"]
    assert guard.TIMER in [a["target"] for a in summary["actions"] if a["type"] == "service"]
    status, out = run(["--root", str(root), "--json"], {"ACTVT_VECTOR_PORT": "9000"})
    assert json.loads(out)["changed"] == 0


def test_uninstall_stops_the_check_and_removes_its_units(root):
    assert run(["--root", str(root)])[0] == 0
    status, out = run(["uninstall", "--root", str(root)])
    assert status == 0, out
    for path in guard.UNITS + (paths.HEALTH_SCRIPT,):
        assert not (root / path.lstrip("/")).exists(), path
    assert f"{guard.TIMER} (disabled, stopped)" in out and "daemon-reload" in out


# --- the health check itself ------------------------------------------------------------------------


@pytest.fixture
def health(tmp_path, monkeypatch):
    """The script as Vector's server runs it, with short waits, and a `systemctl` that records its calls."""
    spec = importlib.util.spec_from_file_location("vector_health", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PAUSE, module.TIMEOUT = 0, 0.5
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    state = tmp_path / "state"
    state.write_text("active 600")  # ActiveState, seconds since it became active
    (bin_dir / "systemctl").write_text(f"""#!{sys.executable}
import sys, time
with open({str(calls)!r}, "a") as handle:
    handle.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "show":
    state, age = open({str(state)!r}).read().split()
    print("ActiveState=" + state)
    print("ActiveEnterTimestampMonotonic=%d" % ((time.clock_gettime(time.CLOCK_MONOTONIC) - int(age)) * 1e6))
""")
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    module.calls = lambda: calls.read_text().splitlines() if calls.exists() else []
    module.set_state = lambda text: state.write_text(text)
    return module


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "1",
                    "-subj", f"/CN={DOMAIN}"], check=True, capture_output=True)
    return str(folder / "cert.pem"), str(folder / "key.pem")


def serve(handler):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener


def tls_server(cert, require_client=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cert[0])

    def handler(conn):
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            conn.close()

    return serve(handler)


@pytest.mark.parametrize("require_client", [False, True])
def test_a_port_that_completes_handshakes_is_left_alone(health, server_cert, require_client):
    listener = tls_server(server_cert, require_client)
    try:
        assert health.main(["vector-health", str(listener.getsockname()[1]), DOMAIN]) == 0
    finally:
        listener.close()
    assert not any(call.startswith("restart") for call in health.calls())


def test_a_closed_port_restarts_vector(health, capsys):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()  # nothing listens there: refused, as when Vector's accept loop has ended
    assert health.main(["vector-health", str(port), DOMAIN]) == 1  # the unit shows it failed
    assert "restart vector.service" in health.calls()
    assert f"port {port} completed no TLS handshake in 3 attempts: restarting vector.service" in capsys.readouterr().out


def test_a_port_that_accepts_and_never_answers_restarts_vector(health):
    held = []
    listener = serve(held.append)  # accepts, then says nothing: a handshake that never completes
    try:
        assert health.main(["vector-health", str(listener.getsockname()[1]), DOMAIN]) == 1
    finally:
        listener.close()
    assert "restart vector.service" in health.calls()


@pytest.mark.parametrize("state", ["inactive 600", "failed 600", "active 10"])  # 10 s: just (re)started
def test_a_stopped_or_just_started_vector_is_not_restarted(health, state):
    health.set_state(state)
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    assert health.main(["vector-health", str(port), DOMAIN]) == 0
    assert not any(call.startswith("restart") for call in health.calls()), health.calls()
