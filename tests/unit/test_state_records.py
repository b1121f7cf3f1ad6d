"""Unit tests for the state API's record building (pure): one process's rows
(shoal.core.state_records), the merge into Ray-shaped records and the filters
(shoal.util.state_build), the records' dict access (shoal.util.state) and the
``shoal memory`` layout (shoal.util.memory)."""

from __future__ import annotations

import datetime

import pytest

from shoal import exceptions
from shoal.core import state_records as sr
from shoal.core.reference_table import Reference, ReferenceTable
from shoal.core.serialization import serialize, serialize_error
from shoal.core.task_manager import PendingTask
from shoal.core.task_spec import TaskKind, TaskSpec
from shoal.core.task_state import TaskState as CoreTaskState
from shoal.core.value_table import StoredValue
from shoal.util import state_build
from shoal.util.memory import format_memory_summary
from shoal.util.state import ActorState, ObjectState, TaskState

ME = "10.0.0.1:7000"
OTHER = "10.0.0.2:7001"


def oid(name: str, index: int = 1) -> bytes:
    return name.encode().ljust(16, b"\0") + index.to_bytes(4, "big")


def spec(name: str = "f", kind: TaskKind = TaskKind.NORMAL, actor_id: str = "") -> TaskSpec:
    return TaskSpec(task_id=name.encode().ljust(16, b"\0"), kind=kind, name=name,
                    function_id=b"fn", args=[[0, [0, b"x" * 1000, []]]], kwarg_names=[],
                    num_returns=1, owner=ME, job_id="00000001", resources={"CPU": 1.0},
                    actor_id=actor_id)


def task(name: str = "f", **kw) -> PendingTask:
    return PendingTask(spec=spec(name, **kw), return_ids=[oid(name)], held=[],
                       retries_left=0, retry_exceptions=False)


def inline(value) -> StoredValue:
    return StoredValue(inline=serialize(value, "test"))


# ---- one process's rows ------------------------------------------------------------------
def test_reference_type_is_the_first_reason_that_holds():
    assert sr.reference_type(Reference("", local=1, submitted=1)) == sr.USED_BY_PENDING_TASK
    assert sr.reference_type(Reference("", local=2, contained_in=1)) == sr.LOCAL_REFERENCE
    assert sr.reference_type(Reference(OTHER, contained_in=1)) == sr.CAPTURED_IN_OBJECT
    assert sr.reference_type(Reference("", borrowers={OTHER: 2})) == sr.BORROWED
    assert sr.reference_type(Reference("", holds=1)) == sr.UNKNOWN_STATUS


def test_object_rows_say_why_each_object_is_alive_and_what_it_is():
    table = ReferenceTable()
    put, pending, inner, lent, borrowed = (oid("put", 0), oid("pending"), oid("inner", 0),
                                           oid("lent", 0), oid("borrowed"))
    table.add_owned(inner)
    table.add_owned(put, [inner])  # put([inner_ref]): inner captured in put
    table.inc_local(put, "")
    table.add_owned(pending)
    table.inc_local(pending, "")
    table.inc_submitted([pending])  # and passed to another pending task
    table.add_owned(lent)
    table.add_borrower(lent, OTHER)
    table.inc_local(borrowed, OTHER)
    values = {put: inline([1, 2, 3]), inner: inline("x"),
              lent: StoredValue(node_id="n1", size=5 << 20, locations={"n1", "n2"})}
    states = {pending[:16]: sr.SUBMITTED_TO_WORKER}
    rows = {r[0]: dict(zip(sr.OBJECT_COLUMNS, r, strict=True))
            for r in sr.object_rows(table.refs, values, states.get)}
    assert rows[put.hex()]["reference_type"] == sr.LOCAL_REFERENCE
    assert rows[put.hex()]["object_size"] == values[put].inline.data_size()
    assert (rows[put.hex()]["storage"], rows[put.hex()]["task_status"]) == (sr.INLINE,
                                                                         sr.FINISHED)
    assert rows[inner.hex()]["reference_type"] == sr.CAPTURED_IN_OBJECT
    assert rows[pending.hex()]["reference_type"] == sr.USED_BY_PENDING_TASK
    assert rows[pending.hex()]["task_status"] == sr.SUBMITTED_TO_WORKER
    assert (rows[pending.hex()]["object_size"], rows[pending.hex()]["storage"]) == (
        -1, sr.NOT_READY)
    assert rows[lent.hex()]["reference_type"] == sr.BORROWED
    assert rows[lent.hex()]["borrowers"] == 1
    assert rows[lent.hex()]["locations"] == ["n1", "n2"]
    assert rows[lent.hex()]["object_size"] == 5 << 20
    assert rows[borrowed.hex()]["owner"] == OTHER
    assert rows[borrowed.hex()]["task_status"] == sr.NIL  # a borrower does not know
    table.refs[oid("lineage", 0)] = Reference("")  # a row kept only to rebuild others
    assert oid("lineage", 0).hex() not in {
        r[0] for r in sr.object_rows(table.refs, values, states.get)}


