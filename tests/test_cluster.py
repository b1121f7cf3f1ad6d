"""Multi-node clusters on this machine (shoal.cluster_utils.Cluster): nodes join
and leave, work runs on every node, and dead nodes are detected and announced.

These tests move only small values between nodes (inline, through their
owner); large objects and scheduling across nodes are tests/test_transfer.py
and tests/test_spillback.py.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
import time

import psutil
import pytest

import shoal
from shoal.cluster_utils import Cluster
from shoal.launch.control_client import open_control
from shoal.rpc.messages import Method
from shoal.rpc.transport import Router
from tests.utils import (
    SESSION_TAG_ENV,
    read_line_with_prefix,
    start_driver,
    stop_driver,
    wait_for_condition,
)

NODE_TIMEOUT_S = 1.0
STORE = 64 << 20


def make_cluster(**head_args) -> Cluster:
    """A head with 1 CPU and the custom resource "head"; no driver yet."""
    if shoal.is_initialized():
        shoal.shutdown()
    return Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"head": 1}, "object_store_memory": STORE, **head_args})


@pytest.fixture
def cluster():
    """The default node timeout (5 s): a busy machine must not fail these tests
    through a false death; removed nodes are detected by their closed socket."""
    c = make_cluster()
    try:
        yield c
    finally:
        shoal.shutdown()
        c.shutdown()


@pytest.fixture
def fast_cluster():
    """A node timeout of NODE_TIMEOUT_S, for the tests of silent nodes."""
    c = make_cluster(node_timeout_s=NODE_TIMEOUT_S)
    try:
        yield c
    finally:
        c.shutdown()


class NodeEvents:
    """A subscriber to the control store's ``node`` channel, on its own thread."""

    def __init__(self, cluster: Cluster) -> None:
        self.events: queue.Queue = queue.Queue()
        self._stop: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        ready = threading.Event()

        async def run() -> None:
            router = Router()
            router.add(Method.PUBSUB_MESSAGE,
                       lambda conn, body: self.events.put((time.monotonic(), body[1])))
            conn = await open_control(router, cluster.token, cluster.address, name="test")
            await conn.call(Method.SUBSCRIBE, ["node"])
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            ready.set()
            await self._stop
            conn.close()

        self._thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
        self._thread.start()
        assert ready.wait(10), "could not subscribe to the node channel"

    def next(self, node_id: str, alive: bool, timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while True:
            at, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if event["node_id"] == node_id and event["alive"] == alive:
                return at, event

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)


@shoal.remote
def where() -> str:
    return shoal.get_runtime_context().get_node_id()


@shoal.remote
class Probe:
    def node(self) -> str:
        return shoal.get_runtime_context().get_node_id()

    def node_of_task(self) -> str:
        """A task submitted from here is leased from this actor's own node."""
        return shoal.get(where.remote())

    def read(self, boxed: list) -> object:
        """A small object owned by the driver, on another node: fetched inline."""
        return shoal.get(boxed[0])

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _pids(node) -> list[psutil.Process]:
    return node.processes()


def test_nodes_join_each_with_its_own_store_and_resources_add_up(cluster):
    n1 = cluster.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=STORE)
    n2 = cluster.add_node(num_cpus=2, resources={"n2": 1}, object_store_memory=STORE)
    cluster.wait_for_nodes()
    shoal.init(address=cluster.address)  # no token: this machine remembers it
    total = shoal.cluster_resources()
    assert total["CPU"] == 4 and total["n1"] == 1 and total["n2"] == 1 and total["head"] == 1
    assert total["object_store_memory"] == 3 * STORE
    nodes = {n["NodeID"]: n for n in shoal.nodes()}
    ids = {cluster.head_node.node_id, n1.node_id, n2.node_id}
    assert set(nodes) == ids and all(n["Alive"] for n in nodes.values())
    stores = {n["ObjectStoreSocketName"] for n in nodes.values()}
    assert len(stores) == 3 and all(os.path.exists(s) for s in stores)


def test_work_runs_on_every_node_and_small_values_cross_nodes(cluster):
    n1 = cluster.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=STORE)
    n2 = cluster.add_node(num_cpus=1, resources={"n2": 1}, object_store_memory=STORE)
    cluster.connect()
    assert shoal.get(where.remote(), timeout=30) == cluster.head_node.node_id
    probes = {node.node_id: Probe.options(resources={res: 1}).remote()
              for node, res in ((cluster.head_node, "head"), (n1, "n1"), (n2, "n2"))}
    for node_id, probe in probes.items():
        assert shoal.get(probe.node.remote(), timeout=30) == node_id
        assert shoal.get(probe.node_of_task.remote(), timeout=30) == node_id
    value = shoal.put({"small": list(range(100))})
    for probe in probes.values():
        assert shoal.get(probe.read.remote([value]), timeout=30) == {"small": list(range(100))}


