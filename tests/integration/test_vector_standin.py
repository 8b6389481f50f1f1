"""Tests of the Vector TEST DOUBLE (tests/integration/vector_standin), run on the host without Docker.

The double is run with this Python against temporary configs; its sinks are read from its stdout
(console sink) or over real (TLS) WebSocket connections on 127.0.0.1.  Each test names the Vector 0.50
behaviour it holds the double to; the double's comments name the Vector source file it follows.
`vector validate` with environment checks needs a writable data_dir: the tests add a second config
file that sets it (Vector merges config files), so the config under test is unchanged.
"""
import base64
import importlib.machinery
import importlib.util
import json
import os
import queue
import re
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import GPU_CONTRACT, HOST_CONTRACT

HERE = Path(__file__).resolve().parent
STANDIN_DIR = HERE / "vector_standin"
VECTOR = STANDIN_DIR / "vector"
REPO = HERE.parent.parent
NVIDIA_SMI_DOUBLE_DIR = HERE / "docker"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not found")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTOR_")}
    env.update(extra)
    return env


def vector(*args, env=None, unset=()):
    full_env = base_env(**(env or {}))
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run([sys.executable, str(VECTOR), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def data_dir(tmp_path):
    """A second config file with a writable data_dir (validate's environment checks need one)."""
    (tmp_path / "data").mkdir()
    return write(tmp_path / "data-dir.toml", 'data_dir = "%s"\n' % (tmp_path / "data"))


def load_double():
    loader = importlib.machinery.SourceFileLoader("vector_test_double", str(VECTOR))
    spec = importlib.util.spec_from_loader("vector_test_double", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


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


def plain_ws_config(port, sources, inputs):
    """`sources` (TOML) feeding a TLS-less websocket_server sink on 127.0.0.1:port."""
    return sources + """
[sinks.out]
type = "websocket_server"
inputs = %s
address = "127.0.0.1:%d"
encoding.codec = "json"
""" % (json.dumps(inputs), port)


def console_config(sources, inputs):
    return sources + """
[sinks.out]
type = "console"
inputs = %s
encoding.codec = "json"
""" % json.dumps(inputs)


# --------------------------------------------------------------------------------------------------
# A minimal WebSocket client (handshake + frames), independent of the double's own code
# --------------------------------------------------------------------------------------------------
def ws_handshake(sock, port):
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET / HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during handshake: %r" % head)
        head += chunk
    return head.decode("latin-1")


def ws_connect(port, ca=None, cert=None, timeout=10):
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    if ctx and cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    return sock, ws_handshake(sock, port)


def _exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def ws_recv_frame(sock):
    b1, b2 = _exact(sock, 2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _exact(sock, 8))[0]
    return b1 & 0x0F, _exact(sock, n)


def ws_recv_json(sock):
    while True:
        opcode, data = ws_recv_frame(sock)
        if opcode == 0x1:
            return json.loads(data)
        if opcode == 0x8:
            raise ConnectionError("close frame")


def cert_fingerprint(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


class Running:
    """The double in run mode; its stdout (console sinks) is read line by line, stderr kept."""

    def __init__(self, *config_paths, env=None, unset=(), preexec_fn=None):
        args = [sys.executable, str(VECTOR)]
        for p in config_paths:
            args += ["--config", str(p)]
        full_env = base_env(**(env or {}))
        for name in unset:
            full_env.pop(name, None)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=full_env, preexec_fn=preexec_fn)
        self.lines = queue.Queue()
        self.err_lines = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err_lines.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)

    @property
    def stderr(self):
        return "".join(self.err_lines)

    def events(self, until, timeout=10):
        """Console events (JSON lines) until `until(events)` is true or timeout."""
        got = []
        end = time.time() + timeout
        while time.time() < end and not until(got):
            try:
                got.append(json.loads(self.lines.get(timeout=max(0.01, min(0.5, end - time.time())))))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        return got

    def wait_port(self, port, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("the double exited %s: %s" % (self.proc.returncode, self.stderr))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("port %d never opened" % port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.stderr


@pytest.fixture
def running():
    procs = []

    def start(*config_paths, env=None, unset=(), preexec_fn=None):
        r = Running(*config_paths, env=env, unset=unset, preexec_fn=preexec_fn)
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
def test_validate_accepts_a_good_config(tmp_path, pki, data_dir):
    cfg = write(tmp_path / "vector.toml", toml_config(free_port(), *pki["server"], ca=pki["mtls_ca"][0], verify=True))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validated" in r.stdout and "Component configuration" in r.stdout


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
    ("data type mismatch", "vector.toml",
     '[sources.a]\ntype = "exec"\nmode = "scheduled"\ncommand = ["true"]\n'
     '[transforms.m]\ntype = "metric_to_log"\ninputs = ["a"]\n[sinks.b]\ntype = "blackhole"\ninputs = ["m"]\n',
     'Data type mismatch between a (["Log"]) and m (["Metric"])'),
]


@pytest.mark.parametrize("name, filename, text, message", REJECTED, ids=[r[0] for r in REJECTED])
def test_validate_rejects(tmp_path, name, filename, text, message):
    """validate exits 78 (exitcode::CONFIG) on a config Vector refuses to load (src/validate.rs)."""
    if filename.endswith(".yaml"):
        pytest.importorskip("yaml")
    cfg = write(tmp_path / filename, text)
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 78
    assert message in r.stdout


@needs_openssl
def test_validate_rejects_missing_tls_file_unless_no_environment(tmp_path, pki, data_dir):
    cfg = write(tmp_path / "vector.toml", toml_config(free_port(), pki["server"][0], tmp_path / "absent.key"))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78
    assert "absent.key" in r.stdout and "No such file" in r.stdout
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 0, r.stdout


@needs_openssl
def test_validate_rejects_a_tls_file_that_is_neither_pem_nor_der(tmp_path, pki, data_dir):
    """settings.rs der_or_pem: a certificate file that is not PEM is read as a DER PKCS#12 archive."""
    bad = write(tmp_path / "server.crt", "not a certificate\n")
    cfg = write(tmp_path / "vector.toml", toml_config(free_port(), bad, pki["server"][1]))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78
    assert "PKCS#12 parse failed" in r.stdout


@needs_openssl
def test_key_certificate_mismatch_fails_validate_unless_no_environment(tmp_path, pki, data_dir):
    """settings.rs parse_pem_identity: certificate and key go into a PKCS#12 archive, which checks that
    they belong together; --no-environment reads no TLS file."""
    cfg = write(tmp_path / "vector.toml", toml_config(free_port(), pki["server"][0], pki["server2"][1]))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78, r.stdout
    assert "Could not build PKCS#12 archive for identity" in r.stdout and "MISMATCH" in r.stdout.upper()
    assert vector("validate", "--no-environment", cfg).returncode == 0
    r = vector("--config", cfg)  # the start builds the same sink
    assert r.returncode == 78 and "PKCS#12" in r.stderr


def test_validate_needs_a_writable_data_dir(tmp_path):
    """src/validate.rs create_tmp_directory: data_dir (default /var/lib/vector) must exist and not be
    read-only; --no-environment does not look at it."""
    cfg = write(tmp_path / "vector.toml", '[sources.a]\ntype = "host_metrics"\n[sinks.b]\ntype = "blackhole"\n'
                                          'inputs = ["a"]\n')
    missing = write(tmp_path / "missing.toml", 'data_dir = "%s"\n' % (tmp_path / "nope"))
    r = vector("validate", cfg, missing)
    assert r.returncode == 78 and "does not exist" in r.stdout
    (tmp_path / "ro").mkdir(mode=0o555)
    readonly = write(tmp_path / "ro.toml", 'data_dir = "%s"\n' % (tmp_path / "ro"))
    r = vector("validate", cfg, readonly)
    assert r.returncode == 78 and "is not writable" in r.stdout
    assert vector("validate", "--no-environment", cfg, missing).returncode == 0
    (tmp_path / "rw").mkdir()
    writable = write(tmp_path / "rw.toml", 'data_dir = "%s"\n' % (tmp_path / "rw"))
    assert vector("validate", cfg, writable).returncode == 0
    assert not (tmp_path / "rw" / "validate_tmp").exists()  # removed again


def test_config_paths_follow_vectors_command_line(tmp_path):
    """src/cli.rs / src/validate.rs: VECTOR_CONFIG is comma separated (value_delimiter(',')); validate
    takes positional paths (no -c), which win over VECTOR_CONFIG; VECTOR_CONFIG_TOML adds files."""
    good = write(tmp_path / "good.toml", '[sources.a]\ntype = "host_metrics"\n')
    sink = write(tmp_path / "sink.toml", '[sinks.b]\ntype = "blackhole"\ninputs = ["a"]\n')
    assert vector("validate", "--no-environment", env={"VECTOR_CONFIG": "%s,%s" % (good, sink)}).returncode == 0
    r = vector("validate", "--no-environment", env={"VECTOR_CONFIG": "%s %s" % (good, sink)})
    assert r.returncode == 78 and "Could not open config file" in r.stdout  # one path with a space in it
    assert vector("validate", "--no-environment", good, sink).returncode == 0
    assert vector("validate", "--no-environment", "%s,%s" % (good, sink)).returncode == 0
    r = vector("validate", "--no-environment", "--config", good)
    assert r.returncode == 2 and "unexpected argument '--config'" in r.stderr
    r = vector("validate", "--no-environment", good, sink, env={"VECTOR_CONFIG": str(tmp_path / "absent.toml")})
    assert r.returncode == 0, r.stdout
    r = vector("validate", "--no-environment", env={"VECTOR_CONFIG": str(good), "VECTOR_CONFIG_TOML": str(sink)})
    assert r.returncode == 0, r.stdout
    r = vector("validate", "--no-environment", env={"VECTOR_CONFIG": str(good)})
    assert r.returncode == 78 and "No sinks defined" in r.stdout


def test_package_demo_config_validates(data_dir):
    pytest.importorskip("yaml")
    r = vector("validate", STANDIN_DIR / "debian" / "vector.yaml", data_dir)
    assert r.returncode == 0, r.stdout  # its VRL (parse_syslog!) compiles; demo_logs/console are not run
    assert "not imitated" in r.stdout


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not found")
def test_package_layout_matches_the_real_package(tmp_path):
    """The real vector 0.50.0-1 package (Cargo.toml [package.metadata.deb], distribution/): the unit,
    /etc/default/vector 0600 and /etc/vector/vector.yaml as conffiles, the vector user made in
    preinst; plus the vendored vrl_python, which the system's own python3 can import."""
    out = subprocess.run(["sh", str(STANDIN_DIR / "build-deb.sh"), str(tmp_path)], capture_output=True,
                         text=True, check=True, env=dict(os.environ, PYTHON=sys.executable)).stdout.strip()
    deb = Path(out)
    assert deb.name.startswith("vector_0.50.0-1_")
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: vector" in info and "Version: 0.50.0-1" in info
    assert "TEST DOUBLE" in info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    modes = {line.split()[-1]: line.split()[0] for line in files.splitlines()}
    for path in ("./usr/bin/vector", "./lib/systemd/system/vector.service", "./etc/default/vector",
                 "./etc/vector/vector.yaml", "./usr/lib/vector-test-double/vrl_python/__init__.py"):
        assert path in modes, path
    assert modes["./etc/default/vector"] == "-rw-------"
    assert any(p.startswith("./usr/lib/vector-test-double/vrl_python/_vrl_python") and p.endswith(".so")
               for p in modes)
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/vector/vector.yaml", "/etc/default/vector"]
    preinst = (control / "preinst").read_text()
    assert "useradd --system --shell /sbin/nologin --home-dir /var/lib/vector --user-group" in preinst
    unit = (STANDIN_DIR / "debian" / "vector.service").read_text()
    for line in ("ExecStartPre=/usr/bin/vector validate", "ExecStart=/usr/bin/vector",
                 "ExecReload=/usr/bin/vector validate --no-environment", "ExecReload=/bin/kill -HUP $MAINPID",
                 "EnvironmentFile=-/etc/default/vector", "User=vector", "Restart=always"):
        assert line in unit.splitlines()
    if shutil.which("python3"):
        # the system's python3, isolated from this venv, imports the vendored vrl_python and TOML parser;
        # the TOML parser reads the installer's VRL as tomllib does (python3-toml 0.10.1 would not)
        tree = tmp_path / "tree"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        sample = tmp_path / "sample.toml"
        sample.write_text("source = \'\'\'\nname = string(.name) ?? \"\"\ntags = {}\n\'\'\'\n")
        r = subprocess.run([shutil.which("python3"), "-I", "-c",
                            "import sys; sys.path.insert(0, %r); import vrl_python, vector_test_double_tomllib as t; "
                            "assert vrl_python.VRLRuntime.check_syntax('.a = 1') is None; "
                            "print(repr(t.loads(open(%r).read())['source']))"
                            % (str(tree / "usr/lib/vector-test-double"), str(sample))], capture_output=True, text=True)
        assert r.stdout.strip() == repr('name = string(.name) ?? ""\ntags = {}\n'), r.stderr


# --------------------------------------------------------------------------------------------------
# Config loading like Vector 0.50
# --------------------------------------------------------------------------------------------------
BASE = """
[sources.hm]
type = "host_metrics"
%(hm)s
[sources.e]
type = "exec"
mode = "scheduled"
command = ["true"]
%(exec)s
[transforms.m]
type = "metric_to_log"
inputs = ["hm"]
%(m2l)s
[transforms.r]
type = "remap"
inputs = ["m", "e"]
source = ".a = 1"
%(remap)s
[sinks.ws]
type = "websocket_server"
inputs = ["r"]
address = "127.0.0.1:4096"
encoding.codec = "json"
%(ws)s
[sinks.ws.tls]
enabled = false
%(tls)s
[api]
enabled = false
%(api)s
"""


def base_config(top="", **parts):
    values = {k: "" for k in ("hm", "exec", "m2l", "remap", "ws", "tls", "api")}
    values.update(parts)
    return top + BASE % values


UNKNOWN_KEYS = [  # where Vector 0.50 has #[serde(deny_unknown_fields)]
    ("top level (src/config/builder.rs)", {"top": "typo = 1\n"}),
    ("host_metrics (src/sources/host_metrics/mod.rs)", {"hm": "typo = 1"}),
    ("exec (src/sources/exec/mod.rs)", {"exec": "typo = 1"}),
    ("exec.scheduled", {"exec": "scheduled.typo = 1"}),
    ("exec.streaming", {"exec": "streaming.typo = 1"}),
    ("metric_to_log (src/transforms/metric_to_log.rs)", {"m2l": "typo = 1"}),
    ("remap (src/transforms/remap.rs)", {"remap": "typo = 1"}),
    ("tls (lib/vector-core/src/tls/settings.rs)", {"tls": "typo = 1"}),
    ("api (src/config/api.rs)", {"api": "typo = 1"}),
]


@pytest.mark.parametrize("where, parts", UNKNOWN_KEYS, ids=[u[0].split(" ")[0] for u in UNKNOWN_KEYS])
def test_unknown_keys_are_rejected_where_vector_denies_them(tmp_path, where, parts):
    cfg = write(tmp_path / "vector.toml", base_config(**parts))
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 78, r.stdout
    assert "unknown field `typo`" in r.stdout


def test_unknown_key_in_the_websocket_server_table_is_ignored(tmp_path):
    """src/sinks/websocket_server/config.rs has no deny_unknown_fields: a misspelt key there is
    silently ignored by Vector, so it is by the double."""
    cfg = write(tmp_path / "vector.toml", base_config(ws="adress = \"0.0.0.0:1\"\ntypo = 1"))
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 0, r.stdout
    assert vector("validate", "--no-environment", write(tmp_path / "ok.toml", base_config())).returncode == 0


#: (name, base_config's parts, (old, new) replaced in its text, or None; what Vector's error says)
TYPE_ERRORS = [
    ("scrape_interval_secs float", {"hm": "scrape_interval_secs = 1.5"}, None,
     "invalid type: floating point `1.5`, expected u64"),
    ("scrape_interval_secs string", {"hm": 'scrape_interval_secs = "1"'}, None, 'invalid type: string "1", expected u64'),
    ("scrape_interval_secs negative", {"hm": "scrape_interval_secs = -1"}, None, "invalid value: integer `-1`, expected u64"),
    ("exec_interval_secs float", {"exec": "scheduled.exec_interval_secs = 0.5"}, None, "expected u64"),
    ("exec mode", {}, ('mode = "scheduled"', 'mode = "sometimes"'),
     "unknown variant `sometimes`, expected `scheduled` or `streaming`"),
    ("collector name", {"hm": 'collectors = ["cpu", "gpu"]'}, None, "unknown variant `gpu`"),
    ("address host name", {}, ('address = "127.0.0.1:4096"', 'address = "localhost:4096"'), "invalid socket address syntax"),
    ("tls.enabled string", {}, ("enabled = false\n\n[api]", 'enabled = "true"\n\n[api]'),
     'invalid type: string "true", expected a boolean'),
    ("command string", {}, ('command = ["true"]', 'command = "true"'), 'invalid type: string "true", expected a sequence'),
    ("inputs string", {}, ('inputs = ["r"]', 'inputs = "r"'), 'invalid type: string "r", expected a sequence'),
    ("address without host", {}, ('"127.0.0.1:4096"', '":4096"'), "invalid socket address syntax"),
]


def _type_cases():
    cases = []
    for name, parts, change, message in TYPE_ERRORS:
        text = base_config(**parts)
        cases.append((name, text.replace(*change) if change else text, message))
    return cases


@pytest.mark.parametrize("name, text, message", _type_cases(), ids=[c[0] for c in _type_cases()])
def test_values_are_type_checked_as_serde_does(tmp_path, name, text, message):
    """Whole numbers for scrape_interval_secs / exec_interval_secs (u64), enums (exec mode, collector
    names), websocket_server address a literal IP:port (SocketAddr), tls.enabled a boolean."""
    cfg = write(tmp_path / "vector.toml", text)
    r = vector("validate", "--no-environment", cfg)
    assert r.returncode == 78, r.stdout
    assert message in r.stdout


def test_yaml_is_read_as_yaml_1_2(tmp_path):
    """serde_yaml 0.9 (src/config/format.rs): `yes` is a string, not a boolean."""
    pytest.importorskip("yaml")
    text = ("sources:\n  a: {type: host_metrics}\nsinks:\n  b:\n    type: websocket_server\n    inputs: [a]\n"
            "    address: 127.0.0.1:4096\n    encoding: {codec: json}\n    tls: {enabled: %s}\n")
    assert vector("validate", "--no-environment", write(tmp_path / "ok.yaml", text % "true")).returncode == 0
    r = vector("validate", "--no-environment", write(tmp_path / "bad.yaml", text % "yes"))
    assert r.returncode == 78 and 'invalid type: string "yes", expected a boolean' in r.stdout


def test_remap_needs_a_source_when_built(tmp_path, data_dir):
    """src/transforms/remap.rs: exactly one of source/file/files, checked when the transform is
    built (validate with environment, start), not by --no-environment."""
    cfg = write(tmp_path / "vector.toml", base_config().replace('source = ".a = 1"', ""))
    assert vector("validate", "--no-environment", cfg).returncode == 0
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78 and "must provide exactly one of `source` or `file` or `files`" in r.stdout


def test_environment_interpolation_like_vector(tmp_path, running):
    """src/config/vars.rs on the raw text: $$ -> $, ${NAME:-default}, ${NAME-default}, $NAME,
    HOSTNAME set when absent (src/config/loading/mod.rs prepare_input)."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\n'
        'command = ["/bin/echo", "$$HOME|${T_EMPTY:-d1}|${T_EMPTY-d2}|${T_UNSET:-d3}|$HOSTNAME|${T_SET}|$T_SET"]\n',
        ["e"]))
    r = running(cfg, env={"T_EMPTY": "", "T_SET": "v"}, unset=("HOSTNAME",))
    events = r.events(lambda got: got)
    r.stop()
    assert events, r.stderr
    assert events[0]["message"] == "$HOME|d1||d3|%s|v|v" % socket.gethostname()


INTERPOLATION_ERRORS = [
    ("unknown variable", "# a comment naming $T_UNSET is interpolated too\n",
     'Missing environment variable in config. name = "T_UNSET"'),
    ("dots belong to the name", 'data_dir = "$T_SET.d"\n', 'Missing environment variable in config. name = "T_SET.d"'),
    ("required variable", 'data_dir = "${T_UNSET:?needed}"\n', 'name = "T_UNSET", error = "needed"'),
]


@pytest.mark.parametrize("name, top, message", INTERPOLATION_ERRORS, ids=[c[0] for c in INTERPOLATION_ERRORS])
def test_environment_interpolation_errors(tmp_path, name, top, message):
    cfg = write(tmp_path / "vector.toml", base_config(top=top))
    r = vector("validate", "--no-environment", cfg, env={"T_SET": "v"})
    assert r.returncode == 78
    assert message in r.stdout


# --------------------------------------------------------------------------------------------------
# VRL compiled by vrl-python at validate and at start
# --------------------------------------------------------------------------------------------------
def vrl_config(source):
    return base_config().replace('source = ".a = 1"', "source = '''\n%s\n'''" % source)


@pytest.mark.parametrize("source, message", [
    (".a = upcase(.b)", "E103"),  # unhandled fallible assignment (the field's type is unknown)
    ('x = 1 ?? 2', "E651"),  # unnecessary error coalescing
    (".a = 1 +", "E204"),  # syntax error
])
def test_vrl_error_fails_validate_but_not_no_environment(tmp_path, data_dir, source, message):
    """src/transforms/remap.rs compiles the program when the transform is built: `vector validate`
    fails on a VRL error; `validate --no-environment` does not compile it (remap.rs outputs() ignores
    compile errors)."""
    cfg = write(tmp_path / "vector.toml", vrl_config(source))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78, r.stdout
    assert message in r.stdout and 'Transform "r"' in r.stdout
    assert vector("validate", "--no-environment", cfg).returncode == 0


def test_vrl_error_fails_the_start(tmp_path):
    cfg = write(tmp_path / "vector.toml", vrl_config(".a = upcase(.b)"))
    started = time.time()
    r = vector("--config", cfg)
    assert r.returncode == 78 and "E103" in r.stderr
    assert time.time() - started < 30


@pytest.mark.parametrize("source, message", [
    ('.a = basename!("/a/b")', "E105"),  # added to VRL after 0.27.0
    ('.a = find("abc", "z")', "not imitated"),  # null instead of -1 in the newer VRL
])
def test_vrl_newer_than_vector_050_is_refused(tmp_path, data_dir, source, message):
    cfg = write(tmp_path / "vector.toml", vrl_config(source))
    r = vector("validate", cfg, data_dir)
    assert r.returncode == 78 and message in r.stdout


# --------------------------------------------------------------------------------------------------
# The pipeline: messages come from the configuration
# --------------------------------------------------------------------------------------------------
def proc_stat_cpus():
    return sum(1 for line in Path("/proc/stat").read_text().splitlines()[1:] if line.startswith("cpu"))


def test_host_metrics_named_and_tagged_like_vector(tmp_path, running):
    """src/sources/host_metrics/{mod,cpu,memory,disk,filesystem,network}.rs: names, tags (collector,
    host and the collector's own), namespace host, every scrape_interval_secs; sent as metrics
    straight to a json sink (Metric's serialization)."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.h]\ntype = "host_metrics"\nscrape_interval_secs = 1\n'
        'collectors = ["cpu", "memory", "disk", "filesystem", "network", "host", "load"]\n', ["h"]))
    r = running(cfg)
    events = r.events(lambda got: len({e["timestamp"] for e in got}) >= 3, timeout=15)
    r.stop()
    scrapes = sorted({e["timestamp"] for e in events})
    assert len(scrapes) >= 3, r.stderr
    first = [e for e in events if e["timestamp"] == scrapes[0]]
    host = socket.gethostname()
    for e in first:
        assert list(e) == ["name", "namespace", "tags", "timestamp", "kind", e.get("gauge") and "gauge" or "counter"]
        assert e["namespace"] == "host" and e["kind"] == "absolute"
        assert e["tags"]["host"] == host and e["tags"]["collector"]
    by_name = {}
    for e in first:
        by_name.setdefault(e["name"], []).append(e)
    cpus = proc_stat_cpus()
    modes = {(e["tags"]["cpu"], e["tags"]["mode"]) for e in by_name["cpu_seconds_total"]}
    assert modes == {(str(i), m) for i in range(cpus) for m in ("idle", "io_wait", "nice", "system", "user")}
    assert by_name["logical_cpus"][0]["gauge"]["value"] == os.sysconf("SC_NPROCESSORS_ONLN")
    for name in ("memory_total_bytes", "memory_free_bytes", "memory_available_bytes", "memory_active_bytes",
                 "memory_buffers_bytes", "memory_cached_bytes", "memory_shared_bytes", "memory_used_bytes",
                 "uptime", "boot_time", "load1", "load5", "load15"):
        assert name in by_name, name
    mem_total_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert by_name["memory_total_bytes"][0]["gauge"]["value"] == mem_total_kb * 1000  # heim's "kB" = 1000
    devices = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}
    for name in ("disk_read_bytes_total", "disk_written_bytes_total", "disk_reads_completed_total",
                 "disk_writes_completed_total"):
        assert {e["tags"]["device"] for e in by_name[name]} == devices
    root_fs = [e for e in by_name["filesystem_total_bytes"] if e["tags"]["mountpoint"] == "/"]
    assert root_fs and {"filesystem", "mountpoint", "device", "collector", "host"} == set(root_fs[0]["tags"])
    for name in ("filesystem_free_bytes", "filesystem_used_bytes", "filesystem_used_ratio"):
        assert name in by_name
    for name in ("network_receive_bytes_total", "network_receive_packets_total", "network_receive_errs_total",
                 "network_transmit_bytes_total", "network_transmit_packets_total", "network_transmit_errs_total",
                 "network_transmit_packets_drop_total"):
        assert "lo" in {e["tags"]["device"] for e in by_name[name]}, name
    assert "network_receive_packets_drop_total" not in by_name
    parsed = [time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:-1]) for s in scrapes]
    gaps = [b - a for a, b in zip(parsed, parsed[1:])]
    assert all(0.8 < g < 1.3 for g in gaps), gaps


