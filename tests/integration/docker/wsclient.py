#!/usr/bin/python3
"""WebSocket client of the tests' client container, connecting as the Actvt app would.

    wsclient.py URL [--ca FILE] [--cert FILE --key FILE] [--count N] [--timeout S] [--match PREFIX --within S]

Prints each received message on its own line and exits 0 after COUNT messages; exits 1 with the
error on stderr when the connection or the TLS handshake is refused, or when a message takes longer
than --timeout. With --match, only messages whose metric_type starts with PREFIX are counted and
printed, and all COUNT must arrive within --within seconds of connecting. Uses Debian's
python3-websockets. (The harness copies this file into the client container at the start of a session.)
"""
import argparse
import asyncio
import json
import ssl
import sys
import time

import websockets


async def run(args):
    ctx = None
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
    async with websockets.connect(args.url, ssl=ctx, open_timeout=args.timeout, max_size=None) as ws:
        deadline = time.monotonic() + args.within if args.within else None
        seen = 0
        while seen < args.count:
            wait = args.timeout if deadline is None else min(args.timeout, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("%d of %d %s* messages within %s s" % (seen, args.count, args.match, args.within))
            msg = await asyncio.wait_for(ws.recv(), wait)
            text = msg if isinstance(msg, str) else msg.decode()
            if args.match is not None and not str(json.loads(text).get("metric_type", "")).startswith(args.match):
                continue
            seen += 1
            print(text, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--match", help="count only messages whose metric_type starts with this")
    p.add_argument("--within", type=float, help="all COUNT messages within this many seconds")
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except Exception as exc:  # report any refusal the way a user sees it
        print("wsclient: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