def test_removed_node_is_killed_declared_dead_and_announced(cluster):
    node = cluster.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=STORE)
    cluster.connect()
    events = NodeEvents(cluster)
    try:
        probe = Probe.options(resources={"n1": 1}).remote()
        assert shoal.get(probe.node.remote(), timeout=30) == node.node_id
        busy = probe.sleep.remote(60)  # in flight when the node goes
        procs = _pids(node)
        assert len(procs) >= 3  # agent, fork server, the actor's worker at least
        cluster.remove_node(node)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
        assert not os.path.exists(node.store_path)
        _, event = events.next(node.node_id, alive=False, timeout=5)
        assert "exited" in event["cause"]
    finally:
        events.close()
    with pytest.raises(shoal.exceptions.ActorDiedError, match="died"):
        shoal.get(busy, timeout=10)
    with pytest.raises(shoal.exceptions.ActorDiedError):
        shoal.get(probe.node.remote(), timeout=10)
    alive = {n["NodeID"]: n["Alive"] for n in shoal.nodes()}
    assert alive == {cluster.head_node.node_id: True, node.node_id: False}
    assert "n1" not in shoal.cluster_resources()
    assert shoal.get(where.remote(), timeout=30) == cluster.head_node.node_id


@shoal.remote
class Maker:
    def make(self) -> list:
        self.child = Probe.options(resources={"head": 1}).remote()
        return [self.child]


def test_actors_owned_from_a_dead_node_die_with_it(cluster):
    node = cluster.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=STORE)
    cluster.connect()
    maker = Maker.options(resources={"n1": 1}).remote()
    [child] = shoal.get(maker.make.remote(), timeout=30)
    assert shoal.get(child.node.remote(), timeout=30) == cluster.head_node.node_id
    cluster.remove_node(node)
    # the head learns of the death and kills the child asynchronously: a call made in
    # between may still be answered, so call until the death shows
    deaths = []

    def child_died():
        try:
            shoal.get(child.node.remote(), timeout=15)
        except shoal.exceptions.ActorDiedError as exc:
            deaths.append(exc)
        return bool(deaths)

    wait_for_condition(child_died, timeout=15, message="the child actor dies")
    assert "owner's node" in str(deaths[0])


def test_silent_node_is_declared_dead_within_the_timeout_then_fenced(fast_cluster):
    cluster = fast_cluster
    node = cluster.add_node(num_cpus=1, object_store_memory=STORE)
    events = NodeEvents(cluster)
    try:
        stopped_at = time.monotonic()
        os.kill(node.pid, signal.SIGSTOP)  # alive but silent: its socket stays open
        try:
            at, event = events.next(node.node_id, alive=False, timeout=10)
        finally:
            os.kill(node.pid, signal.SIGCONT)
    finally:
        events.close()
    took = at - stopped_at
    # The last heartbeat came at most one heartbeat period (timeout / 5) before the
    # stop, and a check runs every timeout / 10: so about 0.8-1.1 x the timeout,
    # plus slack for a loaded machine.
    assert NODE_TIMEOUT_S * 0.7 <= took <= NODE_TIMEOUT_S + 2.5, took
    assert "no heartbeat" in event["cause"]
    # the head cut it off, so once resumed it stops by itself (and stops its workers)
    wait_for_condition(lambda: not node.is_alive(), timeout=10,
                       message="the fenced node agent exits")
    seen = {n["node_id"]: n for n in cluster.nodes_seen_by_head()}
    assert not seen[node.node_id]["alive"]


def test_cluster_is_cleaned_up_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with Cluster(initialize_head=True,
                     head_node_args={"num_cpus": 1, "object_store_memory": STORE}) as c:
            c.add_node(num_cpus=1, object_store_memory=STORE)
            procs = [p for n in c.list_all_nodes() for p in _pids(n)]
            arenas = [n.store_path for n in c.list_all_nodes()]
            raise RuntimeError("boom")
    assert procs and not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                             for p in procs)
    assert not any(os.path.exists(a) for a in arenas)


CLUSTER_THEN_DIE = """
import sys
from shoal.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 1 << 26})
c.add_node(num_cpus=1, object_store_memory=1 << 26)
pids = [p.pid for n in c.list_all_nodes() for p in n.processes()]
print("PIDS", " ".join(map(str, pids)), flush=True)
sys.stdin.read()
"""


def test_cluster_dies_with_its_sigkilled_creator():
    # the tag extends the session's, so the leak check still sees what it leaves
    driver = start_driver(CLUSTER_THEN_DIE, os.environ[SESSION_TAG_ENV] + "-creator")
    try:
        pids = [int(p) for p in read_line_with_prefix(driver, "PIDS ", timeout=30).split()]
        procs = [psutil.Process(pid) for pid in pids]
        os.kill(driver.pid, signal.SIGKILL)
        wait_for_condition(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                            for p in procs),
            timeout=15, message="the cluster's processes exit with their creator")
    finally:
        stop_driver(driver)


def test_driver_that_loses_its_head_gets_a_clear_error_not_a_hang(cluster):
    cluster.connect()
    probe = Probe.options(resources={"head": 1}).remote()
    assert shoal.get(probe.node.remote(), timeout=30) == cluster.head_node.node_id
    busy = probe.sleep.remote(60)
    started = time.monotonic()
    cluster.remove_node(cluster.head_node)
    with pytest.raises((shoal.exceptions.ActorDiedError, shoal.exceptions.ClusterLostError)):
        shoal.get(busy, timeout=15)
    for call in (lambda: shoal.get(where.remote(), timeout=15), shoal.cluster_resources,
                 lambda: shoal.put(1)):
        with pytest.raises(shoal.exceptions.ClusterLostError, match="head at"):
            call()
    assert time.monotonic() - started < 10


def test_tasks_with_custom_resources_run_on_the_node_that_has_them(cluster):
    n1 = cluster.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=STORE)
    cluster.connect()
    assert shoal.get(where.options(resources={"n1": 1}).remote(), timeout=30) == n1.node_id
