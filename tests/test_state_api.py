"""The state API (shoal.util.state) and memory_summary on real clusters: what
list_objects / list_tasks / list_actors / list_nodes report while refs are
held, passed to pending tasks, nested in objects, held by workers and actors,
and after they are dropped, actors killed or nodes removed.

Every wait is a condition polled with a deadline.  Multi-node tests use their
own ``Cluster`` fixture and come first: the module-scoped local cluster stays
up until the end of the module.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import shoal
from shoal.cluster_utils import Cluster
from shoal.util import memory_summary
from shoal.util.state import (
    ObjectState,
    StateApiException,
    get_actor,
    list_actors,
    list_nodes,
    list_objects,
    list_tasks,
)
from tests.utils import open_gate, wait_for_condition, wait_for_file

BIG = 1 << 20  # above the inline threshold: shared memory
STORE = 64 << 20


def objects_of(ref, **kw) -> list[ObjectState]:
    return list_objects(filters=[("object_id", "=", ref.hex())], limit=None, **kw)


def gone(hex_id: str) -> bool:
    return not list_objects(filters=[("object_id", "=", hex_id)], limit=None)


# ---- two nodes -------------------------------------------------------------------------------
@pytest.fixture
def cluster():
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"head": 1}, "object_store_memory": STORE})
    try:
        yield c
    finally:
        shoal.shutdown()
        c.shutdown()


def test_two_nodes_objects_tasks_actors_and_a_removed_node(cluster):
    node2 = cluster.add_node(num_cpus=1, resources={"n2": 2}, object_store_memory=STORE)
    cluster.wait_for_nodes()
    shoal.init(address=cluster.address)
    head_id = cluster.head_node.node_id

    @shoal.remote(resources={"n2": 1})
    class Keeper:
        def __init__(self):
            self.ref = shoal.put(np.ones(BIG, dtype=np.uint8))

        def ref_hex(self):
            return self.ref.hex(), os.getpid()

    @shoal.remote(resources={"n2": 1})
    def make():
        return np.zeros(BIG, dtype=np.uint8)

    keeper = Keeper.remote()
    kept, keeper_pid = shoal.get(keeper.ref_hex.remote(), timeout=30)
    made = make.remote()
    shoal.wait([made], timeout=30)
    local = shoal.put(np.zeros(BIG, dtype=np.uint8))

    nodes = {n.node_id: n for n in list_nodes()}
    assert nodes[node2.node_id].state == "ALIVE" and nodes[head_id].is_head_node
    assert not nodes[node2.node_id].is_head_node

    # the actor's own object: held by the actor process on node 2, stored there
    (rec,) = list_objects(filters=[("object_id", "=", kept)])
    assert (rec.type, rec.pid, rec.node_id) == ("WORKER", keeper_pid, node2.node_id)
    assert rec.reference_type == "LOCAL_REFERENCE" and rec.locations == [node2.node_id]
    assert rec.object_size >= BIG and rec.storage == "SHARED_MEMORY"
    # a task's return value: owned by the driver on the head, its copy on node 2
    (rec,) = objects_of(made)
    assert (rec.type, rec.pid, rec.node_id) == ("DRIVER", os.getpid(), head_id)
    assert rec.locations == [node2.node_id] and rec.task_status == "FINISHED"
    (rec,) = objects_of(local)
    assert rec.locations == [head_id]

    tasks = [t for t in list_tasks(limit=None) if t.name == "make"]
    assert [(t.state, t.node_id, t.type) for t in tasks] == [
        ("FINISHED", node2.node_id, "NORMAL_TASK")]
    (actor,) = list_actors(filters=[("class_name", "=", "Keeper")])
    assert (actor.state, actor.node_id, actor.pid) == ("ALIVE", node2.node_id, keeper_pid)

    cluster.remove_node(node2)
    wait_for_condition(lambda: {n.node_id: n.state for n in list_nodes()}[node2.node_id]
                       == "DEAD", timeout=20)
    wait_for_condition(lambda: get_actor(actor.actor_id).state == "DEAD", timeout=20)
    assert "died" in get_actor(actor.actor_id).death_cause["error_message"]
    # the actor's process is gone with its node, and so are its records
    wait_for_condition(lambda: gone(kept), timeout=20)


# ---- one node ----------------------------------------------------------------------------------
def test_put_objects_appear_with_size_place_and_reason(shoal_cluster):
    node_id = shoal.get_runtime_context().get_node_id()
    small = shoal.put(b"x" * 100)
    big = shoal.put(np.zeros(BIG, dtype=np.uint8))
    (s,) = objects_of(small)
    (b,) = objects_of(big)
    assert (s.type, s.pid, s.node_id, s.ip) == ("DRIVER", os.getpid(), node_id, "127.0.0.1")
    assert s.reference_type == b.reference_type == "LOCAL_REFERENCE"
    assert s.storage == "INLINE" and s.locations == [] and 100 <= s.object_size < 1000
    assert b.storage == "SHARED_MEMORY" and b.locations == [node_id]
    assert BIG <= b.object_size < BIG + 65536  # with the pickle's header
    assert s.call_site == "disabled" and s.task_status == "FINISHED"
    assert s["object_id"] == small.hex() and s.get("pid") == os.getpid()  # dict access
    assert s.local_ref_count is None  # detail-only
    (d,) = objects_of(small, detail=True)
    assert d.local_ref_count == 1 and d.is_owner
    hexes = small.hex(), big.hex()
    del small, big, s, b, d
    for h in hexes:
        wait_for_condition(lambda h=h: gone(h), timeout=10)


def test_pending_task_refs_and_task_states(shoal_cluster, tmp_path):
    gate = str(tmp_path / "gate")

    @shoal.remote
    def blocked(path):
        wait_for_file(path, timeout=60)
        return 1

    @shoal.remote
    def consume(data, dep):
        return len(data) + dep

    blocker = blocked.remote(gate)
    arg = shoal.put(np.zeros(BIG, dtype=np.uint8))
    out = consume.remote(arg, blocker)
    arg_hex = arg.hex()
    del arg  # only the pending task keeps it alive now
    (rec,) = list_objects(filters=[("object_id", "=", arg_hex)])
    assert rec.reference_type == "USED_BY_PENDING_TASK"
    (rec,) = objects_of(out)
    assert rec.task_status == "PENDING_ARGS_AVAIL" and rec.storage == "NOT_READY"

    def states():
        tasks = list_tasks(filters=[("job_id", "=", shoal_cluster_job())], limit=None)
        return {t.name.rsplit(".", 1)[-1]: t for t in tasks
                if t.task_id in (blocker.task_id(), out.task_id())}

    running = wait_for_condition(lambda: (s := states()) and s["blocked"].state == "RUNNING"
                                 and s, timeout=20)
    assert running["consume"].state == "PENDING_ARGS_AVAIL"
    assert running["blocked"].worker_pid and running["blocked"].node_id
    open_gate(gate)
    assert shoal.get(out, timeout=30) == BIG + 1
    done = wait_for_condition(lambda: (s := states()) and all(
        t.state == "FINISHED" for t in s.values()) and s, timeout=20)
    assert done["consume"].error_type is None
    wait_for_condition(lambda: gone(arg_hex), timeout=10)


def shoal_cluster_job() -> str:
    return shoal.get_runtime_context().get_job_id()


def test_failed_tasks_report_their_error_type(shoal_cluster):
    @shoal.remote
    def boom():
        raise ValueError("no")

    @shoal.remote
    def after(x):
        return x

    first = boom.remote()
    second = after.remote(first)
    with pytest.raises(ValueError):
        shoal.get(second, timeout=30)
    by_id = {t.task_id: t for t in list_tasks(limit=None, filters=[("state", "=", "FAILED")])}
    assert by_id[first.task_id()].error_type == "TASK_EXECUTION_EXCEPTION"
    assert by_id[second.task_id()].error_type == "DEPENDENCY_RESOLUTION_FAILED"
    assert by_id[first.task_id()].func_or_class_name.endswith("boom")


def test_nested_refs_are_captured_in_objects_and_borrowed(shoal_cluster):
    inner = shoal.put(b"i" * 10)
    outer = shoal.put([inner])
    inner_hex = inner.hex()
    del inner
    (rec,) = list_objects(filters=[("object_id", "=", inner_hex)])
    assert rec.reference_type == "CAPTURED_IN_OBJECT"

    @shoal.remote
    def make_nested():
        return [shoal.put(np.ones(BIG, dtype=np.uint8))]

    holder = make_nested.remote()
    (made,) = shoal.get(holder, timeout=30)
    made_hex = made.hex()
    by_type = {r.type: r for r in list_objects(filters=[("object_id", "=", made_hex)])}
    # the worker that put it owns it; only the driver holds it
    assert by_type["WORKER"].reference_type == "BORROWED"
    assert by_type["DRIVER"].reference_type == "LOCAL_REFERENCE"
    assert by_type["DRIVER"].owner == by_type["WORKER"].owner
    assert by_type["DRIVER"].object_size == by_type["WORKER"].object_size >= BIG
    del made
    wait_for_condition(lambda: {r.reference_type for r in list_objects(
        filters=[("object_id", "=", made_hex), ("type", "=", "DRIVER")])}
        == {"CAPTURED_IN_OBJECT"}, timeout=10)
    del holder, outer
    for h in (inner_hex, made_hex):
        wait_for_condition(lambda h=h: gone(h), timeout=15)


def test_pinned_in_memory_after_the_ref_is_dropped(shoal_cluster):
    ref = shoal.put(np.arange(BIG // 8, dtype=np.int64))
    view = shoal.get(ref, timeout=30)
    ref_hex = ref.hex()
    del ref
    (rec,) = wait_for_condition(lambda: list_objects(
        filters=[("object_id", "=", ref_hex)]), timeout=10)
    assert rec.reference_type == "PINNED_IN_MEMORY" and rec.object_size >= BIG
    assert rec.pid == os.getpid()
    del view, rec
    wait_for_condition(lambda: gone(ref_hex), timeout=10)


def test_actors_listed_and_killed(shoal_cluster):
    @shoal.remote
    class Named:
        def pid(self):
            return os.getpid()

    a = Named.options(name="state-api-actor", namespace="ns1").remote()
    pid = shoal.get(a.pid.remote(), timeout=30)
    (rec,) = list_actors(filters=[("name", "=", "state-api-actor")])
    assert (rec.state, rec.pid, rec.class_name, rec.ray_namespace) == (
        "ALIVE", pid, "Named", "ns1")
    assert rec.node_id == shoal.get_runtime_context().get_node_id()
    creation = list_tasks(filters=[("actor_id", "=", rec.actor_id),
                                   ("type", "=", "ACTOR_CREATION_TASK")])
    assert [t.state for t in creation] == ["FINISHED"]
    calls = list_tasks(filters=[("actor_id", "=", rec.actor_id), ("type", "=", "ACTOR_TASK")])
    assert [(t.name, t.state, t.worker_pid) for t in calls] == [("Named.pid", "FINISHED", pid)]
    shoal.kill(a)
    wait_for_condition(lambda: list_actors(filters=[("actor_id", "=", rec.actor_id)])[0]
                       .state == "DEAD", timeout=20)
    dead = get_actor(rec.actor_id)
    assert "kill" in dead.death_cause["error_message"]
    assert list_actors(filters=[("state", "!=", "DEAD"), ("name", "=", "state-api-actor")]) == []


def test_nodes_limits_filters_and_errors(shoal_cluster):
    (node,) = list_nodes()
    assert node.state == "ALIVE" and node.is_head_node and node.node_ip == "127.0.0.1"
    assert node.resources_total["CPU"] == 2
    refs = [shoal.put(i) for i in range(5)]
    assert len(list_objects(limit=3)) == 3
    assert len(list_objects(limit=None, filters=[("type", "=", "DRIVER")])) >= 5
    with pytest.raises(ValueError, match="cannot filter on"):
        list_objects(filters=[("no_such_column", "=", 1)])
    with pytest.raises(StateApiException):
        list_nodes(address="127.0.0.1:1")  # nobody there
    del refs


def test_memory_summary_lists_objects_and_totals(shoal_cluster):
    ref = shoal.put(np.zeros(BIG, dtype=np.uint8))
    text = memory_summary()
    assert ref.hex() in text and "LOCAL_REFERENCE" in text
    assert f"{os.getpid()}" in text and "Driver" in text
    assert "--- Aggregate object store stats across all nodes ---" in text
    assert "shared-memory store" in text and "Total:" in text
    assert ref.hex() not in memory_summary(stats_only=True)


def test_state_api_from_inside_a_task(shoal_cluster):
    """A worker asks too: its own borrowed ref is there, and its task is RUNNING."""
    ref = shoal.put(b"x" * 10)

    @shoal.remote
    def look(refs):
        from shoal.util.state import list_objects, list_tasks

        mine = [(o.object_id, o.reference_type) for o in list_objects(limit=None)
                if o.pid == os.getpid()]
        me = shoal.get_runtime_context().get_task_id()
        return mine, [t.state for t in list_tasks(filters=[("task_id", "=", me)])]

    mine, states = shoal.get(look.remote([ref]), timeout=30)
    assert mine == [(ref.hex(), "LOCAL_REFERENCE")]
    assert states == ["RUNNING"]


def test_a_nested_functions_task_is_named_by_its_own_name(shoal_cluster):
    """Ray names a task after the function, not its qualified name: a test can find
    a function defined inside another by ``("name", "=", "inner")``."""
    @shoal.remote
    def inner():
        return 1

    assert shoal.get(inner.remote(), timeout=60) == 1
    (task,) = list_tasks(filters=[("name", "=", "inner")])
    assert task.state == "FINISHED"


def test_workers_that_ended_are_listed_with_why(shoal_cluster):
    """Ray lists dead workers too, with ``exit_type``: a worker the node stopped
    (kill) is INTENDED_SYSTEM_EXIT, one that exited itself (exit_actor)
    INTENDED_USER_EXIT, one killed by someone else SYSTEM_ERROR."""
    import signal

    from shoal.util.state import list_workers

    @shoal.remote(max_restarts=0)
    class Proc:
        def pid(self) -> int:
            return os.getpid()

        def leave(self) -> None:
            shoal.actor.exit_actor()

    killed, left, crashed = Proc.remote(), Proc.remote(), Proc.remote()
    pids = [shoal.get(a.pid.remote(), timeout=30) for a in (killed, left, crashed)]
    shoal.kill(killed)
    left.leave.remote()
    os.kill(pids[2], signal.SIGKILL)

    def ended() -> dict:
        return {w.pid: w for w in list_workers(limit=None) if not w.is_alive}

    wait_for_condition(lambda: set(pids) <= set(ended()), timeout=30)
    rows = ended()
    assert [rows[p].exit_type for p in pids] == [
        "INTENDED_SYSTEM_EXIT", "INTENDED_USER_EXIT", "SYSTEM_ERROR"]
    assert "SIGKILL" in rows[pids[2]].exit_detail


def test_a_filter_on_a_state_no_record_can_have_is_refused(shoal_cluster):
    """Ray refuses a state filter naming no actor or task state (a typo would
    otherwise look like "nothing there"); its error lives at Ray's path."""
    import shoal.util.state as state_api

    assert state_api.exception.RayStateApiException is StateApiException
    with pytest.raises(state_api.exception.RayStateApiException, match="PENDING_CREATION"):
        list_actors(filters=[("state", "=", "UNKONWN_STATE")])
    with pytest.raises(StateApiException, match="valid values"):
        list_tasks(filters=[("state", "!=", "DONE")])
    assert isinstance(list_actors(filters=[("state", "=", "pending_creation")]), list)
