"""``shoal sort``: run the sort benchmark (shoal/shuffle/sort_bench.py) on a new
local cluster or, with ``--address``, on a running one; print its report and
exit 1 if the output does not validate.

The store probe lives here, not in the library: it reads every node's object
store totals from the state query that ``shoal memory`` uses (``used``,
``capacity`` and, where the store spills, ``spilled_bytes_total``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shoal.launch.state_client import fetch_state
from shoal.shuffle.sort_bench import SortConfig, StoreUse, format_report, parse_size, run

PROBE_TIMEOUT_S = 5.0


def store_use() -> StoreUse:
    """Object store totals over all live nodes (through this driver's connection)."""
    reply = fetch_state(["workers"], timeout=PROBE_TIMEOUT_S)
    stores = [ns["store"] for ns in reply.get("node_states", ())]
    spilled = [s["spilled_bytes_total"] for s in stores if "spilled_bytes_total" in s]
    restored = [s["restored_bytes_total"] for s in stores if "restored_bytes_total" in s]
    return StoreUse(used=sum(s["used"] for s in stores),
                    capacity=sum(s["capacity"] for s in stores),
                    spilled=sum(spilled) if spilled else None,
                    restored=sum(restored) if restored else None)


def sort_command(args: Any) -> int:
    import shoal

    try:  # the command shows progress bars unless told not to (the library does not)
        config = SortConfig(parse_size(args.total), args.partitions, args.maps, args.strategy,
                            args.seed, args.output, args.progress is not False)
    except ValueError as exc:
        print(f"shoal: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.address:
        shoal.init(address=args.address, _token=args.token)
    else:
        shoal.init(num_cpus=args.num_cpus, object_store_memory=args.object_store_memory)
    try:
        report = run(config, probe=store_use)
    finally:
        shoal.shutdown()
    print(json.dumps(report.as_dict()) if args.json else format_report(report), flush=True)
    return 0 if report.verdict.ok else 1