def test_metric_to_log_output_shape(tmp_path, running):
    """src/transforms/metric_to_log.rs: name, namespace, tags (host moved to .host), kind,
    counter.value or gauge.value, timestamp."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.h]\ntype = "host_metrics"\nscrape_interval_secs = 1\ncollectors = ["load", "cpu"]\n'
        '[transforms.m]\ntype = "metric_to_log"\ninputs = ["h"]\n', ["m"]))
    r = running(cfg)
    events = r.events(lambda got: any(e["name"] == "load1" for e in got))
    r.stop()
    load1 = [e for e in events if e["name"] == "load1"][0]
    assert set(load1) == {"name", "namespace", "tags", "kind", "gauge", "timestamp", "host"}
    assert load1["host"] == socket.gethostname() and load1["tags"] == {"collector": "load"}
    assert load1["kind"] == "absolute" and isinstance(load1["gauge"]["value"], float)
    assert RFC3339.match(load1["timestamp"])
    cpu = [e for e in events if e["name"] == "cpu_seconds_total"][0]
    assert set(cpu["counter"]) == {"value"} and set(cpu["tags"]) == {"collector", "cpu", "mode"}


def test_remap_programs_run_in_the_order_of_inputs(tmp_path, running):
    """Each event flows from an output to every component that lists it in `inputs` (a copy each):
    r1 -> r2 is a chain, r3 a branch of its own."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\ncommand = ["/bin/echo", "x"]\n'
        "[transforms.r1]\ntype = \"remap\"\ninputs = [\"e\"]\nsource = '.steps = [\"r1\"]'\n"
        "[transforms.r2]\ntype = \"remap\"\ninputs = [\"r1\"]\nsource = '.steps = push(array!(.steps), \"r2\")'\n"
        "[transforms.r3]\ntype = \"remap\"\ninputs = [\"e\"]\nsource = '.steps = [\"r3\"]'\n", ["r2", "r3"]))
    r = running(cfg)
    events = r.events(lambda got: len(got) >= 2)
    time.sleep(0.5)
    r.stop()
    assert sorted(e["steps"] for e in events) == [["r1", "r2"], ["r3"]], r.stderr


