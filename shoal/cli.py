"""Command line: ``shoal start | stop | status | memory | logs | sort | demo`` (also
``python -m shoal``).

Parsing only; what each command does is in :mod:`shoal.launch.commands`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shoal._version import __version__
from shoal.launch.resource_args import MIN_OBJECT_STORE_MEMORY


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-cpus", type=float, default=None,
                   help="CPUs this node offers (default: the machine's)")
    p.add_argument("--num-gpus", type=float, default=None)
    p.add_argument("--resources", default=None,
                   help='custom resources as JSON, e.g. \'{"gpu_box": 1}\'')
    p.add_argument("--memory", type=float, default=None,
                   help="bytes of memory tasks and actors may reserve with memory=... "
                        "(default: 70%% of the machine's, less the object store)")
    p.add_argument("--object-store-memory", type=int, default=None,
                   help=f"bytes of shared memory for the object store (at least "
                        f"{MIN_OBJECT_STORE_MEMORY >> 20} MiB; default: 30%% of the "
                        f"machine's memory)")
    p.add_argument("--object-spilling-directory", action="append", default=None,
                   help="where objects are spilled when the object store is full (repeat "
                        "for several, used round-robin; default: the session folder)")
    p.add_argument("--node-ip-address", default="127.0.0.1",
                   help="address this node listens on and is reached at (default "
                        "127.0.0.1: use the machine's address for a multi-machine cluster)")
    p.add_argument("--token", default=None,
                   help="cluster token (default: SHOAL_TOKEN, else a new one for a head)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description="shoal distributed runtime")
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start a head, or a node joining one, in the "
                                         "background")
    role = start.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the cluster's head")
    role.add_argument("--address", help="HOST:PORT of the head to join")
    start.add_argument("--port", type=int, default=None,
                       help="head: port of the control store (default 6380)")
    start.add_argument("--node-timeout-s", type=float, default=None,
                       help="head: declare a node dead after this many seconds without a "
                            "heartbeat (default: SHOAL_NODE_TIMEOUT_S, else 5)")
    start.add_argument("--include-dashboard", default=True,
                       type=lambda v: v.lower() not in ("0", "false", "no"),
                       help="head: serve the web dashboard (default true)")
    start.add_argument("--dashboard-host", default=None,
                       help="head: address the dashboard listens on (default 127.0.0.1)")
    start.add_argument("--dashboard-port", type=int, default=None,
                       help="head: dashboard port (default 8265, else the next free one)")
    _node_options(start)

    stop = sub.add_parser("stop", help="stop every shoal process 'shoal start' started on "
                                       "this machine")
    stop.add_argument("--force", action="store_true", help="SIGKILL at once")
    stop.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait for a graceful stop before SIGKILL")

    status = sub.add_parser("status", help="nodes, their resources, and pending demand")
    status.add_argument("--address", default=None,
                        help="HOST:PORT of the head (default: SHOAL_ADDRESS, else the head "
                             "started on this machine)")
    status.add_argument("--token", default=None)

    memory = sub.add_parser("memory", help="live objects: who holds them, where they are "
                                           "and why they are alive")
    memory.add_argument("--address", default=None,
                        help="HOST:PORT of the head (default: as for 'shoal status')")
    memory.add_argument("--token", default=None)
    memory.add_argument("--group-by", default="NODE_ADDRESS",
                        choices=["NODE_ADDRESS", "STACK_TRACE"])
    memory.add_argument("--sort-by", default="OBJECT_SIZE",
                        choices=["OBJECT_SIZE", "PID", "REFERENCE_TYPE"])
    memory.add_argument("--units", default=None, choices=["B", "KB", "MB", "GB"],
                        help="size unit (default: readable, per value)")
    memory.add_argument("--stats-only", action="store_true",
                        help="only the object store totals")
    memory.add_argument("--num-entries", "--n", type=int, default=None,
                        help="at most this many references per group")
    memory.add_argument("--timeout", type=float, default=30.0)

    timeline = sub.add_parser("timeline", help="write the recent task events as a Chrome "
                                               "trace (chrome://tracing, Perfetto)")
    timeline.add_argument("--address", default=None)
    timeline.add_argument("--token", default=None)
    timeline.add_argument("--output", "-o", default=None,
                          help="file to write (default: timeline-<time>.json here)")
    timeline.add_argument("--timeout", type=float, default=30.0)
    summary = sub.add_parser("summary", help="counts by function and state")
    summary.add_argument("what", choices=["tasks", "actors", "objects"])
    summary.add_argument("--address", default=None)
    summary.add_argument("--token", default=None)
    summary.add_argument("--timeout", type=float, default=30.0)
    lister = sub.add_parser("list", help="the state API's records, as JSON lines")
    lister.add_argument("what", choices=["tasks", "actors", "objects", "nodes", "workers",
                                           "jobs", "placement_groups"])
    lister.add_argument("--address", default=None)
    lister.add_argument("--token", default=None)
    lister.add_argument("--limit", type=int, default=100)
    lister.add_argument("--detail", action="store_true")
    lister.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="keep records whose KEY is VALUE (KEY!=VALUE: is not); repeat")
    lister.add_argument("--timeout", type=float, default=30.0)
    logs = sub.add_parser("logs", help="list every node's log files, or print (--follow: "
                                       "stream) one of them")
    logs.add_argument("name", nargs="?", default=None, help="the file (as listed)")
    logs.add_argument("--node", default=None, help="node id (prefix) of the file's node")
    logs.add_argument("--tail", type=int, default=64 * 1024, metavar="BYTES",
                      help="print the file's last BYTES first (default 64 KiB)")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep printing what is appended (Ctrl-C stops)")
    logs.add_argument("--address", default=None)
    logs.add_argument("--token", default=None)
    logs.add_argument("--timeout", type=float, default=30.0)
    _sort_parser(sub)
    sub.add_parser("demo", help="run the demo on a local embedded cluster")
    return parser


def _sort_parser(sub: Any) -> None:
    sort = sub.add_parser("sort", help="sort generated gensort records with the shuffle "
                                       "library, validate like valsort, report the speed")
    sort.add_argument("--total", default="1GB",
                      help="bytes of records to sort, e.g. 4GB, 512MB (default 1GB)")
    sort.add_argument("--partitions", type=int, default=16,
                      help="output partitions (default 16)")
    sort.add_argument("--maps", type=int, default=None,
                      help="input partitions (default: as many as --partitions)")
    sort.add_argument("--strategy", default="push", choices=["simple", "premerge", "push"])
    sort.add_argument("--seed", type=int, default=0, help="seed of the generated records")
    sort.add_argument("--output", default=None, metavar="DIR",
                      help="write each output partition to DIR/part-NNNNN (gensort format)")
    sort.add_argument("--address", default=None,
                      help="HOST:PORT of a running cluster (default: start a local one)")
    sort.add_argument("--token", default=None, help="cluster token (with --address)")
    sort.add_argument("--num-cpus", type=float, default=None,
                      help="CPUs of the local cluster (default: the machine's)")
    sort.add_argument("--object-store-memory", type=int, default=None,
                      help="bytes of object store of the local cluster")
    bars = sort.add_mutually_exclusive_group()
    bars.add_argument("--progress", action="store_true", default=None,
                      help="show progress bars on stderr (the default; redrawn in place on "
                           "a terminal, one final line each elsewhere)")
    bars.add_argument("--no-progress", action="store_false", dest="progress",
                      help="no progress bars")
    sort.add_argument("--json", action="store_true", help="print the report as JSON")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from shoal.demo import main as demo

        demo()
        return 0
    from shoal.launch import commands

    if args.command == "start":
        if args.head:
            if args.port is None:
                args.port = commands.DEFAULT_PORT
            return commands.start_head(args)
        if (args.port is not None or args.node_timeout_s is not None
                or args.dashboard_host is not None or args.dashboard_port is not None):
            parser.error("--port, --node-timeout-s and --dashboard-* are options of "
                         "'shoal start --head'")
        return commands.start_node_joining(args)
    if args.command == "stop":
        return commands.stop(force=args.force, timeout=args.timeout)
    if args.command == "status":
        return commands.status(args.address, args.token)
    if args.command == "memory":
        return commands.memory(args)
    if args.command in ("timeline", "summary", "list"):
        from shoal.launch import state_commands

        return {"timeline": state_commands.timeline, "summary": state_commands.summary,
                "list": state_commands.list_}[args.command](args)
    if args.command == "logs":
        from shoal.launch.log_commands import logs_command

        return logs_command(args)
    if args.command == "sort":
        from shoal.launch.sort_command import sort_command

        return sort_command(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
