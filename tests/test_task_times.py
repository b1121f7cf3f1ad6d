"""Task records carry the executing worker's own start and end times (stamped
in the worker, sent in its reply; a running task's start from the worker's
state snapshot), not the owner's push time: a task queued behind another at
the same worker shows when it really ran, in the state API and the timeline."""

from __future__ import annotations

import json
import time

import shoal
from shoal.util.state import list_tasks
from tests.utils import open_gate, wait_for_condition, wait_for_file

SLACK_S = 0.05  # the worker stamps before reading arguments / after storing returns


@shoal.remote
def stamped(seconds: float, gate: str | None = None) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    if gate:
        wait_for_file(gate)
    return start, time.time()


def _records(state: str | None = None) -> list:
    filters = [("name", "=", "stamped")] + ([("state", "=", state)] if state else [])
    return list_tasks(filters=filters, detail=True, limit=None, timeout=30)


def _ran(records: list, start: float, end: float) -> list:
    """The records whose start and end are the worker's ``start`` and ``end``."""
    return [t for t in records if t.start_time_ms and abs(t.start_time_ms / 1000 - start)
            < SLACK_S and abs(t.end_time_ms / 1000 - end) < SLACK_S]


def test_a_queued_task_shows_when_its_worker_really_ran_it(shutdown_only, tmp_path):
    shoal.init(num_cpus=1, include_dashboard=False)
    gate = tmp_path / "open"
    # learned as short, so the owner queues several in its one worker (pipelining)
    shoal.get([stamped.remote(0) for _ in range(5)], timeout=30)
    first = stamped.remote(0.5)
    second = stamped.remote(0, str(gate))  # sent at once, queued behind first
    s1, e1 = shoal.get(first, timeout=30)
    [running] = wait_for_condition(lambda: _records("RUNNING"), timeout=30)
    assert running.start_time_ms / 1000 >= e1 - SLACK_S, (running.start_time_ms, s1, e1)
    open_gate(gate)
    s2, e2 = shoal.get(second, timeout=30)
    [done] = wait_for_condition(lambda: _ran(_records("FINISHED"), s2, e2), timeout=30,
                                message="the second task's record has its worker's times")
    assert len(_ran(_records("FINISHED"), s1, e1)) == 1  # and the first

    path = tmp_path / "trace.json"
    shoal.timeline(filename=str(path))
    spans = [e for e in json.loads(path.read_text()) if e.get("ph") == "X"
             and e["args"]["task_id"] == done.task_id]
    assert len(spans) == 1 and abs(spans[0]["ts"] / 1e6 - s2) < SLACK_S
    assert abs(spans[0]["dur"] / 1e6 - (e2 - s2)) < 0.01