def test_remap_abort_drops_and_runtime_error_passes_the_original(tmp_path, running):
    """src/transforms/remap.rs: drop_on_abort = true (the event is dropped), drop_on_error = false
    (the original event, unmodified, goes on)."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\n'
        'command = ["/bin/sh", "-c", "echo keep; echo abort; echo fail; echo end"]\n'
        '[transforms.r]\ntype = "remap"\ninputs = ["e"]\nsource = \'\'\'\n'
        'if .message == "abort" { abort }\n'
        'if .message == "fail" { .x = parse_json!("{") }\n'
        '.mapped = true\n\'\'\'\n', ["r"]))
    r = running(cfg)
    events = r.events(lambda got: any(e["message"] == "end" for e in got))
    r.stop()
    by_message = {e["message"]: e for e in events}
    assert set(by_message) == {"keep", "fail", "end"}, r.stderr
    assert by_message["keep"]["mapped"] is True
    assert "mapped" not in by_message["fail"] and "x" not in by_message["fail"]
    assert "Mapping failed with event" in r.stderr


def test_timestamps_are_vrl_timestamps(tmp_path, running):
    """exec's and metric_to_log's .timestamp is a timestamp in VRL (not a string), and a timestamp a
    program stores stays one for the next program and is serialized as RFC 3339."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\ncommand = ["/bin/echo", "x"]\n'
        "[transforms.a]\ntype = \"remap\"\ninputs = [\"e\"]\n"
        "source = '''\n.was_ts = is_timestamp(.timestamp)\n.was_string = is_string(.timestamp)\n.later = now()\n'''\n"
        "[transforms.b]\ntype = \"remap\"\ninputs = [\"a\"]\nsource = '.later_is_ts = is_timestamp(.later)'\n",
        ["b"]))
    r = running(cfg)
    events = r.events(lambda got: got)
    r.stop()
    e = events[0]
    assert e["was_ts"] is True and e["was_string"] is False and e["later_is_ts"] is True, e
    assert RFC3339.match(e["later"]) and e["later"].endswith("Z") and RFC3339.match(e["timestamp"])


