"""Shared test helpers: configurations, fake facts, tree hashing, a recording runner."""

import contextlib
import hashlib
import http.server
import io
import os
import re
import subprocess
import threading
from pathlib import Path

from installer.commands import cli
from installer.core import config
from installer.core.facts import Facts, Listener, OSInfo

README = Path(__file__).resolve().parents[1] / "README.md"
DOMAIN, EMAIL = "monitor.example.com", "admin@example.com"
DEBIAN = OSInfo(id="debian", version_id="12", pretty_name="Debian GNU/Linux 12 (bookworm)")
ENV = {"ACTVT_DOMAIN": DOMAIN, "ACTVT_EMAIL": EMAIL, "NO_COLOR": "1"}

#: The metrics contract with the app (docs/metrics-contract.md): metric_type -> its fields besides
#: metric_type, host and timestamp. The VRL unit tests (test_vector.py) and the double's pipeline
#: (integration/test_vector_standin.py) both check messages against it.
HOST_CONTRACT = {
    "memory_used": ("value",), "memory_total": ("value",),
    "cpu_idle": ("value", "cpu"), "cpu_total": ("value", "cpu"),
    **{name: ("value", "interface") for name in (
        "network_rx_bytes", "network_tx_bytes", "network_rx_packets", "network_tx_packets",
        "network_rx_errors", "network_tx_errors", "network_tx_dropped")},
    **{name: ("value", "filesystem", "device", "mountpoint") for name in ("disk_total", "disk_used", "disk_free")},
    "disk_read_bytes": ("value", "device"), "disk_write_bytes": ("value", "device"),
    **{name: ("value",) for name in ("uptime", "boot_time", "load_1min", "load_5min", "load_15min",
                                      "cpu_logical_count", "cpu_physical_count")},
    "system_info": ("os", "arch", "domain", "ipv4", "ipv4_public"),
}
GPU_CONTRACT = {
    "gpu_utilization": ("value", "gpu_name"),
    "gpu_memory": ("memory_used", "memory_total", "memory_percent", "gpu_name"),
    "gpu_temperature": ("value", "gpu_name"),
    "gpu_clocks": ("clock_graphics", "clock_memory", "gpu_name"),
    "gpu_power": ("power_draw", "power_limit", "power_percent", "gpu_name"),
    "gpu_encoder_decoder": ("encoder_utilization", "decoder_utilization", "gpu_name"),
    "gpu_fan_pstate": ("fan_speed", "performance_state", "gpu_name"),
}


def run_cli(argv, env=None, base=ENV):
    """(exit status, stdout) of ``install.pyz ARGV`` run in-process, its environment ``base`` with ``env``
    on top; with --json the human lines go to stderr."""
    stdout = io.StringIO()
    status = cli.main(list(argv), environ={**base, **(env or {})}, stdout=stdout)
    return status, stdout.getvalue()


def make_config(**values):
    env = {"ACTVT_DOMAIN": DOMAIN, "ACTVT_EMAIL": EMAIL}
    env.update({f"ACTVT_{k.upper()}": v for k, v in values.items()})
    return config.parse(env)


def make_facts(web=None, gpu=False, files=None, **extra):
    listeners = (Listener(80, "0.0.0.0", web), Listener(443, "0.0.0.0", web)) if web else ()
    return Facts(os=DEBIAN, package_manager="apt", listeners=listeners, gpu=gpu, is_root=True,
                 systemd_running=True, files=files or {}, **extra)


def tree_digest(root):
    """Every path under root with its type, mode, owner and content hash."""
    listing = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            entry = [os.path.relpath(path, root), oct(st.st_mode), st.st_uid, st.st_gid]
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    entry.append(hashlib.sha256(handle.read()).hexdigest())
            elif os.path.islink(path):
                entry.append(os.readlink(path))
            listing.append(tuple(entry))
    return listing


#: The one command that rewrites tests/golden/ (a commit that runs it names it in its message)
UPDATE_GOLDEN = "python scripts/update_golden.py"


def recorded(path):
    """The bytes of a golden file (tests/golden/), which tests only read: a test that rewrote its own
    expectation would pass whatever the code does, so ACTVT_UPDATE_GOLDEN (the old update mode) fails
    the test instead, naming the command that updates the files."""
    if "ACTVT_UPDATE_GOLDEN" in os.environ:
        raise AssertionError(f"ACTVT_UPDATE_GOLDEN is set, but the golden tests only compare: run {UPDATE_GOLDEN}, "
                             "review `git diff tests/golden` and name the command in the commit message")
    with open(path, "rb") as handle:
        return handle.read()


class RecordingRunner:
    """Stands in for engine.Runner: records argv, answers from a table, fails on request."""

    def __init__(self, answers=None, fail_on=()):
        self.calls = []
        self.answers = answers or {}
        self.fail_on = fail_on

    def run(self, argv, env=None, check=True, display=None, timeout=None, secrets=()):
        from installer.core.errors import ApplyError

        self.calls.append(tuple(argv))
        key = " ".join(argv)
        if any(key.startswith(prefix) for prefix in self.fail_on):
            if check:
                raise ApplyError(f"{key} failed (exit 1): simulated")
            return subprocess.CompletedProcess(argv, 1, "", "simulated")
        return subprocess.CompletedProcess(argv, 0, self.answers.get(key, ""), "")


@contextlib.contextmanager
def serving(files, requests=None):
    """An HTTP server on 127.0.0.1 answering GET of each path in ``files`` with its bytes (200), and
    404 for any other path; yields its base URL. A value may also be an HTTP status (an int: that
    status, no body) or a list of such answers given in turn (the last one repeats). Each request's
    path is appended to ``requests`` when it is a list."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answer = files.get(self.path)
            if isinstance(answer, list):
                answer = answer.pop(0) if len(answer) > 1 else answer[0]
            if requests is not None:
                requests.append(self.path)
            status = answer if isinstance(answer, int) else 404 if answer is None else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(answer if isinstance(answer, bytes) else b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def readme_example(name):
    """The text of README.md's example NAME: between its `<!-- example:NAME:start/end -->` markers, inside
    the fence (the end-to-end scenarios run these texts, and the unit tests check them)."""
    found = re.search(r"<!-- example:%s:start -->\n```[a-z]*\n(.*?)```\n<!-- example:%s:end -->"
                      % (re.escape(name), re.escape(name)), README.read_text(), re.S)
    assert found, "README.md has no example %r between its markers" % name
    return found.group(1)
