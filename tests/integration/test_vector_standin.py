"""Tests of the Vector TEST DOUBLE (tests/integration/vector_standin), run on the host without Docker.

The stand-in is run with this Python against temporary configs; its WebSocket sinks are reached over
real TLS sockets on 127.0.0.1.
"""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parent / "vector_standin"
VECTOR = STANDIN_DIR / "vector"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not found")


def vector(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VECTOR_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(VECTOR), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# PKI made with the openssl command, as the installer and the user guide do
# --------------------------------------------------------------------------------------------------
def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=%s" % name,
             "-keyout", "%s.key" % name, "-out", "%s.crt" % name, cwd=d)
    return d / ("%s.crt" % name), d / ("%s.key" % name)


def make_leaf(d, name, ca, usage, san=None):
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
             "-keyout", "%s.key" % name, "-out", "%s.csr" % name, cwd=d)
    ext = ["basicConstraints=CA:FALSE", "extendedKeyUsage=%s" % usage]
    if san:
        ext.append("subjectAltName=%s" % san)
    (d / ("%s.ext" % name)).write_text("\n".join(ext) + "\n")
    _openssl("x509", "-req", "-in", "%s.csr" % name, "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", "%s.ext" % name,
             "-out", "%s.crt" % name, cwd=d)
    return d / ("%s.crt" % name), d / ("%s.key" % name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    d = tmp_path_factory.mktemp("pki")
    server_ca = make_ca(d, "server-ca")
    mtls_ca = make_ca(d, "mtls-ca")
    other_ca = make_ca(d, "other-ca")
    return {
        "dir": d,
        "server_ca": server_ca,
        "server": make_leaf(d, "server", server_ca, "serverAuth", "DNS:localhost,IP:127.0.0.1"),
        "server2": make_leaf(d, "server2", server_ca, "serverAuth", "DNS:localhost,IP:127.0.0.1"),
        "mtls_ca": mtls_ca,
        "client": make_leaf(d, "client", mtls_ca, "clientAuth"),
        "stranger": make_leaf(d, "stranger", other_ca, "clientAuth"),
    }


def toml_config(port, crt, key, ca=None, verify=False, extra="", api=None):
    tls = ['enabled = true', 'crt_file = "%s"' % crt, 'key_file = "%s"' % key]
    if ca:
        tls.append('ca_file = "%s"' % ca)
    if verify:
        tls.append("verify_certificate = true")
    return """
[api]
enabled = true
address = "127.0.0.1:%(api)d"

[sources.host]
type = "host_metrics"
collectors = ["cpu", "memory", "disk", "filesystem", "network", "host", "load"]
scrape_interval_secs = 1

[sources.system_info]
type = "exec"
mode = "scheduled"
command = ["/bin/sh", "-c", "uname -a"]
scheduled.exec_interval_secs = 15

[transforms.to_log]
type = "metric_to_log"
inputs = ["host"]

[transforms.shape]
type = "remap"
inputs = ["to_log", "system_info"]
source = '''
.host = get_hostname!()
'''

[sinks.websocket_out]
type = "websocket_server"
inputs = ["shape"]
address = "127.0.0.1:%(port)d"
encoding.codec = "json"

[sinks.websocket_out.tls]
%(tls)s
%(extra)s
""" % {"port": port, "api": api or free_port(), "tls": "\n".join(tls), "extra": extra}


# --------------------------------------------------------------------------------------------------
# A minimal WebSocket client (handshake + frames), independent of the stand-in's own code
# --------------------------------------------------------------------------------------------------
def ws_connect(port, ca=None, cert=None, timeout=10):
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    if ctx and cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET / HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during handshake: %r" % head)
        head += chunk
    return sock, head.decode("latin-1")


def ws_recv_json(sock):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    while True:
        b1, b2 = exact(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", exact(8))[0]
        data = exact(n)
        if b1 & 0x0F == 0x1:
            return json.loads(data)
        if b1 & 0x0F == 0x8:
            raise ConnectionError("close frame")


def cert_fingerprint(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


class Running:
    def __init__(self, config_path, env=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("VECTOR_")}
        full_env.update(env or {})
        full_env["VECTOR_STANDIN_INTERVAL"] = "0.2"
        self.proc = subprocess.Popen([sys.executable, str(VECTOR), "--config", str(config_path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)

    def wait_port(self, port, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("stand-in exited %s: %s" % (self.proc.returncode, self.proc.stdout.read()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("port %d never opened" % port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read()


@pytest.fixture
def running():
    procs = []

    def start(config_path, env=None):
        r = Running(config_path, env)
        procs.append(r)
        return r

    yield start
    for r in procs:
        r.stop()


# --------------------------------------------------------------------------------------------------
# Command line and validate
# --------------------------------------------------------------------------------------------------
def test_version_names_the_test_double():
    r = vector("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("vector 0.50.0 (")
    assert "test-double" in r.stdout


@needs_openssl
def test_validate_accepts_a_good_config(tmp_path, pki):
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(free_port(), *pki["server"], ca=pki["mtls_ca"][0], verify=True))
    r = vector("validate", cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validated" in r.stdout


REJECTED = [
    ("unparsable TOML", "vector.toml", '[sources.x\ntype = "host_metrics"\n', "Failed to parse"),
    ("unparsable YAML", "vector.yaml", "sources:\n  x: [unclosed\n", "Failed to parse"),
    ("unknown component type", "vector.toml",
     '[sources.a]\ntype = "host_metricz"\n[sinks.b]\ntype = "blackhole"\ninputs = ["a"]\n',
     "unknown variant `host_metricz`"),
    ("input naming no component", "vector.toml",
     '[sources.a]\ntype = "host_metrics"\n[sinks.b]\ntype = "blackhole"\ninputs = ["nope"]\n',
     'Input "nope" for sink "b" doesn\'t match any components.'),
    ("missing required field", "vector.toml",
     '[sources.a]\ntype = "host_metrics"\n'
     '[sinks.b]\ntype = "websocket_server"\ninputs = ["a"]\naddress = "0.0.0.0:4096"\n',
     "missing field `encoding`"),
    ("no sink", "vector.toml", '[sources.a]\ntype = "host_metrics"\n', "No sinks defined"),
]


@pytest.mark.parametrize("name, filename, text, message", REJECTED, ids=[r[0] for r in REJECTED])
def test_validate_rejects(tmp_path, name, filename, text, message):
    if filename.endswith(".yaml"):
        pytest.importorskip("yaml")
    cfg = tmp_path / filename
    cfg.write_text(text)
    r = vector("validate", cfg)
    assert r.returncode == 78
    assert message in r.stdout


@needs_openssl
def test_validate_rejects_missing_tls_file_unless_no_environment(tmp_path, pki):
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(free_port(), pki["server"][0], tmp_path / "absent.key"))
    r = vector("validate", cfg)
    assert r.returncode == 78
    assert "absent.key" in r.stdout and "No such file" in r.stdout
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 0, r.stdout


@needs_openssl
def test_validate_rejects_a_tls_file_that_is_not_pem(tmp_path, pki):
    bad = tmp_path / "server.crt"
    bad.write_text("not a certificate\n")
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(free_port(), bad, pki["server"][1]))
    r = vector("validate", cfg)
    assert r.returncode == 78
    assert "no PEM certificate" in r.stdout


def test_config_from_vector_config_env_and_flags(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[sources.a]\ntype = "host_metrics"\n')
    sink = tmp_path / "sink.toml"
    sink.write_text('[sinks.b]\ntype = "blackhole"\ninputs = ["a"]\n')
    # comma separated, like Vector's VECTOR_CONFIG
    assert vector("validate", env={"VECTOR_CONFIG": "%s,%s" % (good, sink)}).returncode == 0
    assert vector("validate", env={"VECTOR_CONFIG": "%s %s" % (good, sink)}).returncode == 0
    assert vector("validate", "--config", good, "-c", sink).returncode == 0
    assert vector("validate", "--config=%s,%s" % (good, sink)).returncode == 0
    # arguments win over the environment
    r = vector("validate", good, sink, env={"VECTOR_CONFIG": str(tmp_path / "absent.toml")})
    assert r.returncode == 0, r.stdout
    r = vector("validate", env={"VECTOR_CONFIG": str(good)})
    assert r.returncode == 78 and "No sinks defined" in r.stdout


def test_environment_variables_are_interpolated(tmp_path):
    cfg = tmp_path / "vector.toml"
    cfg.write_text('[sources.a]\ntype = "${SRC_TYPE}"\n[sinks.b]\ntype = "blackhole"\ninputs = ["a"]\n')
    assert vector("validate", cfg, env={"SRC_TYPE": "host_metrics"}).returncode == 0
    r = vector("validate", cfg)
    assert r.returncode == 78 and "SRC_TYPE" in r.stdout


def test_package_demo_config_validates():
    pytest.importorskip("yaml")
    r = vector("validate", STANDIN_DIR / "debian" / "vector.yaml")
    assert r.returncode == 0, r.stdout


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not found")
def test_package_layout_matches_the_real_package(tmp_path):
    out = subprocess.run(["sh", str(STANDIN_DIR / "build-deb.sh"), str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.strip()
    deb = Path(out)
    assert deb.name.startswith("vector_0.50.0-1_")
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: vector" in info and "Version: 0.50.0-1" in info
    assert "TEST DOUBLE" in info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/vector", "./lib/systemd/system/vector.service", "./etc/default/vector",
                 "./etc/vector/vector.yaml"):
        assert path in files
    unit = (STANDIN_DIR / "debian" / "vector.service").read_text()
    for line in ("ExecStartPre=/usr/bin/vector validate", "ExecStart=/usr/bin/vector",
                 "ExecReload=/usr/bin/vector validate --no-environment", "ExecReload=/bin/kill -HUP $MAINPID",
                 "EnvironmentFile=-/etc/default/vector", "User=vector"):
        assert line in unit.splitlines()


# --------------------------------------------------------------------------------------------------
# Run mode: websocket_server sinks
# --------------------------------------------------------------------------------------------------
CONTRACT = {
    "memory_used": {"value"}, "memory_total": {"value"}, "cpu_idle": {"value", "cpu"},
    "cpu_total": {"value", "cpu"}, "network_rx_bytes": {"value", "interface"},
    "network_tx_bytes": {"value", "interface"}, "network_tx_dropped": {"value", "interface"},
    "disk_total": {"value", "filesystem", "device"}, "uptime": {"value"}, "boot_time": {"value"},
    "load_1min": {"value"}, "load_5min": {"value"}, "load_15min": {"value"},
    "cpu_logical_count": {"value"}, "cpu_physical_count": {"value"},
    "system_info": {"os", "arch", "domain", "ipv4", "ipv4_public"},
}


@needs_openssl
def test_tls_sink_streams_the_metrics_contract(tmp_path, pki, running):
    port = free_port()
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, *pki["server"]))
    r = running(cfg)
    r.wait_port(port)
    sock, head = ws_connect(port, ca=pki["server_ca"][0])
    with sock:
        assert head.startswith("HTTP/1.1 101")
        seen = {}
        deadline = time.time() + 15
        while set(CONTRACT) - set(seen) and time.time() < deadline:
            msg = ws_recv_json(sock)
            seen.setdefault(msg["metric_type"], msg)
    assert not set(CONTRACT) - set(seen), "missing metric types: %s" % (set(CONTRACT) - set(seen))
    for metric_type, fields in CONTRACT.items():
        msg = seen[metric_type]
        assert fields | {"metric_type", "host", "timestamp"} <= set(msg), msg
        assert msg["host"] == socket.gethostname()
        assert msg["timestamp"].endswith("Z")
    assert seen["memory_total"]["value"] > 0


@needs_openssl
def test_mtls_sink_requires_a_client_certificate_from_its_ca(tmp_path, pki, running):
    port = free_port()
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, *pki["server"], ca=pki["mtls_ca"][0], verify=True))
    r = running(cfg)
    r.wait_port(port)
    sock, head = ws_connect(port, ca=pki["server_ca"][0], cert=pki["client"])
    with sock:
        assert head.startswith("HTTP/1.1 101")
        assert "metric_type" in ws_recv_json(sock)
    for cert in (None, pki["stranger"]):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            sock, head = ws_connect(port, ca=pki["server_ca"][0], cert=cert)
            with sock:
                ws_recv_json(sock)


@needs_openssl
def test_plain_https_request_gets_no_upgrade(tmp_path, pki, running):
    port = free_port()
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, *pki["server"]))
    r = running(cfg)
    r.wait_port(port)
    ctx = ssl.create_default_context(cafile=str(pki["server_ca"][0]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 400")


@needs_openssl
def test_api_health(tmp_path, pki, running):
    import urllib.request
    port, api = free_port(), free_port()
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, *pki["server"], api=api))
    r = running(cfg)
    r.wait_port(api)
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % api, timeout=5) as resp:
        assert json.load(resp) == {"ok": True}


@needs_openssl
def test_sighup_keeps_the_certificate_of_an_unchanged_sink_restart_loads_the_new_one(tmp_path, pki, running):
    """Like Vector 0.50: a reload does not rebuild an unchanged websocket_server sink (section 3 of the spec)."""
    port = free_port()
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki["server"][0], crt)
    shutil.copy(pki["server"][1], key)
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, crt, key))
    r = running(cfg)
    r.wait_port(port)
    first = cert_fingerprint(port)
    shutil.copy(pki["server2"][0], crt)
    shutil.copy(pki["server2"][1], key)
    r.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert cert_fingerprint(port) == first
    r.stop()
    r2 = running(cfg)
    r2.wait_port(port)
    assert cert_fingerprint(port) != first


@needs_openssl
def test_run_mode_refuses_an_invalid_config(tmp_path, pki):
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(free_port(), pki["server"][0], tmp_path / "absent.key"))
    r = vector("--config", cfg)
    assert r.returncode == 78
    assert "absent.key" in r.stderr


