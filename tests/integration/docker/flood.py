#!/usr/bin/python3
"""A bounded flood of idle connections, from the tests' client container to the harness's own server:

    flood HOST PORT COUNT HOLD_SECONDS

Opens up to COUNT TCP connections to HOST:PORT that never send a byte (no TLS ClientHello), holds them
HOLD_SECONDS, then closes them. Prints one JSON line: how many connected, how many the server closed
while they were held (its timeouts), how many could not connect. Never more than COUNT connections,
never longer than HOLD_SECONDS plus the time to connect (40 s at most: a loaded server's listen queue
can drop SYNs, which TCP sends again)."""
import json
import resource
import select
import socket
import sys
import time


def main(host, port, count, hold):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 64)), hard))
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    held, failed = [], 0
    deadline = time.monotonic() + 40
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(address)
        except OSError:
            failed += 1
            s.close()
            continue
        s.setblocking(False)
        held.append(s)
    connected = len(held)
    closed = 0
    poller = select.poll()  # not select(): descriptors above 1023
    by_fd = {s.fileno(): s for s in held}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    end = time.monotonic() + hold
    while by_fd and time.monotonic() < end:
        for fd, _ in poller.poll(max(0, min(1000, int((end - time.monotonic()) * 1000)))):
            s = by_fd[fd]  # the server closed it (or reset it): it ended an idle connection
            try:
                data = s.recv(1)
            except OSError:
                data = b""
            if not data:
                closed += 1
                poller.unregister(fd)
                del by_fd[fd]
                s.close()
    for s in by_fd.values():
        s.close()
    print(json.dumps({"connected": connected, "closed_by_server": closed, "failed": failed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