def test_exec_scheduled_runs_the_command_as_written_every_interval(tmp_path, running):
    """src/sources/exec/mod.rs: the command as configured (no shell added), each output line an
    event with message, stream (stderr included by default), pid, host, command, source_type,
    timestamp; the last line without a newline too; runs every exec_interval_secs."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\nscheduled.exec_interval_secs = 1\n'
        'command = ["/bin/sh", "-c", "echo one; echo two >&2; printf last"]\n', ["e"]))
    r = running(cfg)
    events = r.events(lambda got: sum(e["message"] == "last" for e in got) >= 3, timeout=10)
    r.stop()
    first_run = [e for e in events if e["pid"] == events[0]["pid"]]
    assert sorted((e["message"], e["stream"]) for e in first_run) == [
        ("last", "stdout"), ("one", "stdout"), ("two", "stderr")]
    for e in first_run:
        assert set(e) == {"message", "stream", "pid", "host", "command", "source_type", "timestamp"}
        assert e["command"] == ["/bin/sh", "-c", "echo one; echo two >&2; printf last"]
        assert e["source_type"] == "exec" and e["host"] == socket.gethostname()
    starts = sorted({e["pid"]: e["timestamp"] for e in events if e["message"] == "one"}.values())
    assert len(starts) >= 3
    parsed = [float(re.search(r":(\d\d(\.\d+)?)Z$", s).group(1)) for s in starts]
    gaps = [(b - a) % 60 for a, b in zip(parsed, parsed[1:])]
    assert all(0.8 < g < 1.3 for g in gaps), gaps


def test_exec_scheduled_kills_a_command_still_running_at_the_next_interval(tmp_path, running):
    """src/sources/exec/mod.rs run_scheduled: each run is wrapped in a timeout of one interval;
    the command is then dropped, and kill_on_drop kills it."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.e]\ntype = "exec"\nmode = "scheduled"\nscheduled.exec_interval_secs = 1\n'
        'command = ["/bin/sh", "-c", "echo start; exec sleep 30"]\n', ["e"]))
    r = running(cfg)
    events = r.events(lambda got: len(got) >= 3, timeout=10)
    pids = [e["pid"] for e in events]
    assert len(set(pids)) == 3, events
    time.sleep(0.3)
    for pid in pids[:2]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    r.stop()
    assert "Timeout during command execution" in r.stderr


