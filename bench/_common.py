"""Shared by the bench/ scripts: the machine, timing and peak memory of a child process, an extraction
cache of our own, JSON results. Standard library only."""

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
# dist/install.pyz, or the copy run_all.py took at its start (a rebuild during the run changes nothing)
PYZ = os.environ.get("ACTVT_BENCH_PYZ") or os.path.join(REPO, "dist", "install.pyz")
SYSTEM_CACHE = "/var/cache/actvt"  # installer/launcher/launcher.py: root's extraction cache
ISOLATED = "ACTVT_BENCH_PRIVATE_CACHE"  # set when this process sees a private /var/cache/actvt


def python_binary():
    """The real interpreter (not a pyenv shim, whose shell start-up would be measured too)."""
    return os.path.realpath(sys.executable)


def clean_env(**extra):
    """The environment of the measured commands: no ACTVT_/SHIV_ variables, no PYTHONUNBUFFERED (whose
    effect is measured on purpose, by passing it here), no colour."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ACTVT_", "SHIV_")) and k not in ("PYTHONUNBUFFERED", "PYTHONSTARTUP")}
    env["NO_COLOR"] = "1"
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def load():
    with open("/proc/loadavg") as handle:
        one, five, fifteen = handle.read().split()[:3]
    return {"1min": float(one), "5min": float(five), "15min": float(fifteen)}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_binary": python_binary(),
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "load": load(),
        "uptime": _uptime(),
        "install_pyz_sha256": _sha256(PYZ),
    }


def _uptime():
    """`uptime`'s line (none in a minimal Debian image, where procps is not installed)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return None


def _sha256(path):
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


class Run:
    """One finished child: wall seconds, peak RSS (kB), exit status, output."""

    def __init__(self, seconds, maxrss_kb, rc, out, err, hwm_kb=None):
        self.seconds, self.maxrss_kb, self.rc, self.out, self.err, self.hwm_kb = seconds, maxrss_kb, rc, out, err, hwm_kb

    def check(self, what):
        if self.rc != 0:
            raise SystemExit("%s failed (exit %d):\n%s\n%s" % (what, self.rc, self.out[-2000:], self.err[-2000:]))
        return self


# The measured command is started by this small helper (a fresh interpreter, a few MB): it fork()s and
# exec()s the command and reports os.wait4(child) for that child alone. Started directly from the bench
# process, the command's ru_maxrss would include the bench's own pages (a fork copies them; a vfork, as
# posix_spawn does, shares them and Linux counts them at the exec). The helper also polls the child's
# VmHWM (its own peak; the pid and this figure survive the launcher's exec into shiv).
_HELPER = r"""
import json, os, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
def hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
peak, done = [0], threading.Event()
def poll():
    while not done.is_set():
        peak[0] = max(peak[0], hwm(pid))
        done.wait(0.02)
poller = threading.Thread(target=poll)
poller.start()
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
done.set()
poller.join()
with open(out, "w") as handle:
    json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss, "hwm_kb": peak[0],
               "rc": os.waitstatus_to_exitcode(status)}, handle)
"""


def measure(argv, env, stdin_data=None, poll_hwm=False, cwd=None):
    """Run argv (through _HELPER); stdin_data (bytes) goes through a real pipe, as with `cat file | ...`.

    seconds: wall time from fork to exit. maxrss_kb: os.wait4's ru_maxrss, the largest single process
    among the command and the descendants it waited for. hwm_kb: the command's own peak RSS (VmHWM
    polled every 20 ms; a peak in the last 20 ms of a process may be missed: maxrss_kb is exact)."""
    report = tempfile.NamedTemporaryFile(prefix="actvt-bench-", suffix=".json", delete=False)
    report.close()
    stdin = subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([python_binary(), "-S", "-c", _HELPER, report.name] + list(argv), env=env,
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        out, err = proc.communicate(stdin_data)
        with open(report.name) as handle:
            fig = json.load(handle)
    finally:
        os.unlink(report.name)
    return Run(fig["seconds"], fig["maxrss_kb"], fig["rc"], out.decode("utf-8", "replace"),
               err.decode("utf-8", "replace"), fig["hwm_kb"] if poll_hwm else None)


def median(values):
    return statistics.median(values)


def summary(values):
    return {"median": round(median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4),
            "runs": len(values)}


# --- the launcher's extraction cache ---------------------------------------------------------------

def cache_dirs():
    """The folders the launcher uses for this user (installer/launcher/launcher.py cache_root)."""
    if os.geteuid() == 0:
        return [SYSTEM_CACHE]
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return [os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "actvt"),
            "/var/tmp/actvt-%d" % os.geteuid(), "/tmp/actvt-%d" % os.geteuid(), "/dev/shm/actvt-%d" % os.geteuid()]


