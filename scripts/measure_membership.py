"""Membership numbers for docs/design.md ("Membership and failure detection").

    python scripts/measure_membership.py [--runs 5] [--default-timeout-runs 3]

Measures, on a local Cluster (every node a separate process on this machine):
* join: ``Cluster.add_node`` wall time (process start until the node has
  registered with the control store and serves);
* time from SIGKILL of a node agent to the ``node`` pubsub notice;
* time from SIGSTOP of a node agent (alive, socket open, silent) to the notice,
  with a 1 s timeout and with the default timeout;
* lease round trip (REQUEST_LEASE + grant of an idle worker) from a driver to
  its node agent.
Each result is the median over the runs.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import statistics
import threading
import time

import shoal
from shoal.cluster_utils import Cluster
from shoal.control.membership import DEFAULT_NODE_TIMEOUT_S
from shoal.launch.control_client import open_control
from shoal.rpc.messages import Method
from shoal.rpc.transport import Router

STORE = 64 << 20


def subscribe(cluster: Cluster) -> queue.Queue:
    events: queue.Queue = queue.Queue()
    ready = threading.Event()

    async def run() -> None:
        router = Router()
        router.add(Method.PUBSUB_MESSAGE,
                   lambda conn, body: events.put((time.monotonic(), body[1])))
        conn = await open_control(router, cluster.token, cluster.address, name="measure")
        await conn.call(Method.SUBSCRIBE, ["node"])
        ready.set()
        await conn.closed

    threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()
    ready.wait(10)
    return events


def death_notice(events: queue.Queue, node_id: str) -> float:
    while True:
        at, event = events.get(timeout=60)
        if event["node_id"] == node_id and not event["alive"]:
            return at


def measure_deaths(timeout_s: float, runs: int, sig: int) -> list[float]:
    out = []
    with Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": STORE, "node_timeout_s": timeout_s}) as c:
        events = subscribe(c)
        for _ in range(runs):
            node = c.add_node(num_cpus=1, object_store_memory=STORE)
            time.sleep(0.5)  # let it settle into its heartbeat rhythm
            t0 = time.monotonic()
            os.kill(node.pid, sig)
            out.append(death_notice(events, node.node_id) - t0)
            if sig == signal.SIGSTOP:
                os.kill(node.pid, signal.SIGCONT)
            c.remove_node(node)
    return out


def measure_join(runs: int) -> list[float]:
    out = []
    with Cluster(initialize_head=True,
                 head_node_args={"num_cpus": 1, "object_store_memory": STORE}) as c:
        for _ in range(runs):
            t0 = time.monotonic()
            node = c.add_node(num_cpus=1, object_store_memory=STORE)
            out.append(time.monotonic() - t0)
            c.remove_node(node)
    return out


def measure_lease(runs: int) -> list[float]:
    with Cluster(initialize_head=True,
                 head_node_args={"num_cpus": 1, "object_store_memory": STORE}) as c:
        c.connect()
        worker = shoal.api.session._runtime.worker
        out = []
        for _ in range(runs + 5):
            t0 = time.perf_counter()
            grant = worker.node_call(Method.REQUEST_LEASE, [worker.job_id, {"CPU": 1.0}, ""])
            out.append(time.perf_counter() - t0)
            worker.node_call(Method.RETURN_LEASE, [grant[0], False])
        return out[5:]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--default-timeout-runs", type=int, default=3)
    args = p.parse_args()

    def show(name: str, values: list[float], unit: str = "s", scale: float = 1.0) -> None:
        v = [x * scale for x in values]
        print(f"{name}: median {statistics.median(v):.3f} {unit} "
              f"(min {min(v):.3f}, max {max(v):.3f}, n={len(v)})", flush=True)

    show("join (add_node until registered)", measure_join(args.runs))
    show("lease round trip, driver -> its node agent", measure_lease(200), "ms", 1e3)
    show("SIGKILL -> node death notice", measure_deaths(1.0, args.runs, signal.SIGKILL))
    show("SIGSTOP -> node death notice, timeout 1 s",
         measure_deaths(1.0, args.runs, signal.SIGSTOP))
    if args.default_timeout_runs:
        show(f"SIGSTOP -> node death notice, default timeout {DEFAULT_NODE_TIMEOUT_S:g} s",
             measure_deaths(DEFAULT_NODE_TIMEOUT_S, args.default_timeout_runs, signal.SIGSTOP))


if __name__ == "__main__":
    main()
