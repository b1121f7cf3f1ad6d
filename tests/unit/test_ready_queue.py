"""The order in which a scheduling key's ready tasks are pushed, and how many
tasks of a function are queued in one leased worker (lease_submitter)."""

from __future__ import annotations

from types import SimpleNamespace

from shoal.core.lease_dispatch import PipelineDepth, ReadyQueue


def _task(name: str, depth: int = 0):
    return SimpleNamespace(name=name, depth=depth, queue_seq=-1)


def _drain(queue: ReadyQueue) -> list[str]:
    out = []
    while len(queue):
        out.append(queue.popleft().name)
    return out


def test_tasks_ready_at_submission_keep_their_order():
    queue = ReadyQueue()
    for name in "abcd":
        queue.append(_task(name))
    assert _drain(queue) == list("abcd")


def test_dependents_go_first_deepest_first_and_fifo_within_a_depth():
    queue = ReadyQueue()
    queue.append(_task("map1"))
    queue.append(_task("reduce1", 1))
    queue.append(_task("map2"))
    queue.append(_task("reduce2", 1))
    queue.append(_task("validate1", 2))
    assert queue.peek().name == "validate1"
    assert _drain(queue) == ["validate1", "reduce1", "reduce2", "map1", "map2"]


def test_a_stolen_task_goes_back_to_its_place():
    queue = ReadyQueue()
    first, second, third = _task("r1", 1), _task("r2", 1), _task("r3", 1)
    for task in (first, second, third):
        queue.append(task)
    assert queue.popleft() is first
    queue.append(_task("m"))
    queue.appendleft(first)  # stolen back from a worker
    assert _drain(queue) == ["r1", "r2", "r3", "m"]
    plain = [_task("x"), _task("y")]
    for task in plain:
        queue.append(task)
    taken = queue.popleft()
    queue.appendleft(taken)
    assert _drain(queue) == ["x", "y"]


def test_remove_and_membership():
    queue = ReadyQueue()
    dep, plain, absent = _task("d", 3), _task("p"), _task("z", 1)
    queue.append(dep)
    queue.append(plain)
    assert dep in queue and plain in queue and absent not in queue
    queue.remove(dep)
    assert dep not in queue and len(queue) == 1
    queue.remove(plain)
    assert len(queue) == 0


def test_pipeline_depth_is_one_until_a_function_is_seen_then_covers_the_window():
    depth = PipelineDepth(window_s=0.01, most=8)
    assert depth.depth(b"f") == 1
    depth.record(b"f", 0.0001)  # a no-op task: pipeline fully
    assert depth.depth(b"f") == 8
    depth.record(b"g", 0.004)  # 4 ms: two fit in the window
    assert depth.depth(b"g") == 2
    depth.record(b"h", 0.5)  # a long task: one at a time
    assert depth.depth(b"h") == 1


def test_pipeline_depth_follows_a_function_that_becomes_slow():
    depth = PipelineDepth(window_s=0.01, most=8)
    depth.record(b"f", 0.0001)
    for _ in range(12):
        depth.record(b"f", 0.2)
    assert depth.depth(b"f") == 1
