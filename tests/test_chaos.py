"""Chaos: chains, trees and actor calls on a 4-node cluster while a killer
SIGKILLs worker processes at random and removes one whole node halfway.

Every result must be exactly right (tasks retry, lost objects are rebuilt from
lineage, actors restart and re-run unfinished calls), and the surviving
nodes' stores must drain once the driver drops its refs.  The run reports how
many kills it survived.

``test_chaos_short`` runs in CI (a few hundred tasks); ``test_chaos_long`` is
marked ``chaos`` (``pytest -m chaos``): thousands of tasks, scaled by
SHOAL_CHAOS_SCALE.
"""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import psutil
import pytest

import shoal
from shoal.cluster_utils import Cluster
from shoal.core import context
from tests.clusters import connected_cluster, objects_per_node
from tests.utils import wait_for_condition

MiB = 1 << 20
SIZE = 128 * 1024  # shared memory, so that node loss loses objects
STEP_S = 0.02


@pytest.fixture
def cluster():
    killable = {"num_cpus": 1, "resources": {"killable": 100}, "object_store_memory": 256 * MiB}
    with connected_cluster(
            {"num_cpus": 1, "object_store_memory": 256 * MiB, "node_timeout_s": 1.0},
            k1=killable, k2=killable, k3=killable) as c:
        yield c


@shoal.remote(max_retries=-1)
def make(fill: int) -> np.ndarray:
    return np.full(SIZE, fill % 256, dtype=np.uint8)


@shoal.remote(max_retries=-1)
def step(x: np.ndarray, k: int) -> np.ndarray:
    time.sleep(STEP_S)  # long enough for kills to land mid-task
    return x + np.uint8(k)


@shoal.remote(max_retries=-1)
def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


# on the nodes the killer works on, so that it kills them too
@shoal.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0, resources={"killable": 1})
class Doubler:
    def double(self, x: int) -> int:
        return 2 * x


class Killer:
    """SIGKILLs a random worker process of the non-head nodes every ``period``;
    removes ``node_to_remove`` once ``remove_after`` has passed."""

    def __init__(self, cluster: Cluster, period: float, remove_after: float) -> None:
        self.cluster = cluster
        self.period = period
        self.remove_after = remove_after
        self.worker_kills = 0
        self.nodes_removed = 0
        self.stop = threading.Event()
        self.removed = threading.Event()
        self.rng = random.Random(0xC4A05)
        self.thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _workers(self) -> list[psutil.Process]:
        workers = []
        for node in self.cluster.worker_nodes:
            try:
                agent = psutil.Process(node.pid)
                workers += [p for p in agent.children(recursive=True) if p.ppid() != node.pid]
            except psutil.Error:
                continue
        return workers

    def _run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(self.period):
            if not self.nodes_removed and time.monotonic() - start > self.remove_after:
                self.cluster.remove_node(self.rng.choice(self.cluster.worker_nodes))
                self.nodes_removed += 1
                self.removed.set()
                continue
            workers = self._workers()
            if workers:
                try:
                    self.rng.choice(workers).kill()
                    self.worker_kills += 1
                except psutil.Error:
                    pass


