#!/usr/bin/python3 -I
"""Restart Vector when its port stops completing TLS handshakes. Written by actvt-installer, run every
30 s by actvt-vector-health.timer:

    vector-health PORT SERVER_NAME

Vector's WebSocket server stops accepting connections for good after one failed accept (for example
when a flood of idle connections has used every file descriptor) while the process stays up, so
systemd never restarts it. This connects to the port on 127.0.0.1 as a client does; when three
attempts 5 s apart all fail, and Vector has been active for 20 s, it restarts Vector and exits 1 (the
unit shows as failed until the next check). A Vector that is stopped or failing to start is left to
systemd and to whoever stopped it.
"""
import socket
import ssl
import subprocess
import sys
import time

ATTEMPTS, PAUSE, TIMEOUT, SETTLE = 3, 5, 5, 20
UNIT = "vector.service"


def answers(port, name):
    """True when the port speaks TLS: the handshake completes, or the server ends it with a TLS alert
    (it wants a client certificate). Refused, reset, silent or closed: False."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whether it answers, not whom we trust
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                return True
    except ssl.SSLEOFError:
        return False
    except ssl.SSLError:
        return True
    except OSError:
        return False


def active_seconds():
    """How long Vector has been active, or None when it is not active."""
    out = subprocess.run(["systemctl", "show", UNIT, "-p", "ActiveState", "-p", "ActiveEnterTimestampMonotonic"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if values.get("ActiveState") != "active":
        return None
    since = int(values.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
    return time.clock_gettime(time.CLOCK_MONOTONIC) - since


def main(argv):
    port, name = int(argv[1]), argv[2]
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(PAUSE)
        if answers(port, name):
            return 0
    up = active_seconds()
    if up is None or up < SETTLE:
        return 0
    print("vector-health: port %d completed no TLS handshake in %d attempts: restarting %s" % (port, ATTEMPTS, UNIT),
          flush=True)
    subprocess.run(["systemctl", "restart", UNIT])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
