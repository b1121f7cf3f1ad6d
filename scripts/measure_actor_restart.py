"""Actor restart time for docs/design.md ("Actor restarts").

    python scripts/measure_actor_restart.py [--runs 7]

Restart time = from the kill to the first successful call on the restarted
actor, as the caller sees it (the call is made right after the kill, with
``max_task_retries=-1``, so it waits for the restart):
* worker: SIGKILL of the actor's worker process, single-node ``shoal.init``;
* node: ``Cluster.remove_node`` of the actor's node (SIGKILL of the agent and
  its workers); the clock starts before ``remove_node``, which also waits for
  the processes to be reaped and unlinks the arena.
Median (and range) over the runs.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time

import shoal
from shoal.cluster_utils import Cluster
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@shoal.remote(max_restarts=-1, max_task_retries=-1)
class Pinger:
    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return shoal.get_runtime_context().get_node_id()


def worker_kills(runs: int) -> list[float]:
    shoal.init(num_cpus=2)
    try:
        actor = Pinger.remote()
        out = []
        for _ in range(runs):
            pid = shoal.get(actor.pid.remote())
            start = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            shoal.get(actor.ping.remote(), timeout=60)
            out.append(time.perf_counter() - start)
            assert shoal.get(actor.pid.remote()) != pid
        return out
    finally:
        shoal.shutdown()


def node_kills(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": 64 << 20})
        try:
            node = cluster.add_node(num_cpus=1, object_store_memory=64 << 20)
            cluster.connect()
            there = NodeAffinitySchedulingStrategy(node.node_id, soft=True)
            actor = Pinger.options(scheduling_strategy=there).remote()
            assert shoal.get(actor.ping.remote()) == node.node_id
            start = time.perf_counter()
            cluster.remove_node(node)
            assert shoal.get(actor.ping.remote(), timeout=60) == cluster.head_node.node_id
            out.append(time.perf_counter() - start)
        finally:
            shoal.shutdown()
            cluster.shutdown()
    return out


def report(what: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    print(f"{what}: median {statistics.median(ms):.0f} ms, range {ms[0]:.0f}-{ms[-1]:.0f} ms "
          f"({', '.join(f'{v:.0f}' for v in ms)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    report("SIGKILL of the actor's worker -> first successful call", worker_kills(args.runs))
    report("remove_node of the actor's node -> first successful call", node_kills(args.runs))


if __name__ == "__main__":
    main()
