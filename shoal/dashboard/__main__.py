"""``python -m shoal.dashboard --control-address HOST:PORT (--fd N | --host H --port P)``.

The cluster token comes from ``SHOAL_TOKEN`` (never the command line, which
other users can read).  ``--fd`` is a listening socket the starter bound (so
it knew the URL before this process existed, see :mod:`shoal.dashboard.launcher`).
Prints ``SHOAL_DASHBOARD_READY URL`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

READY_PREFIX = "SHOAL_DASHBOARD_READY "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoal.dashboard")
    parser.add_argument("--control-address", required=True)
    parser.add_argument("--fd", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-dir", action="append", default=[])
    args = parser.parse_args(argv)
    token = os.environ.get("SHOAL_TOKEN", "")
    if not token:
        print("shoal: error: the dashboard needs the cluster token in SHOAL_TOKEN",
              file=sys.stderr)
        return 2
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server((args.host, args.port), reuse_port=False)
    from shoal.dashboard.server import serve

    host, port = sock.getsockname()[:2]
    print(f"{READY_PREFIX}http://{host}:{port}/", flush=True)
    try:
        asyncio.run(serve(args.control_address, token, sock, args.log_dir))
    except ConnectionError as exc:
        print(f"shoal: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