def test_exec_streaming_lines_and_respawn(tmp_path, running):
    """src/sources/exec/mod.rs run_streaming: every line is an event as it comes; the command is
    run again respawn_interval_secs after it exits (respawn_on_exit = true by default), not at all
    with respawn_on_exit = false."""
    cfg = write(tmp_path / "vector.toml", console_config(
        '[sources.again]\ntype = "exec"\nmode = "streaming"\nstreaming.respawn_interval_secs = 1\n'
        'command = ["/bin/sh", "-c", "echo again"]\n'
        '[sources.once]\ntype = "exec"\nmode = "streaming"\nstreaming.respawn_on_exit = false\n'
        'command = ["/bin/sh", "-c", "echo once"]\n', ["again", "once"]))
    r = running(cfg)
    events = r.events(lambda got: sum(e["message"] == "again" for e in got) >= 3, timeout=10)
    r.stop()
    again = [e for e in events if e["message"] == "again"]
    assert len({e["pid"] for e in again}) == 3
    assert [e["message"] for e in events].count("once") == 1


def test_messages_come_only_from_the_configuration(tmp_path, running):
    """No message of the double's own, and no nvidia-smi unless an exec source runs it: a config
    with one exec source sends its lines and nothing else."""
    spy_dir = tmp_path / "bin"
    spy_dir.mkdir()
    marker = tmp_path / "nvidia-smi-was-run"
    write(spy_dir / "nvidia-smi", "#!/bin/sh\ntouch %s\n" % marker).chmod(0o755)
    port = free_port()
    cfg = write(tmp_path / "vector.toml", plain_ws_config(
        port, '[sources.e]\ntype = "exec"\nmode = "scheduled"\nscheduled.exec_interval_secs = 1\n'
              'command = ["/bin/echo", "hello"]\n', ["e"]))
    r = running(cfg, env={"PATH": "%s:%s" % (spy_dir, os.environ["PATH"])})
    r.wait_port(port)
    sock, head = ws_connect(port)
    with sock:
        assert head.startswith("HTTP/1.1 101")
        sock.settimeout(5)
        messages = [ws_recv_json(sock) for _ in range(2)]
    assert all(m["message"] == "hello" and "metric_type" not in m for m in messages), messages
    assert not marker.exists()


