"""The dashboard's pure parts: the token check, the page views, the Chrome trace,
the Prometheus text (parsed back with prometheus-client's own parser)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.dashboard import auth, metrics, timeline, views
from shoal.node.node_metrics import NodeMetrics
from shoal.util import state_summary


def _task(tid, name, state, start=None, end=None, worker="w1", node="n1", **extra):
    return {"task_id": tid, "name": name, "func_or_class_name": name, "state": state,
            "type": "NORMAL_TASK", "start_time_ms": start, "end_time_ms": end,
            "worker_id": worker, "node_id": node, **extra}


TASKS = [_task("a", "f", "FINISHED", 1000, 1500), _task("b", "f", "FAILED", 1200, 1300),
         _task("c", "g", "RUNNING", 1400, None, worker="w2"),
         _task("d", "g", "PENDING_NODE_ASSIGNMENT")]


def test_token_check_needs_the_exact_token():
    assert auth.token_matches("s3cret", "s3cret")
    assert not auth.token_matches("s3cre", "s3cret")
    assert not auth.token_matches("", "s3cret")
    assert not auth.token_matches(None, "s3cret")
    assert not auth.token_matches("x", "")
    assert auth.presented_token({auth.COOKIE: "t"}, {}) == "t"
    assert auth.presented_token({}, {"Authorization": "Bearer t2"}) == "t2"
    assert auth.presented_token({}, {"Authorization": "Basic t2"}) is None
    assert auth.is_public("/") and not auth.is_public("/api/tasks")
    assert not auth.is_public("/metrics")


def test_trace_has_one_complete_event_per_started_task_on_worker_lanes():
    events = timeline.trace_events(TASKS, now_ms=2000)
    spans = [e for e in events if e["ph"] == "X"]
    assert sorted(e["args"]["task_id"] for e in spans) == ["a", "b", "c"]
    by_id = {e["args"]["task_id"]: e for e in spans}
    assert by_id["a"]["ts"] == 1000 * 1000 and by_id["a"]["dur"] == 500 * 1000
    assert by_id["c"]["dur"] == 600 * 1000  # running: ends now
    assert by_id["a"]["tid"] != by_id["c"]["tid"]  # another worker, another lane
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert "worker w1" in names and "node n1" in names


def test_task_view_counts_and_filters():
    page = views.tasks(TASKS, state="", name="F")
    assert page["state_counts"] == {"FINISHED": 1, "FAILED": 1, "RUNNING": 1,
                                    "PENDING_NODE_ASSIGNMENT": 1}
    assert page["total"] == 4 and page["matching"] == 2
    assert {r["task_id"] for r in views.tasks(TASKS, state="FAILED")["rows"]} == {"b"}
    assert page["by_function"]["g"]["state_counts"] == {"RUNNING": 1,
                                                        "PENDING_NODE_ASSIGNMENT": 1}


def test_task_stream_keeps_the_window():
    stream = views.task_stream(TASKS, now_ms=2000, window_ms=600)
    ids = sorted(t["task_id"] for lane in stream["lanes"] for t in lane["tasks"])
    assert ids == ["a", "c"]  # b ended at 1300 < 1400


def test_object_summary_counts_each_object_once():
    objs = [{"object_id": "x", "object_size": 10, "reference_type": "LOCAL_REFERENCE",
             "storage": "INLINE"},
            {"object_id": "x", "object_size": 10, "reference_type": "BORROWED",
             "storage": "INLINE"},
            {"object_id": "y", "object_size": -1, "reference_type": "LOCAL_REFERENCE",
             "storage": "NOT_READY"}]
    s = state_summary.object_summary(objs)
    assert s["total_objects"] == 2 and s["total_size_bytes"] == 10
    assert s["by_reference_type"] == {"LOCAL_REFERENCE": 2, "BORROWED": 1}


def test_metrics_parse_with_ray_style_names():
    status = {"nodes": [
        {"node_id": "n1", "address": "127.0.0.1:1", "alive": True,
         "resources_total": {"CPU": 4.0, "node:127.0.0.1": 1.0},
         "resources_available": {"CPU": 1.0},
         "store": {"capacity": 1000, "used": 300, "spilled_bytes_total": 50,
                   "bytes_on_disk": 20, "restored_bytes_total": 5}},
        {"node_id": "n2", "address": "127.0.0.1:2", "alive": False}],
        "actor_counts": [["ALIVE", "A", 1], ["DEAD", "A", 0]]}
    text = metrics.exposition(status, TASKS, [{"state": "ALIVE", "actor_id": "a1",
                                               "class_name": "A"}]).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("shoal_tasks", (("Name", "f"), ("State", "FINISHED")))] == 1
    assert samples[("shoal_actors", (("Name", "A"), ("State", "ALIVE")))] == 1
    assert samples[("shoal_cluster_active_nodes", ())] == 1
    assert samples[("shoal_cluster_dead_nodes", ())] == 1
    where = ("NodeAddress", "127.0.0.1:1")
    assert samples[("shoal_resources", (("Name", "CPU"), where, ("State", "USED")))] == 3
    assert samples[("shoal_object_store_memory_bytes", (where,))] == 300
    assert samples[("shoal_spill_manager_spilled_bytes_total", (where,))] == 50
    assert not any(k[0] == "shoal_resources" and ("Name", "node:127.0.0.1") in k[1]
                   for k in samples)


def test_node_counters_become_a_transfer_counter_and_a_latency_histogram():
    counters = NodeMetrics(transfer_sent_bytes=7, transfer_received_bytes=11)
    for seconds in (0.0004, 0.0005, 0.003, 0.2, 99.0):  # 0.0005 is <= the first bound
        counters.lease_latency.observe(seconds)
    status = {"nodes": [{"node_id": "n1", "address": "h:1", "alive": True,
                         "resources_total": {}, "metrics": counters.wire()}]}
    families = {f.name: f for f in text_string_to_metric_families(
        metrics.exposition(status, [], []).decode())}
    transfer = {s.labels["Type"]: s.value
                for s in families["shoal_object_manager_bytes"].samples}
    assert transfer == {"Sent": 7, "Received": 11}
    hist = {(s.name.rsplit("_", 1)[-1], s.labels.get("le")): s.value
            for s in families["shoal_scheduler_lease_request_latency_seconds"].samples}
    assert hist[("bucket", "0.0005")] == 2 and hist[("bucket", "0.005")] == 3
    assert hist[("bucket", "0.25")] == 4 and hist[("bucket", "30.0")] == 4
    assert hist[("bucket", "+Inf")] == hist[("count", None)] == 5
    assert hist[("sum", None)] == pytest.approx(99.2039)


def test_actor_gauge_splits_alive_into_idle_and_running_and_keeps_zero_rows():
    """Ray's ray_actors: ALIVE is counted again as ALIVE_IDLE / ALIVE_RUNNING_TASKS by
    whether the actor's process runs a call; states with no actor export 0."""
    status = {"nodes": [], "actor_counts": [["PENDING_CREATION", "A", 1], ["ALIVE", "A", 2],
                                            ["DEAD", "A", 3], ["ALIVE", "B", 1]]}
    actors = [{"actor_id": "a1", "class_name": "A", "state": "ALIVE"},
              {"actor_id": "a2", "class_name": "A", "state": "ALIVE"},
              {"actor_id": "b1", "class_name": "B", "state": "ALIVE"},
              {"actor_id": "a3", "class_name": "A", "state": "PENDING_CREATION"}]
    reply = {"node_states": [{"processes": [
        {"actor_id": "a1", "running": ["t1"]}, {"actor_id": "a2", "running": []},
        {"actor_id": None, "running": ["t2"]}]}]}
    busy = metrics.busy_actor_ids(reply)
    assert busy == {"a1"}
    text = metrics.exposition(status, [], actors, busy).decode()
    got = {(s.labels["State"], s.labels["Name"]): s.value
           for f in text_string_to_metric_families(text) if f.name == "shoal_actors"
           for s in f.samples}
    assert got[("ALIVE_RUNNING_TASKS", "A")] == 1
    assert got[("ALIVE_IDLE", "A")] == 1
    assert got[("ALIVE_IDLE", "B")] == 1 and got[("ALIVE_RUNNING_TASKS", "B")] == 0
    assert got[("DEAD", "A")] == 3 and got[("PENDING_CREATION", "A")] == 1