def empty_cache():
    """Remove what the launcher extracted (its pyz/ and shiv/ folders), so that the next run is cold."""
    for folder in cache_dirs():
        for sub in ("pyz", "shiv"):
            shutil.rmtree(os.path.join(folder, sub), ignore_errors=True)


def private_cache(argv=None):
    """As root, re-run this script in a private mount namespace where /var/cache/actvt is a fresh folder
    on the same disk (/var/tmp), so emptying it does not disturb other runs of the installer on this
    machine. Without root or `unshare`, the user's own cache is used (and emptied)."""
    if os.environ.get(ISOLATED) or os.geteuid() != 0 or os.environ.get("ACTVT_BENCH_SHARED_CACHE") == "1":
        return
    if not shutil.which("unshare"):
        print("note: no `unshare`; using (and emptying) the real %s" % SYSTEM_CACHE, flush=True)
        return
    private = tempfile.mkdtemp(prefix="actvt-bench-cache-", dir="/var/tmp")
    os.makedirs(SYSTEM_CACHE, exist_ok=True)
    argv = argv or [python_binary()] + sys.argv
    script = 'mount --bind "$0" %s && exec "$@"' % SYSTEM_CACHE
    env = dict(os.environ, **{ISOLATED: private})
    try:
        rc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, private] + argv,
                            env=env).returncode
    finally:
        shutil.rmtree(private, ignore_errors=True)
    sys.exit(rc)


def ensure_pyz():
    if not os.path.exists(PYZ):
        raise SystemExit("dist/install.pyz is missing: run `python3 build.py` first")
    return PYZ


def write_result(name, data):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".json")
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    print("  wrote %s" % os.path.relpath(path, REPO), flush=True)
    return path


def write_skipped(name, result, reason):
    """A benchmark that needs the Docker harness, without it: the reason, printed and in its result
    (docs/benchmarks.md says "not measured" with it). Exit status 0."""
    print("%s: skipped: Docker harness unavailable: %s" % (name, reason))
    result["skipped"] = reason
    write_result(name, result)
    return 0


def kept_command(pyz, root, python, env_extra=None):
    """Install under --root (as tests/test_launcher.py does), then point the kept `actvt` command at the
    zipapp kept under that root; returns the command's path."""
    env = clean_env(ACTVT_DOMAIN="monitor.example.com", ACTVT_EMAIL="you@example.com", ACTVT_ENABLE_MTLS="yes",
                    **(env_extra or {}))
    with open(pyz, "rb") as handle:
        data = handle.read()
    measure([python, "-", "--yes", "--root", root], env, stdin_data=data).check("install under --root")
    kept = os.path.join(root, "usr/local/lib/actvt/actvt.pyz")
    command = os.path.join(root, "usr/local/bin/actvt")
    with open(command) as handle:
        text = handle.read()
    text = text.replace('"/usr/local/lib/actvt/actvt.pyz"', repr(kept))
    with open(command, "w") as handle:
        handle.write(text)
    return command


# --- the Docker harness (tests/integration/harness.py) ----------------------------------------------

MTLS_ENV = {"ACTVT_ENABLE_MTLS": "yes"}


def docker_or_reason(timeout=900):
    """(harness module, Docker client) or (None, reason why Docker cannot be used)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    try:
        import harness as H
    except ImportError as exc:
        return None, "cannot import tests/integration/harness.py (%s)" % exc
    try:
        return H, H.connect(timeout=timeout)
    except H.HarnessUnavailable as exc:
        return None, str(exc)


def harness_or_reason():
    """(harness module, Harness) or (None, reason why the Docker harness cannot be used)."""
    H, client = docker_or_reason()
    if H is None:
        return None, client
    try:
        return H, H.Harness(client, pyz_path=ensure_pyz())
    except H.HarnessUnavailable as exc:
        return None, str(exc)


def measured_install(H, server, *args, env=None):
    """`curl -fsSL http://mirror/install.pyz | python3 - ARGS` on the server, measured inside it
    (bench/_in_container.py). Returns (figures, installer stdout, stderr)."""
    with open(os.path.join(HERE, "_in_container.py"), "rb") as handle:
        server.put_file("/root/actvt-bench-measure.py", handle.read(), mode=0o644)
    full_env = server.installer_env(dict({"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}, **(env or {})))
    r = server.exec(["python3", "/root/actvt-bench-measure.py", H.PIPE_URL] + list(args), env=full_env, timeout=1800)
    marker = [line for line in r.err.splitlines() if line.startswith("ACTVT-BENCH ")]
    if not marker:
        raise SystemExit("the measured install did not report:\n%s" % r)
    figures = json.loads(marker[-1][len("ACTVT-BENCH "):])
    if figures["rc"] != 0:
        raise SystemExit("the install failed on the server:\n%s" % r)
    return figures, r.out, r.err
