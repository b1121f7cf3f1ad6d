"""Recovery time: a chain of 10 ms tasks with a worker node killed halfway.

The NSDI'21 ownership paper reports ~3 s of overhead for a 10 s job whose
worker node is killed halfway.  This runs the same shape on a local cluster:
a head the driver attaches to (no CPUs) and two worker nodes; a chain of
``--tasks`` tasks, each sleeping 10 ms and passing on a 128 KiB array (kept in
shared memory, so a dead node takes objects with it).  Halfway through, the
node that ran the latest link is SIGKILLed.  Reports the median wall time
without and with the kill, and the overhead.  Usage:
    python bench/recovery.py [--tasks 1000] [--runs 3] [--node-timeout 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import shoal
from shoal.cluster_utils import Cluster
from shoal.core import context

SIZE = 128 * 1024


@shoal.remote(max_retries=-1)
def link(x: np.ndarray | None, i: int) -> np.ndarray:
    time.sleep(0.01)
    out = np.zeros(SIZE, dtype=np.uint8) if x is None else x.copy()
    out[i % SIZE] = 1
    return out


@shoal.remote(max_retries=-1)
def where(x: np.ndarray) -> str:
    return shoal.get_runtime_context().get_node_id()


def run(tasks: int, kill: bool, node_timeout: float) -> tuple[float, int]:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 512 << 20, "node_timeout_s": node_timeout})
    try:
        nodes = [cluster.add_node(num_cpus=1, object_store_memory=512 << 20)
                 for _ in range(2)]
        cluster.connect()
        shoal.get([where.remote(link.remote(None, 0)) for _ in range(4)])  # warm workers
        start = time.perf_counter()
        x, mid = None, None
        for i in range(tasks):
            x = link.remote(x, i)
            if i == tasks // 2:
                mid = x
        if kill:  # once the middle link is done, kill the node that holds its output
            shoal.wait([mid], timeout=600)
            node_id = context.current_worker_or_none().value_table.get(mid.binary()).node_id
            cluster.remove_node(next(n for n in nodes if n.node_id == node_id))
        del mid
        out = shoal.get(x, timeout=600)
        elapsed = time.perf_counter() - start
        assert int(out[: min(tasks, SIZE)].sum()) == min(tasks, SIZE)
        rebuilds = context.current_worker_or_none().recovery.lineage.rebuilds
        return elapsed, rebuilds
    finally:
        shoal.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--node-timeout", type=float, default=1.0)
    args = parser.parse_args()
    base, killed, rebuilt = [], [], []
    for _ in range(args.runs):
        base.append(run(args.tasks, False, args.node_timeout)[0])
        t, r = run(args.tasks, True, args.node_timeout)
        killed.append(t)
        rebuilt.append(r)
    b, k = statistics.median(base), statistics.median(killed)
    print(f"chain of {args.tasks} x 10 ms tasks, node failure timeout {args.node_timeout:g} s")
    print(f"  no failure:        {b:.2f} s (median of {args.runs})")
    print(f"  node killed at 1/2: {k:.2f} s; overhead {k - b:.2f} s; "
          f"tasks re-run from lineage: median {statistics.median(rebuilt):.0f}")


if __name__ == "__main__":
    main()
