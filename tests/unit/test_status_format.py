"""Unit tests for the ``shoal status`` formatter (pure)."""

from __future__ import annotations

from shoal.launch.status import format_bytes, format_spilling, format_status, format_usage


def test_format_bytes_and_usage():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 << 30) == "3.0 GiB"
    usage = format_usage({"CPU": 4.0, "gpu_box": 1.0, "node:1.2.3.4": 1.0,
                          "object_store_memory": float(1 << 30)},
                         {"CPU": 1.5, "gpu_box": 1.0, "object_store_memory": float(1 << 29)})
    assert usage == "CPU 2.5/4, gpu_box 0/1, object_store_memory 512.0 MiB/1.0 GiB"


def test_status_lists_nodes_dead_nodes_and_demand():
    status = {
        "version": "9.9", "node_timeout_s": 5.0,
        "nodes": [
            {"node_id": "a" * 28, "address": "10.0.0.1:6380", "alive": True,
             "resources_total": {"CPU": 2.0}, "resources_available": {"CPU": 0.0},
             "demand": [[{"CPU": 1.0, "big": 1.0}, 3, True], [{"CPU": 1.0}, 2, False]]},
            {"node_id": "b" * 28, "address": "10.0.0.2:7000", "alive": False,
             "resources_total": {"CPU": 2.0}, "resources_available": {},
             "death_cause": "no heartbeat for 5.2 s (timeout 5 s)"},
        ],
        "pending_actors": [{"class_name": "Trainer", "resources": {"GPU": 8.0}, "name": "t"}],
    }
    text = format_status("10.0.0.1:6380", status)
    assert "Nodes: 1 alive, 1 dead" in text
    assert f"{'a' * 12}  alive  10.0.0.1:6380 (head)" in text
    assert "used/total: CPU 2/2" in text
    assert f"{'b' * 12}  DEAD   10.0.0.2:7000: no heartbeat for 5.2 s" in text
    assert "3 x {CPU: 1, big: 1} queued at node aaaaaaaaaaaa (no node has these resources)" in text
    assert "2 x {CPU: 1} queued at node aaaaaaaaaaaa (waiting for resources)" in text
    assert "actor Trainer 't' {GPU: 8} waiting for a node that fits" in text


def test_status_without_demand_says_none():
    status = {"nodes": [], "pending_actors": []}
    assert format_status("h:1", status).endswith("(none)")


SPILLING_STORE = {"capacity": 1 << 30, "used": 1 << 29, "num_objects": 3,
                  "spilled_bytes_total": 300 << 20, "spilled_objects_total": 3,
                  "spill_seconds": 0.25, "restored_bytes_total": 100 << 20,
                  "restored_objects_total": 1, "restore_seconds": 0.5,
                  "objects_on_disk": 2, "bytes_on_disk": 200 << 20}


def test_spilling_lines_say_what_went_to_disk_and_how_fast():
    assert format_spilling({"spilled_bytes_total": 0}) == []  # never spilled: nothing
    assert format_spilling(SPILLING_STORE) == [
        "Spilled 300 MiB, 3 objects, avg write throughput 1200 MiB/s",
        "Restored 100 MiB, 1 objects, avg read throughput 200 MiB/s",
        "On disk now: 200 MiB, 2 objects"]


def test_status_shows_each_nodes_spilling():
    status = {"nodes": [{"node_id": "a" * 28, "address": "h:1", "alive": True,
                         "resources_total": {"CPU": 1.0}, "resources_available": {},
                         "store": SPILLING_STORE}], "pending_actors": []}
    assert "      object store: Spilled 300 MiB, 3 objects" in format_status("h:1", status)
