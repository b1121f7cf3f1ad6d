"""Entry point of a node process: ``python -m shoal.node.main``.

A head process serves the control store and its own node agent on one port
(they talk through an in-process loopback connection).  A plain node process
serves a node agent and connects to the head's control store over TCP.

The process announces itself with one JSON line on stdout (``SHOAL_READY
{...}``) once it has registered with the control store, and, with
``--lifeline``, exits when its stdin closes: the driver that started a local
cluster holds the other end, so even a SIGKILLed driver takes its cluster with
it.

Joining (``--address``): a head that does not answer, refuses the token or runs
another shoal version makes the process exit within ``--join-timeout-s`` with
one line ``shoal: error: ...`` on stderr (exit code 2).  A joined node exits
when it loses its connection to the control store: the head is gone, or it
declared this node dead (see :mod:`shoal.control.membership`).

The fork server (:mod:`shoal.node.zygote`) is started first, before this
process imports the agent: the two processes boot side by side, which takes
~0.15 s off the time to a node's first worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from shoal.control.membership import DEFAULT_NODE_TIMEOUT_S
from shoal.launch import resource_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="shoal.node.main")
    p.add_argument("--head", action="store_true")
    p.add_argument("--address", default=None, help="control store HOST:PORT to join")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--num-cpus", type=float, default=None)
    p.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs of this node (default: those nvidia-smi -L lists, else 0)")
    p.add_argument("--resources", default="{}")
    p.add_argument("--object-store-memory", type=int, default=None)
    p.add_argument("--memory", type=float, default=None,
                   help="bytes of memory tasks may reserve (default: 70%% of the machine's, "
                        "less the object store)")
    p.add_argument("--object-spilling-directory", action="append", default=None,
                   help="where spilled objects go (repeat for several, used round-robin; "
                        "default: the session folder)")
    p.add_argument("--object-spilling-threshold", type=float,
                   default=float(os.environ.get("SHOAL_OBJECT_SPILLING_THRESHOLD", "0.8")),
                   help="spill once this fraction of the object store is in use")
    p.add_argument("--min-spilling-size", type=int,
                   default=int(os.environ.get("SHOAL_MIN_SPILLING_SIZE", 100 << 20)),
                   help="fuse small objects into spill files of at least this many bytes")
    p.add_argument("--session", required=True)
    p.add_argument("--node-id", default=None)
    p.add_argument("--prestart", type=int, default=None)
    p.add_argument("--preload-python-modules", default="",
                   help="comma-separated modules every worker imports when it starts")
    p.add_argument("--lifeline", action="store_true")
    p.add_argument("--log-dir", default=None)
    p.add_argument("--node-timeout-s", type=float,
                   default=float(os.environ.get("SHOAL_NODE_TIMEOUT_S",
                                                DEFAULT_NODE_TIMEOUT_S)),
                   help="head: declare a node dead after this long without a heartbeat")
    p.add_argument("--join-timeout-s", type=float,
                   default=float(os.environ.get("SHOAL_JOIN_TIMEOUT_S", "5")),
                   help="give up joining a head that does not answer within this time")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:  # the starters check these already; a direct invocation is checked here
        checked = resource_args.node_args(
            resource_args.flag_name, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
            memory=args.memory, object_store_memory=args.object_store_memory,
            resources=resource_args.resources_json(args.resources), port=args.port,
            node_timeout_s=args.node_timeout_s)
    except (TypeError, ValueError) as exc:
        print(f"shoal: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    args.resources = json.dumps(checked.get("resources", {}))
    token = os.environ.get("SHOAL_TOKEN")
    if not token:
        raise SystemExit("SHOAL_TOKEN must be set in the environment")
    from shoal.node import zygote

    zygote.launch_early()
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
        logging.basicConfig(
            filename=os.path.join(args.log_dir, f"node-{os.getpid()}.log"),
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    else:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import asyncio

    from shoal.node.startup import StartError, exit_now, log, run

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(run(args, token))
    except StartError as exc:
        log.error("%s", exc)
        print(f"shoal: error: {exc}", file=sys.stderr, flush=True)
        logging.shutdown()
        sys.exit(2)
    # Everything we own is cleaned up; skip interpreter teardown, which can wait
    # on subprocess transports of workers that are already dead.
    exit_now()


if __name__ == "__main__":
    main()
