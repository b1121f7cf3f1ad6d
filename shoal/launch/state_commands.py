"""``shoal timeline | summary | list``: the state API from the command line.

They find the cluster as ``shoal status`` does (``--address``, ``SHOAL_ADDRESS``,
the head started here) and export its token for the state API's client.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from shoal.launch.commands import fail
from shoal.launch.state_client import ClusterNotFound, resolve_cluster
from shoal.rpc.protocol import VersionMismatchError

LIST_FUNCTIONS = {"tasks": "list_tasks", "actors": "list_actors", "objects": "list_objects",
                  "nodes": "list_nodes", "workers": "list_workers", "jobs": "list_jobs",
                  "placement_groups": "list_placement_groups"}
SUMMARY_FUNCTIONS = {"tasks": "summarize_tasks", "actors": "summarize_actors",
                     "objects": "summarize_objects"}


def _cluster(args: Any) -> str:
    address, token = resolve_cluster(args.address, args.token)
    os.environ["SHOAL_TOKEN"] = token  # for the state API's client in this process
    return address


def _filters(specs: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for spec in specs:
        op = "!=" if "!=" in spec else "="
        key, sep, value = spec.partition(op)
        if not sep or not key:
            raise ValueError(f"a filter is KEY=VALUE or KEY!=VALUE, got {spec!r}")
        out.append((key.strip(), op, value.strip()))
    return out


def timeline(args: Any) -> int:
    from shoal.util import state

    path = args.output or time.strftime("timeline-%Y%m%d-%H%M%S.json")
    try:
        state.timeline(path, _cluster(args), timeout=args.timeout)
    except (ClusterNotFound, ConnectionError, TimeoutError, VersionMismatchError,
            state.StateApiException, ValueError) as exc:
        return fail(str(exc) or type(exc).__name__)
    print(f"Wrote the task timeline to {path} (open it in chrome://tracing or "
          "https://ui.perfetto.dev)", flush=True)
    return 0


def summary(args: Any) -> int:
    from shoal.util import state

    try:
        result = getattr(state, SUMMARY_FUNCTIONS[args.what])(_cluster(args),
                                                              timeout=args.timeout)
    except (ClusterNotFound, ConnectionError, TimeoutError, VersionMismatchError,
            state.StateApiException, ValueError) as exc:
        return fail(str(exc) or type(exc).__name__)
    print(json.dumps(result, indent=2, sort_keys=True), flush=True)
    return 0


def list_(args: Any) -> int:
    from shoal.util import state

    try:
        records = getattr(state, LIST_FUNCTIONS[args.what])(
            _cluster(args), filters=_filters(args.filter), limit=args.limit,
            timeout=args.timeout, detail=args.detail)
    except (ClusterNotFound, ConnectionError, TimeoutError, VersionMismatchError,
            state.StateApiException, ValueError) as exc:
        return fail(str(exc) or type(exc).__name__)
    for record in records:
        print(json.dumps(record.asdict(), default=str), flush=True)
    return 0

