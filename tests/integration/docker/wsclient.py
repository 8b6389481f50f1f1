#!/usr/bin/python3
"""WebSocket client of the tests' client container, connecting as the Actvt app would.

    wsclient.py URL [--ca FILE] [--cert FILE --key FILE] [--count N] [--timeout S]

Prints each received message on its own line and exits 0 after COUNT messages; exits 1 with the
error on stderr when the connection or the TLS handshake is refused.  Uses Debian's python3-websockets.
"""
import argparse
import asyncio
import ssl
import sys

import websockets


async def run(args):
    ctx = None
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
    async with websockets.connect(args.url, ssl=ctx, open_timeout=args.timeout, max_size=None) as ws:
        for _ in range(args.count):
            msg = await asyncio.wait_for(ws.recv(), args.timeout)
            print(msg if isinstance(msg, str) else msg.decode(), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except Exception as exc:  # report any refusal the way a user sees it
        print("wsclient: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