def test_refs_inside_stored_small_values_count_as_captured_not_local():
    from shoal.api.object_ref import ObjectRef

    table = ReferenceTable()
    inner, outer, other = oid("inner", 0), oid("outer", 0), oid("other", 0)
    table.add_owned(inner)
    table.inc_local(inner, "")  # one live ObjectRef instance...
    table.add_owned(outer, [inner])
    data = serialize([1], "test")
    data.contained = [ObjectRef.uncounted(inner, ME, None)]  # ...kept only by the value
    values = {outer: StoredValue(inline=data),
              other: StoredValue(inline=serialize([2], "test"))}
    held = sr.refs_held_by_values(values)
    assert held == {inner: 1}
    rows = {r[0]: r for r in sr.object_rows(table.refs, values, lambda t: None, held)}
    assert rows[inner.hex()][2] == sr.CAPTURED_IN_OBJECT
    assert rows[inner.hex()][7] == 0  # local refs the user holds
    user_ref = data.contained[0]  # the user still holds the very same instance
    held = sr.refs_held_by_values(values)
    assert held == {}
    rows = {r[0]: r for r in sr.object_rows(table.refs, values, lambda t: None, held)}
    assert rows[inner.hex()][2] == sr.LOCAL_REFERENCE and rows[inner.hex()][7] == 1
    del user_ref
    values[other].inline.contained = list(data.contained)  # in two stored values
    assert sr.refs_held_by_values(values) == {inner: 1}


def test_failed_values_and_error_types():
    table = ReferenceTable()
    table.add_owned(oid("bad"))
    table.inc_local(oid("bad"), "")
    error = StoredValue(inline=serialize_error(exceptions.WorkerCrashedError("x")))
    row = sr.object_rows(table.refs, {oid("bad"): error}, lambda t: None)[0]
    assert row[3] == sr.FAILED
    assert sr.error_type_of(exceptions.OwnerDiedError("o", "gone")) == "OWNER_DIED"
    assert sr.error_type_of(exceptions.ObjectLostError("o", "lost")) == "OBJECT_LOST"
    assert sr.error_type_of(exceptions.ActorDiedError("dead")) == "ACTOR_DIED"
    assert sr.error_type_of(exceptions.TaskCancelledError("t", "c")) == "TASK_CANCELLED"
    assert sr.error_type_of(KeyError("k")) == "KeyError"


def test_pending_state_of_normal_and_actor_tasks():
    t = task()
    assert sr.pending_state(t, in_flight=False) == sr.PENDING_NODE_ASSIGNMENT
    assert sr.pending_state(t, in_flight=True) == sr.SUBMITTED_TO_WORKER
    t.state = CoreTaskState.RESOLVING
    assert sr.pending_state(t, in_flight=False) == sr.PENDING_ARGS_AVAIL
    a = task("A.m", kind=TaskKind.ACTOR_TASK, actor_id="ab" * 8)
    assert sr.pending_state(a, in_flight=False) == sr.PENDING_ACTOR_TASK_ORDERING
    rows = sr.pending_rows([t, a], lambda x: x is a)
    assert [r["state"] for r in rows] == [sr.PENDING_ARGS_AVAIL, sr.SUBMITTED_TO_WORKER]
    assert rows[1]["type"] == "ACTOR_TASK" and rows[1]["actor_id"] == "ab" * 8
    assert rows[0]["type"] == "NORMAL_TASK" and rows[0]["actor_id"] is None


