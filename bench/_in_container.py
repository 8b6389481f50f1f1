"""Copied into a test server by bench/install_times.py and bench/memory.py, run there with its python3:

    python3 /root/actvt-bench-measure.py URL ARGS...

runs `curl -fsSL URL | python3 - ARGS` (the documented pipe) and prints one JSON line on stderr:
wall seconds, the installer process's own peak RSS (VmHWM, polled every 20 ms, kept across the launcher's
exec) and the largest process of the whole tree (wait4 ru_maxrss: curl, apt, dpkg, certbot, ...).
The installer's stdout (the --json summary) is passed through. Python 3.9+ standard library only."""
import json
import os
import subprocess
import sys
import threading
import time


def hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def main():
    url, args = sys.argv[1], sys.argv[2:]
    started = time.monotonic()
    curl = subprocess.Popen(["curl", "-fsSL", url], stdout=subprocess.PIPE)
    installer = subprocess.Popen(["python3", "-"] + args, stdin=curl.stdout)
    curl.stdout.close()
    peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], hwm(installer.pid))
            done.wait(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    _, status, usage = os.wait4(installer.pid, 0)
    seconds = time.monotonic() - started
    done.set()
    poller.join()
    curl.wait()
    rc = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    sys.stderr.write("\nACTVT-BENCH " + json.dumps({"rc": rc, "seconds": round(seconds, 3), "installer_hwm_kb": peak[0],
                                                     "tree_maxrss_kb": usage.ru_maxrss}) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