@needs_openssl
def test_gpu_messages_when_an_exec_source_runs_nvidia_smi(tmp_path, pki, running):
    """With the nvidia-smi TEST DOUBLE (docker/nvidia-smi) on PATH, the gpu_* messages of the contract appear."""
    port = free_port()
    cfg = tmp_path / "vector.toml"
    cfg.write_text(toml_config(port, *pki["server"], extra="""
[sources.gpu]
type = "exec"
mode = "scheduled"
command = ["nvidia-smi", "--query-gpu=name,utilization.gpu", "--format=csv,noheader,nounits"]
"""))
    path = "%s:%s" % (Path(__file__).resolve().parent / "docker", os.environ.get("PATH", ""))
    r = running(cfg, env={"PATH": path})
    r.wait_port(port)
    sock, head = ws_connect(port, ca=pki["server_ca"][0])
    wanted = {"gpu_utilization", "gpu_memory", "gpu_temperature", "gpu_clocks", "gpu_power",
              "gpu_encoder_decoder", "gpu_fan_pstate"}
    seen = {}
    with sock:
        deadline = time.time() + 15
        while wanted - set(seen) and time.time() < deadline:
            msg = ws_recv_json(sock)
            seen.setdefault(msg["metric_type"], msg)
    assert not wanted - set(seen)
    assert seen["gpu_utilization"] == dict(seen["gpu_utilization"], value=37.0, gpu_name="NVIDIA TEST DOUBLE GPU")
    assert seen["gpu_fan_pstate"]["fan_speed"] == 0.0  # "[N/A]" parsed with a fallback
    assert seen["gpu_memory"]["memory_percent"] == 12.5