def run_chaos(cluster: Cluster, chains: int, length: int, leaves: int, calls: int,
              remove_after: float) -> dict:
    doublers = [Doubler.remote() for _ in range(2)]
    shoal.get([d.double.remote(0) for d in doublers], timeout=60)
    with Killer(cluster, period=0.3, remove_after=remove_after) as killer:
        ends = []
        for c in range(chains):
            x = make.remote(c)
            for i in range(length):
                x = step.remote(x, i)
            ends.append(x)
        level = [make.remote(i) for i in range(leaves)]
        while len(level) > 1:
            level = [merge.remote(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        doubled = [doublers[i % 2].double.remote(i) for i in range(calls)]
        # collect only after the node is gone: whatever already finished on it is lost
        # and must come back from lineage
        assert killer.removed.wait(remove_after + 60)
        chain_sums = [int(shoal.get(e, timeout=300)[0]) for e in ends]
        tree = int(shoal.get(level[0], timeout=300)[0])
        actor_results = shoal.get(doubled, timeout=300)
    expected_step = sum(range(length))
    assert chain_sums == [(c + expected_step) % 256 for c in range(chains)]
    assert tree == sum(range(leaves)) % 256
    assert actor_results == [2 * i for i in range(calls)]
    kills_mid_rebuild = kill_nodes_during_rebuilds(cluster, chains // 2, length)
    del ends, level, doubled, x
    return {"worker_kills": killer.worker_kills, "nodes_removed": killer.nodes_removed,
            "kills_mid_rebuild": kills_mid_rebuild}


KILLABLE = {"num_cpus": 0, "resources": {"killable": 1}}  # keeps a task off the head


@shoal.remote(max_retries=-1, **KILLABLE)
def first_byte(x: np.ndarray) -> int:
    """Reads a chain's end on a killable node (a get would copy it to the driver's)."""
    return int(x[0])


def kill_nodes_during_rebuilds(cluster: Cluster, chains: int, length: int) -> int:
    """Chains built on the killable nodes only, then every killable node killed at
    once: each chain's links were freed, so each end is rebuilt link by link from
    lineage.  While those recursive rebuilds run on two fresh nodes, one of those is
    killed too.  Every chain must still come back exact.  Returns how many nodes were
    killed in the middle of the rebuilds."""
    ends = []
    for c in range(chains):
        x = make.options(**KILLABLE).remote(c)
        for i in range(length):
            x = step.options(**KILLABLE).remote(x, i)
        ends.append(x)
    del x
    shoal.wait(ends, num_returns=len(ends), timeout=300, fetch_local=False)
    worker = context.current_worker_or_none()
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)
    fresh = [cluster.add_node(num_cpus=1, resources={"killable": 100},
                              object_store_memory=256 * MiB) for _ in range(2)]
    before = worker.recovery.lineage.rebuilds
    reads = [first_byte.remote(e) for e in ends]
    wait_for_condition(lambda: worker.recovery.lineage.rebuilds > before, timeout=60)
    shoal.wait(reads, num_returns=1, timeout=120)  # some chains are back, others not
    cluster.remove_node(fresh[0])
    cluster.add_node(num_cpus=1, resources={"killable": 100}, object_store_memory=256 * MiB)
    expected_step = sum(range(length))
    assert shoal.get(reads, timeout=300) == [(c + expected_step) % 256 for c in range(chains)]
    assert worker.recovery.lineage.rebuilds - before >= chains * (length + 1)
    return 1


def check_drained(cluster: Cluster, before: dict[str, int]) -> None:
    """Every live node's store holds what it held before the run (nodes added during
    the run: nothing)."""
    def drained() -> bool:
        now = objects_per_node(cluster)
        return now == {node: before.get(node, 0) for node in now}

    wait_for_condition(drained, timeout=30, message=f"stores did not drain back to {before}")


def report(capsys, name: str, survived: dict, seconds: float) -> None:
    with capsys.disabled():
        print(f"\n{name}: survived {survived['worker_kills']} worker kills, "
              f"{survived['nodes_removed']} node removal(s) and "
              f"{survived['kills_mid_rebuild']} node kill(s) during recursive rebuilds "
              f"in {seconds:.1f} s")


def test_chaos_short(cluster, capsys):
    before = objects_per_node(cluster)
    start = time.monotonic()
    survived = run_chaos(cluster, chains=16, length=30, leaves=64, calls=300, remove_after=2.0)
    report(capsys, "chaos (short)", survived, time.monotonic() - start)
    assert survived["nodes_removed"] == 1 and survived["worker_kills"] >= 3
    check_drained(cluster, before)


@pytest.mark.chaos
def test_chaos_long(cluster, capsys):
    scale = int(os.environ.get("SHOAL_CHAOS_SCALE", "1"))
    before = objects_per_node(cluster)
    start = time.monotonic()
    survived = run_chaos(cluster, chains=40 * scale, length=25, leaves=512 * scale,
                         calls=1000 * scale, remove_after=10.0)
    report(capsys, "chaos (long)", survived, time.monotonic() - start)
    assert survived["worker_kills"] > 10
    check_drained(cluster, before)