def test_task_history_is_bounded_and_keeps_no_arguments():
    history = sr.TaskHistory(maxlen=3)
    for i in range(5):
        t = task(f"t{i}")
        t.ran_on = ("w" * 16, "n" * 28)
        history.finished(t, "TASK_EXECUTION_EXCEPTION" if i == 4 else "")
    rows = history.to_rows()
    assert [r["name"] for r in rows] == ["t4", "t3", "t2"]  # newest first
    assert history.dropped == 2
    assert rows[0]["state"] == sr.FAILED
    assert rows[0]["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert rows[1]["state"] == sr.FINISHED and rows[1]["error_type"] is None
    assert rows[1]["worker_id"] == "w" * 16 and rows[1]["node_id"] == "n" * 28
    kept = [x for entry in history.rows for x in entry]
    assert not any(isinstance(x, (TaskSpec, list)) for x in kept)  # no spec, no args
    timed = sr.TaskHistory(maxlen=2)  # the worker's times win over the owner's
    t = task("timed")
    t.sent_at, t.ran_at = 100.0, [100.25, 100.75]
    timed.finished(t, "")
    untimed = task("died")
    untimed.sent_at = 100.0  # never answered: the owner's push, and its own end
    timed.finished(untimed, "WORKER_DIED")
    by_name = {r["name"]: r for r in timed.to_rows()}
    assert (by_name["timed"]["start_time_ms"], by_name["timed"]["end_time_ms"]) == (
        100250, 100750)
    assert by_name["died"]["start_time_ms"] == 100000
    assert by_name["died"]["end_time_ms"] > 100000
    off = sr.TaskHistory(maxlen=0)
    off.finished(task(), "")
    assert off.to_rows() == [] and off.dropped == 1


# ---- merging into records --------------------------------------------------------------------
def proc(address: str, pid: int, node: str, objects=(), pinned=None, tasks=(), running=(),
         kind: str = "WORKER", actor_id=None, running_since=None) -> dict:
    return {"worker_id": f"w{pid}", "pid": pid, "type": kind, "node_id": node,
            "ip": address.split(":")[0], "address": address, "job_id": "00000001",
            "actor_id": actor_id, "objects": list(objects), "pinned": pinned or {},
            "tasks": list(tasks), "running": list(running),
            "running_since": dict(running_since or {})}


def row(object_id: str, size: int, rtype: str, owner: str = "", storage: str = sr.INLINE,
        status: str = sr.FINISHED, locations=()) -> list:
    return [object_id, size, rtype, status, owner, storage, list(locations), 1, 0, 0, 0]


def reply(*procs, nodes=None, actors=None, workers=()) -> dict:
    out = {"node_states": [{"node_id": "n1" * 14, "address": "10.0.0.1:6380",
                            "store": {"capacity": 1 << 30, "used": 10 << 20,
                                      "num_objects": 2},
                            "workers": list(workers), "processes": list(procs),
                            "missing": []}],
           "nodes": nodes or [{"node_id": "n1" * 14, "address": "10.0.0.1:6380",
                               "alive": True, "is_head_node": True}],
           "missing": []}
    if actors is not None:
        out["actors"] = actors
    return out


def test_borrower_rows_get_size_status_and_location_from_the_owner():
    big = "ab" * 20
    driver = proc(ME, 10, "n1" * 14, kind="DRIVER",
                  objects=[row(big, 8 << 20, sr.USED_BY_PENDING_TASK,
                               storage=sr.SHARED_MEMORY, locations=["n1" * 14])])
    worker = proc(OTHER, 11, "n1" * 14,
                  objects=[row(big, -1, sr.LOCAL_REFERENCE, owner=ME, storage=sr.NOT_READY,
                               status=sr.NIL)],
                  pinned={big: 8 << 20, "cd" * 20: 4096})
    records = {(r["object_id"], r["pid"]): r for r in state_build.object_records(
        reply(driver, worker))}
    owner, borrower = records[(big, 10)], records[(big, 11)]
    assert owner["is_owner"] and owner["owner"] == ME and owner["type"] == "DRIVER"
    assert borrower["owner"] == ME and not borrower["is_owner"]
    assert borrower["object_size"] == 8 << 20
    assert borrower["storage"] == sr.SHARED_MEMORY and borrower["locations"] == ["n1" * 14]
    assert borrower["task_status"] == sr.FINISHED
    assert borrower["pinned_in_memory"] and not owner["pinned_in_memory"]
    pinned_only = records[("cd" * 20, 11)]
    assert pinned_only["reference_type"] == sr.PINNED_IN_MEMORY
    assert pinned_only["object_size"] == 4096 and pinned_only["owner"] is None
    assert all(r["call_site"] == "disabled" for r in records.values())


def test_task_records_running_actor_placement_and_creation_tasks():
    actor_id = "ac" * 8
    owner_rows = [
        {**sr.task_row(b"t1".ljust(16, b"\0"), "f", TaskKind.NORMAL, sr.SUBMITTED_TO_WORKER,
                       "", "00000001", ("w11", "n1" * 14), "", None, None, {}, 1000),
         },
        sr.task_row(b"t2".ljust(16, b"\0"), "A.m", TaskKind.ACTOR_TASK,
                    sr.SUBMITTED_TO_WORKER, actor_id, "00000001", (), "", None, None, {}),
        sr.task_row(b"t3".ljust(16, b"\0"), "g", TaskKind.NORMAL, sr.FINISHED, "",
                    "00000001", ("w11", "n1" * 14), "", None, 5, {}),
    ]
    t1 = b"t1".ljust(16, b"\0").hex()
    orphan = ("ee" * 16)
    driver = proc(ME, 10, "n1" * 14, kind="DRIVER", tasks=owner_rows)
    worker = proc(OTHER, 11, "n1" * 14, running=[t1, orphan],
                  running_since={t1: 1700, orphan: 1800})
    actors = [{"actor_id": actor_id, "class_name": "A", "state": "ALIVE",
               "worker_id": "w12", "node_id": "n1" * 14, "job_id": "00000001"},
              {"actor_id": "dd" * 8, "class_name": "B", "state": "DEAD", "worker_id": "",
               "node_id": "", "job_id": "00000001", "death_cause": "killed"}]
    workers = [{"worker_id": "w11", "pid": 11}, {"worker_id": "w12", "pid": 12}]
    records = {r["task_id"]: r for r in state_build.task_records(
        reply(driver, worker, actors=actors, workers=workers))}
    assert records[t1]["state"] == sr.RUNNING and records[t1]["worker_pid"] == 11
    # started when its worker says (pushed at 1000, queued there until 1700)
    assert records[t1]["start_time_ms"] == 1700
    t2 = records[b"t2".ljust(16, b"\0").hex()]
    assert t2["state"] == sr.SUBMITTED_TO_WORKER
    assert (t2["worker_id"], t2["worker_pid"], t2["node_id"]) == ("w12", 12, "n1" * 14)
    assert records[b"t3".ljust(16, b"\0").hex()]["state"] == sr.FINISHED
    assert records[orphan]["state"] == sr.RUNNING and records[orphan]["name"] == ""
    assert records[orphan]["start_time_ms"] == 1800
    creation = records[actor_id]
    assert (creation["type"], creation["state"], creation["name"]) == (
        "ACTOR_CREATION_TASK", sr.FINISHED, "A.__init__")
    assert records["dd" * 8]["state"] == sr.FAILED


def test_actor_and_node_records():
    actors = [{"actor_id": "a1", "class_name": "A", "state": "ALIVE", "worker_id": "w12",
               "node_id": "n1", "namespace": "ns", "name": "x", "job_id": "j",
               "death_cause": ""},
              {"actor_id": "a2", "class_name": "A", "state": "DEAD", "worker_id": "w13",
               "node_id": "n1", "namespace": "ns", "name": "", "job_id": "j",
               "death_cause": "killed by shoal.kill()"}]
    r = reply(actors=actors, workers=[{"worker_id": "w12", "pid": 12}],
              nodes=[{"node_id": "n1", "address": "10.0.0.1:6380", "alive": True,
                      "is_head_node": True, "resources_total": {"CPU": 2.0, "node:x": 1}},
                     {"node_id": "n2", "address": "10.0.0.2:7000", "alive": False,
                      "death_cause": "gone"}])
    alive, dead = state_build.actor_records(r)
    assert (alive["pid"], alive["ray_namespace"], alive["death_cause"]) == (12, "ns", None)
    assert dead["death_cause"] == {"error_message": "killed by shoal.kill()"}
    head, gone = state_build.node_records(r)
    assert head["is_head_node"] and head["state"] == "ALIVE" and head["node_ip"] == "10.0.0.1"
    assert head["resources_total"] == {"CPU": 2.0}
    assert gone["state"] == "DEAD" and gone["state_message"] == "gone"
    assert not gone["is_head_node"]


# ---- filters and records -----------------------------------------------------------------------
def test_filters_follow_rays_semantics():
    records = [{"state": "ALIVE", "pid": 12, "is_head_node": True, "name": None},
               {"state": "DEAD", "pid": 13, "is_head_node": False, "name": "x"}]
    cols = ["state", "pid", "is_head_node", "name"]
    f = state_build.apply_filters
    assert f(records, [("state", "=", "alive")], cols) == records[:1]
    assert f(records, [("state", "!=", "ALIVE")], cols) == records[1:]
    assert f(records, [("pid", "=", "13")], cols) == records[1:]
    assert f(records, [("is_head_node", "=", "True")], cols) == records[:1]
    assert f(records, [("state", "=", "DEAD"), ("pid", "=", 12)], cols) == []
    assert f(records, None, cols) == records
    with pytest.raises(ValueError, match="cannot filter on 'nope'"):
        f(records, [("nope", "=", 1)], cols)
    with pytest.raises(ValueError, match="predicate"):
        f(records, [("state", ">", "A")], cols)
    with pytest.raises(ValueError, match="tuple"):
        f(records, ["state=ALIVE"], cols)


def test_records_allow_attribute_and_dict_access():
    rec = {"actor_id": "a1", "class_name": "A", "state": "DEAD", "job_id": "j", "name": "",
           "node_id": None, "pid": None, "ray_namespace": "ns",
           "death_cause": {"error_message": "x"}, "num_restarts": 0}
    brief = ActorState.from_record(rec, detail=False)
    full = ActorState.from_record(rec, detail=True)
    assert brief.state == brief["state"] == brief.get("state") == "DEAD"
    assert brief.death_cause is None and full["death_cause"] == {"error_message": "x"}
    assert full.namespace == "ns" and "ray_namespace" in full and "nope" not in full
    assert full.get("nope", 7) == 7
    with pytest.raises(KeyError):
        full["nope"]
    assert full.asdict()["actor_id"] == "a1" and "class_name" in full.keys()
    assert {"object_id", "object_size", "reference_type", "task_status", "call_site", "ip",
            "pid", "type", "node_id"} <= set(ObjectState._names())
    assert {"task_id", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
            "node_id", "worker_id", "error_type"} <= set(TaskState._names())


# ---- shoal memory ------------------------------------------------------------------------------
def test_memory_summary_groups_by_node_with_totals():
    big, small = "ab" * 20, "cd" * 20
    driver = proc(ME, 10, "n1" * 14, kind="DRIVER",
                  objects=[row(big, 8 << 20, sr.LOCAL_REFERENCE, storage=sr.SHARED_MEMORY,
                               locations=["n1" * 14]),
                           row(small, 20, sr.CAPTURED_IN_OBJECT)])
    worker = proc(OTHER, 11, "n1" * 14,
                  objects=[row(big, -1, sr.LOCAL_REFERENCE, owner=ME, storage=sr.NOT_READY)])
    text = format_memory_summary(reply(driver, worker),
                                 now=datetime.datetime(2026, 1, 2, 3, 4, 5))
    assert "Object references status: 2026-01-02 03:04:05" in text
    assert f"--- Summary for node address: 10.0.0.1 (node {'n1' * 6}) ---" in text
    assert "8.0 MiB" in text and "2, (16.0 MiB)" in text  # two local refs to the 8 MiB one
    assert "driver pid=10" in text  # the worker's row names its owner
    freed = proc(OTHER, 11, "n1" * 14, pinned={"ee" * 20: 64})
    assert "(freed, still mapped)" in format_memory_summary(reply(freed))
    assert "shm on n1n1n1n1" in text and "inline (owner's memory)" in text
    assert "Total: 3 references to 2 objects; 8.0 MiB in shared memory, 20 B inline" in text
    assert "shared-memory store 10.0 MiB used of 1.0 GiB (1.0% full), 2 objects" in text
    lines = text.splitlines()
    first_obj = next(i for i, x in enumerate(lines) if x.startswith("IP Address"))
    assert big in lines[first_obj + 1]  # largest first
    stats = format_memory_summary(reply(driver, worker), stats_only=True)
    assert "Object references for" not in stats and "Total: 3 references" in stats
    few = format_memory_summary(reply(driver, worker), num_entries=1, units="KB")
    assert "... 2 more" in few and "8192.00 KB" in few
    with pytest.raises(ValueError, match="group_by"):
        format_memory_summary(reply(), group_by="OWNER")
    empty = format_memory_summary(reply())
    assert "No live object references" in empty and "Total: 0 references" in empty


def test_reporter_snapshot_of_a_worker_process():
    from types import SimpleNamespace

    from shoal.core.core_worker import Mode
    from shoal.core.value_table import ValueTable
    from shoal.rpc.transport import Router

    table = ReferenceTable()
    table.add_owned(oid("r"))
    table.inc_local(oid("r"), "")
    running, queued = task("run"), task("queued")
    running.running_on = SimpleNamespace(worker_id="w9", node_id="n9")
    history = sr.TaskHistory(5)
    history.finished(task("old"), "")
    drained = []
    worker = SimpleNamespace(
        router=Router(), worker_id="w1", mode=Mode.WORKER, node_id="n1",
        address="10.0.0.5:4000", job_id="00000002", references=table,
        value_table=ValueTable(), actors=SimpleNamespace(actors={}),
        executor=SimpleNamespace(actor_id=None, running={b"x" * 16: 1},
                                 started_at={b"x" * 16: 12.5}),
        tasks=SimpleNamespace(pending={b"r": running, b"q": queued}, history=history),
        drain_queued=lambda: drained.append(1))
    reporter = sr.StateReporter(worker, worker.tasks, worker.actors)
    snap = reporter.handle_worker_state(None, ["objects", "tasks"])
    assert drained == [1]  # user threads' queued ref-count changes applied first
    assert (snap["type"], snap["ip"], snap["job_id"]) == ("WORKER", "10.0.0.5", "00000002")
    assert [r[2] for r in snap["objects"]] == [sr.LOCAL_REFERENCE]
    assert snap["objects"][0][3] == sr.NIL  # no value, no pending task for it
    states = {r["name"]: r["state"] for r in snap["tasks"]}
    assert states == {"run": sr.SUBMITTED_TO_WORKER, "queued": sr.PENDING_NODE_ASSIGNMENT,
                      "old": sr.FINISHED}
    assert snap["running"] == [(b"x" * 16).hex()] and snap["history_dropped"] == 0
    assert snap["running_since"] == {(b"x" * 16).hex(): 12500}  # ms, the worker's clock
    assert "objects" not in reporter.handle_worker_state(None, ["tasks"])


def test_each_nodes_copy_is_marked_in_memory_or_on_disk():
    big = "ab" * 20
    driver = proc(ME, 10, "n1" * 14, kind="DRIVER",
                  objects=[row(big, 8 << 20, sr.LOCAL_REFERENCE, storage=sr.SHARED_MEMORY,
                               locations=["n1" * 14, "n2" * 14])])
    state = reply(driver)
    state["node_states"][0]["copies"] = {big: "DISK"}
    state["node_states"][0]["store"].update(spilled_bytes_total=8 << 20,
                                            spilled_objects_total=1, spill_seconds=0.01)
    state["node_states"].append({"node_id": "n2" * 14, "address": "10.0.0.2:6380",
                                 "store": {"capacity": 1 << 30, "used": 8 << 20,
                                           "num_objects": 1},
                                 "copies": {big: "MEMORY"}, "workers": [], "processes": [],
                                 "missing": []})
    (record,) = state_build.object_records(state)
    assert record["copies"] == {"n1" * 14: "DISK", "n2" * 14: "MEMORY"}
    assert ObjectState.from_record(record, detail=False).copies == record["copies"]
    text = format_memory_summary(state)
    assert "shm on n1n1n1n1 (spilled), n2n2n2n2" in text
    assert "Spilled 8 MiB, 1 objects, avg write throughput 800 MiB/s" in text