def test_one_broadcast_stream_for_every_client(tmp_path, running):
    """src/sinks/websocket_server/sink.rs: each event goes to the clients connected at that moment
    (the same stream for all); events while no client is connected are dropped."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", plain_ws_config(
        port, '[sources.count]\ntype = "exec"\nmode = "streaming"\n'
              'command = ["/bin/sh", "-c", "i=0; while :; do echo $$i; i=$$((i+1)); sleep 0.05; done"]\n',
        ["count"]))
    r = running(cfg)
    r.wait_port(port)
    time.sleep(0.5)
    a, _ = ws_connect(port)
    b, _ = ws_connect(port)
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        from_a = [int(ws_recv_json(a)["message"]) for _ in range(20)]
        from_b = [int(ws_recv_json(b)["message"]) for _ in range(20)]
    assert from_a[0] > 0 and from_b[0] > 0, "events from before the first client were not dropped"
    assert from_a == list(range(from_a[0], from_a[0] + 20))
    common = sorted(set(from_a) & set(from_b))
    assert len(common) >= 10, (from_a, from_b)


def test_one_json_object_per_text_frame(tmp_path, running):
    """sink.rs: Message::text of each encoded event (json codec: one object, keys in BTreeMap order)."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", plain_ws_config(
        port, '[sources.e]\ntype = "exec"\nmode = "scheduled"\nscheduled.exec_interval_secs = 1\n'
              'command = ["/bin/sh", "-c", "echo a; echo b; echo c"]\n', ["e"]))
    r = running(cfg)
    r.wait_port(port)
    sock, _ = ws_connect(port)
    with sock:
        sock.settimeout(5)
        frames = [ws_recv_frame(sock) for _ in range(3)]
    for opcode, data in frames:
        assert opcode == 0x1
        obj = json.loads(data)
        assert isinstance(obj, dict) and list(obj) == sorted(obj)
        assert data.decode() == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# The websocket_server sink's network behaviour
# --------------------------------------------------------------------------------------------------
@needs_openssl
def test_mtls_sink_requires_a_client_certificate_from_its_ca(tmp_path, pki, running):
    port = free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"], ca=pki["mtls_ca"][0], verify=True))
    r = running(cfg)
    r.wait_port(port)
    sock, head = ws_connect(port, ca=pki["server_ca"][0], cert=pki["client"])
    with sock:
        assert head.startswith("HTTP/1.1 101")
        assert "name" in ws_recv_json(sock)
    for cert in (None, pki["stranger"]):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            sock, head = ws_connect(port, ca=pki["server_ca"][0], cert=cert)
            with sock:
                ws_recv_json(sock)


@needs_openssl
def test_verify_certificate_without_ca_file_refuses_every_client(tmp_path, pki, running):
    """settings.rs apply_context_base: the verify store is ca_file only; on Linux no system root is
    loaded, so with verify_certificate and no ca_file no client certificate can be verified."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"], verify=True))
    r = running(cfg)
    r.wait_port(port)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        sock, head = ws_connect(port, ca=pki["server_ca"][0], cert=pki["client"])
        with sock:
            ws_recv_json(sock)


@needs_openssl
def test_request_without_upgrade_is_closed_without_a_response(tmp_path, pki, running):
    """tungstenite 0.20.1 server handshake: a request that is not a WebSocket upgrade is an error and
    the connection is closed; no HTTP response is written."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"]))
    r = running(cfg)
    r.wait_port(port)
    ctx = ssl.create_default_context(cafile=str(pki["server_ca"][0]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                assert s.recv(100) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass


@needs_openssl
def test_api_health(tmp_path, pki, running):
    import urllib.request
    port, api = free_port(), free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"], api=api))
    r = running(cfg)
    r.wait_port(api)
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % api, timeout=5) as resp:
        assert json.load(resp) == {"ok": True}


@needs_openssl
def test_no_tls_handshake_timeout(tmp_path, pki, running):
    """lib/vector-core/src/tls/incoming.rs: the TLS handshake is lazy and has no timeout; a silent
    client neither is dropped nor blocks the accept loop."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"]))
    r = running(cfg)
    r.wait_port(port)
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)
    other, head = ws_connect(port, ca=pki["server_ca"][0])  # accepted while the first one is silent
    with other:
        assert head.startswith("HTTP/1.1 101")
    time.sleep(11)  # longer than the 10 s the double used to allow
    ctx = ssl.create_default_context(cafile=str(pki["server_ca"][0]))
    with ctx.wrap_socket(silent, server_hostname="localhost") as tls:
        assert ws_handshake(tls, port).startswith("HTTP/1.1 101")


def test_accept_error_ends_the_accept_loop_for_good(tmp_path, running):
    """sink.rs `while let Ok(stream) = listener.accept().await`: the first accept error (here EMFILE:
    the process is out of file descriptors; Vector does not raise RLIMIT_NOFILE) ends the loop and
    drops the listener for good, while the process and the clients already connected go on."""
    port = free_port()
    cfg = write(tmp_path / "vector.toml", plain_ws_config(
        port, '[sources.e]\ntype = "exec"\nmode = "streaming"\n'
              'command = ["/bin/sh", "-c", "while :; do echo tick; sleep 0.1; done"]\n', ["e"]))
    limit = 40

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    r = running(cfg, preexec_fn=low_nofile)
    r.wait_port(port)
    limits = Path("/proc/%d/limits" % r.proc.pid).read_text()
    assert re.search(r"Max open files\s+%d\s" % limit, limits), "the double changed RLIMIT_NOFILE"
    client, _ = ws_connect(port)
    client.settimeout(5)
    assert ws_recv_json(client)["message"] == "tick"
    held = []
    refused = False
    for _ in range(3 * limit):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except ConnectionRefusedError:
            refused = True
            break
        time.sleep(0.05)
    assert refused, "the listener never closed"
    for s in held:
        s.close()
    time.sleep(1)
    assert r.proc.poll() is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    with client:
        deadline = time.time() + 10
        while True:  # the connected client gets events again once descriptors are free
            assert time.time() < deadline
            if ws_recv_json(client).get("message") == "tick":
                break


@needs_openssl
def test_sighup_keeps_the_certificate_of_an_unchanged_sink_restart_loads_the_new_one(tmp_path, pki, running):
    """src/config/diff.rs: a reload rebuilds only changed components; an unchanged websocket_server
    sink keeps the certificate it loaded at start."""
    port = free_port()
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki["server"][0], crt)
    shutil.copy(pki["server"][1], key)
    cfg = write(tmp_path / "vector.toml", toml_config(port, crt, key))
    r = running(cfg)
    r.wait_port(port)
    first = cert_fingerprint(port)
    shutil.copy(pki["server2"][0], crt)
    shutil.copy(pki["server2"][1], key)
    r.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert r.proc.poll() is None
    assert cert_fingerprint(port) == first
    r.stop()
    r2 = running(cfg)
    r2.wait_port(port)
    assert cert_fingerprint(port) != first


@needs_openssl
def test_sighup_that_changes_the_sink_stops_vector(tmp_path, pki, running):
    """sink.rs: the accept loop runs in a task of its own that owns the listener, so after a reload
    that changes the sink the old listener keeps the port; the new sink's bind fails, the sink ends
    with an error and Vector shuts down (src/topology/mod.rs handle_errors), exit status 0 - systemd's
    Restart=always then starts it again.  Restart, not reload, after a sink change."""
    port = free_port()
    api = free_port()
    cfg = write(tmp_path / "vector.toml", toml_config(port, *pki["server"], api=api))
    r = running(cfg)
    r.wait_port(port)
    write(cfg, toml_config(port, *pki["server2"], api=api))
    r.proc.send_signal(signal.SIGHUP)
    assert r.proc.wait(15) == 0
    assert "An error occurred that Vector couldn't handle" in r.stderr and "TCP bind failed" in r.stderr


@needs_openssl
def test_run_mode_refuses_an_invalid_config(tmp_path, pki):
    cfg = write(tmp_path / "vector.toml", toml_config(free_port(), pki["server"][0], tmp_path / "absent.key"))
    r = vector("--config", cfg)
    assert r.returncode == 78
    assert "absent.key" in r.stderr


# --------------------------------------------------------------------------------------------------
# The config the installer really writes
# --------------------------------------------------------------------------------------------------
INSTALLER_ENV = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "a@example.com", "ACTVT_ENABLE_MTLS": "yes"}


def installer_configs(tmp_path, pki, ports):
    """vector.toml as `install --root` writes it (mTLS) and as render_config makes it with a GPU;
    only the certificate paths, the sink's address and the API's (default 127.0.0.1:8686) are
    pointed at this test's files and free ports."""
    root = tmp_path / "root"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTVT_", "VECTOR_"))}
    env.update(INSTALLER_ENV)
    r = subprocess.run([sys.executable, "-m", "installer.commands.cli", "--root", str(root)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    written = (root / "etc/vector/vector.toml").read_text()
    from installer.concerns import vector as vector_concern
    from installer.core import config as installer_config
    with_gpu = vector_concern.render_config(installer_config.parse(env), "standalone", gpu=True)
    assert "[sources.gpu_metrics]" in with_gpu and "[sources.gpu_metrics]" not in written
    mtls_dir = root / "etc/vector/certs/mtls"
    out = []
    for text, port in ((written, ports[0]), (with_gpu, ports[1])):
        for old, new in (('"/etc/vector/certs/server.crt"', json.dumps(str(pki["server"][0]))),
                         ('"/etc/vector/certs/server.key"', json.dumps(str(pki["server"][1]))),
                         ('"/etc/vector/certs/mtls/ca.crt"', json.dumps(str(mtls_dir / "ca.crt"))),
                         ('"0.0.0.0:4096"', '"127.0.0.1:%d"' % port),
                         ("[api]\nenabled = true\n", '[api]\nenabled = true\naddress = "127.0.0.1:%d"\n' % free_port())):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        out.append(text)
    client = (mtls_dir / "clients/actvt-client-001.crt", mtls_dir / "clients/actvt-client-001.key")
    return out, client


@needs_openssl
def test_the_installers_config_validates_runs_and_streams_the_contract(tmp_path, pki, running, data_dir):
    """The strict double accepts what the installer writes (mTLS; and with a GPU), and a client with
    the installer's client certificate receives every metric_type of docs/metrics-contract.md with
    its fields, one JSON object per text frame.  nvidia-smi is the test double of docker/; getent
    is stubbed so that the system_info command resolves nothing (no DNS query leaves the machine)."""
    pytest.importorskip("installer")
    ports = (free_port(), free_port())
    (plain, gpu), client = installer_configs(tmp_path, pki, ports)
    files = [write(tmp_path / "vector.toml", plain), write(tmp_path / "vector-gpu.toml", gpu)]
    for f in files:
        r = vector("validate", f, data_dir)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "not imitated" not in r.stdout
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    write(stubs / "getent", "#!/bin/sh\nexit 2\n").chmod(0o755)
    path = "%s:%s:%s" % (stubs, NVIDIA_SMI_DOUBLE_DIR, os.environ["PATH"])
    runs = [running(f, env={"PATH": path}) for f in files]
    for r, port in zip(runs, ports):
        r.wait_port(port)
    results = [{}, {}]
    errors = []

    def collect(i, wanted):
        try:
            sock, head = ws_connect(ports[i], ca=pki["server_ca"][0], cert=client)
            with sock:
                assert head.startswith("HTTP/1.1 101"), head
                sock.settimeout(20)
                deadline = time.time() + 25
                while set(wanted) - set(results[i]) and time.time() < deadline:
                    opcode, data = ws_recv_frame(sock)
                    assert opcode == 0x1
                    msg = json.loads(data)
                    assert isinstance(msg, dict)
                    results[i].setdefault(msg["metric_type"], msg)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=collect, args=(0, HOST_CONTRACT)),
               threading.Thread(target=collect, args=(1, dict(HOST_CONTRACT, **GPU_CONTRACT)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not errors, errors
    host = socket.gethostname()
    for seen, wanted in ((results[0], HOST_CONTRACT), (results[1], dict(HOST_CONTRACT, **GPU_CONTRACT))):
        assert not set(wanted) - set(seen), "missing metric types: %s" % (set(wanted) - set(seen))
        for metric_type, fields in wanted.items():
            msg = seen[metric_type]
            assert set(fields) | {"metric_type", "host", "timestamp"} <= set(msg), msg
            assert msg["host"] == host and RFC3339.match(msg["timestamp"]), msg
    assert not any(m.startswith("gpu_") for m in results[0])
    assert results[0]["system_info"]["domain"] == "monitor.example.com"
    assert results[1]["gpu_utilization"]["gpu_name"] == "NVIDIA TEST DOUBLE GPU"
    assert results[1]["gpu_utilization"]["value"] == 37.0 and results[1]["gpu_fan_pstate"]["fan_speed"] == 0.0
    assert results[0]["memory_total"]["value"] > 0


# --------------------------------------------------------------------------------------------------
# The double's serialization against Vector's (serde_json, as vrl's encode_json uses it)
# --------------------------------------------------------------------------------------------------
def test_json_and_timestamps_serialize_like_serde_json():
    vrl = pytest.importorskip("vrl_python")
    double = load_double()
    floats = [1e16, 1e15, 1234567890123456.0, 0.00001, 0.0001, 1.5e-7, 12.0, 0.1, 1e300, 5e-324, 123.456,
              1e21, 0.15000000596046448, 2.5e-5, -0.5, 0.0, 24683584000.0, 7445.76]
    value = {"f": floats, "s": "é\u0001\"\\", "b": [True, None], "z": {"y": 1, "a": 2}}
    expected = vrl.VRLRuntime(None).execute("encode_json(.)", value).runtime_result
    assert double.to_json(value) == expected
    for ns, text in ((0, "1970-01-01T00:00:00Z"), (1_500_000_000, "1970-01-01T00:00:01.500Z"),
                     (1_000_001_000, "1970-01-01T00:00:01.000001Z"), (1, "1970-01-01T00:00:00.000000001Z")):
        assert double.Ts(ns).rfc3339() == text
        assert double.Ts.parse(text).ns == ns
