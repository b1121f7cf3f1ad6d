"""Tasks: nesting, dependencies, resources, errors, retries, cancellation, generators."""

from __future__ import annotations

import os
import re
import time
import uuid

import psutil
import pytest

import shoal
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.utils import is_alive, open_gate, wait_for_condition, wait_for_file

pytestmark = pytest.mark.timeout(60)

# The module's shared cluster: 2 CPUs and one unit of the custom resource "foo".
CLUSTER_INIT_KWARGS = {"num_cpus": 2, "resources": {"foo": 1}}

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- remote functions


@shoal.remote
def inc(x):
    return x + 1


@shoal.remote
def fan_out(n):
    return sum(shoal.get([inc.remote(i) for i in range(n)]))


@shoal.remote(num_cpus=1)
def recurse(depth):
    if depth == 0:
        return 0
    return 1 + shoal.get(recurse.remote(depth - 1))


@shoal.remote
def timed_work(duration):
    start = time.time()
    time.sleep(duration)  # simulated work, not synchronisation
    return start, time.time()


@shoal.remote
def announce_then_block(started_path, gate_path, value=None):
    with open(started_path, "w") as fh:
        fh.write("started")
    wait_for_file(gate_path)
    return value


@shoal.remote
def failing_function(message):
    raise ValueError(message)


@shoal.remote
def consume(value):
    return value


@shoal.remote
def crash_worker():
    os._exit(1)


@shoal.remote
def crash_on_first_attempt(marker_path):
    if not os.path.exists(marker_path):
        with open(marker_path, "w") as fh:
            fh.write("crashed once")
        os._exit(1)
    return "recovered"


@shoal.remote
def record_attempt_then_raise(attempts_path, exc_name, fail_times):
    """Append one line per attempt; raise ``exc_name`` for the first ``fail_times`` attempts."""
    with open(attempts_path, "a") as fh:
        fh.write("attempt\n")
    with open(attempts_path) as fh:
        attempt = len(fh.readlines())
    if attempt <= fail_times:
        raise {"ValueError": ValueError, "KeyError": KeyError}[exc_name](f"attempt {attempt}")
    return attempt


@shoal.remote
def loop_until_cancelled(started_path, seconds=30):
    with open(started_path, "w") as fh:
        fh.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "not cancelled"


@shoal.remote
def parent_of_long_child(started_path):
    return shoal.get(loop_until_cancelled.remote(started_path, 20))


@shoal.remote
def print_marker(marker):
    print(marker, flush=True)
    return marker


@shoal.remote
def node_of_task():
    return shoal.get_runtime_context().get_node_id()


def _max_overlap(intervals):
    """Largest number of (start, end) intervals that are open at the same instant."""
    events = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # ends sort before starts at equal times
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


# ---------------------------------------------------------------------------
# Tests with their own cluster (they kill processes or capture output).
# They come first: the module's shared cluster starts with the first test using it.
# ---------------------------------------------------------------------------


def test_worker_crash_without_retries_raises_worker_crashed_error(shutdown_only):
    shoal.init(num_cpus=2)
    with pytest.raises(shoal.exceptions.WorkerCrashedError):
        shoal.get(crash_worker.options(max_retries=0).remote(), timeout=30)
    # the cluster replaces the worker and keeps running tasks
    assert shoal.get(inc.remote(1), timeout=30) == 2


def test_worker_crash_is_retried_with_max_retries(shutdown_only, tmp_path):
    shoal.init(num_cpus=2)
    marker = tmp_path / "crashed"
    ref = crash_on_first_attempt.options(max_retries=2).remote(str(marker))
    assert shoal.get(ref, timeout=30) == "recovered"
    assert marker.exists()


def test_force_cancel_kills_running_task(shutdown_only, tmp_path):
    shoal.init(num_cpus=2)
    started = tmp_path / "started"
    ref = loop_until_cancelled.remote(str(started))
    wait_for_condition(lambda: started.exists() and started.read_text(), timeout=30)
    worker = psutil.Process(int(started.read_text()))
    shoal.cancel(ref, force=True)
    with pytest.raises((shoal.exceptions.TaskCancelledError, shoal.exceptions.WorkerCrashedError)):
        shoal.get(ref, timeout=15)
    wait_for_condition(lambda: not is_alive(worker), message="force-cancelled worker exits")
    assert shoal.get(inc.remote(1), timeout=30) == 2


def test_worker_print_output_reaches_driver_with_pid_prefix(shutdown_only, capfd):
    shoal.init(num_cpus=2)
    marker = f"shoal-print-marker-{uuid.uuid4().hex}"
    assert shoal.get(print_marker.remote(marker)) == marker
    pattern = re.compile(r"\((?:[^()\n]*\s)?pid=\d+[^()\n]*\)\s*" + re.escape(marker))
    seen = []

    def output_has_prefixed_marker():
        out, _ = capfd.readouterr()
        seen.append(out)
        return pattern.search(ANSI_ESCAPE.sub("", "".join(seen)))

    wait_for_condition(
        output_has_prefixed_marker,
        timeout=15,
        message=f"driver stdout should contain '(... pid=N ...) {marker}'",
    )


def test_a_short_get_of_borrowed_objects_keeps_the_cpu(shutdown_only):
    """A task reading blocks that exist (refs inside its argument: their owner
    says where) keeps its CPU: giving it back for a few milliseconds made the
    node start another worker for the next queued task, so more tasks ran at
    once than there are CPUs (design.md section 21)."""
    import numpy as np

    shoal.init(num_cpus=1)
    blocks = [shoal.put(np.full(200_000, i, dtype=np.uint8)) for i in range(20)]

    @shoal.remote
    def first_byte(boxed: list) -> tuple[int, int]:
        return int(shoal.get(boxed[0], timeout=30)[0]), os.getpid()

    got = shoal.get([first_byte.remote([b]) for b in blocks], timeout=60)
    assert [v for v, _ in got] == list(range(20))
    assert len({pid for _, pid in got}) == 1, got


# ---------------------------------------------------------------------------
# Tests sharing the module cluster.
# ---------------------------------------------------------------------------


def test_nested_tasks_submit_and_get_subtasks(shoal_cluster):
    assert shoal.get(fan_out.remote(5)) == sum(range(1, 6))


def test_deep_recursion_completes_because_blocked_workers_release_cpu(shoal_cluster):
    assert shoal.get(recurse.remote(6), timeout=50) == 6


def test_chain_of_dependent_tasks(shoal_cluster):
    assert shoal.get(inc.remote(inc.remote(inc.remote(1)))) == 4


def test_long_dependency_chain(shoal_cluster):
    ref = shoal.put(0)
    for _ in range(50):
        ref = inc.remote(ref)
    assert shoal.get(ref) == 50


def test_thousand_small_tasks_all_complete(shoal_cluster):
    refs = [inc.remote(i) for i in range(1000)]
    assert shoal.get(refs, timeout=50) == [i + 1 for i in range(1000)]


def test_cpu_limit_bounds_task_concurrency(shoal_cluster):
    refs = [timed_work.options(num_cpus=1).remote(0.4) for _ in range(6)]
    intervals = shoal.get(refs, timeout=50)
    overlap = _max_overlap(intervals)
    assert 1 <= overlap <= 2, f"{overlap} tasks ran at once on 2 CPUs: {intervals}"


def test_custom_resource_bounds_task_concurrency(shoal_cluster):
    refs = [timed_work.options(num_cpus=0, resources={"foo": 1}).remote(0.3) for _ in range(4)]
    intervals = shoal.get(refs, timeout=50)
    overlap = _max_overlap(intervals)
    assert overlap == 1, f"{overlap} tasks held foo=1 at once: {intervals}"


def test_infeasible_task_stays_pending_without_breaking_cluster(shoal_cluster):
    big = inc.options(num_cpus=64).remote(0)
    ready, not_ready = shoal.wait([big], timeout=1)
    assert ready == [] and not_ready == [big]
    assert shoal.get(inc.remote(10), timeout=30) == 11
    shoal.cancel(big)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(big, timeout=15)


def test_task_error_is_task_error_and_original_type(shoal_cluster):
    with pytest.raises(shoal.exceptions.TaskError) as excinfo:
        shoal.get(failing_function.remote("boom-7f3a"))
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert isinstance(err, shoal.exceptions.RayTaskError)
    text = str(err)
    assert "boom-7f3a" in text
    assert "failing_function" in text, f"remote traceback missing from: {text}"


def test_task_error_propagates_through_dependency(shoal_cluster):
    with pytest.raises(ValueError) as excinfo:
        shoal.get(consume.remote(consume.remote(failing_function.remote("chained-boom"))))
    assert isinstance(excinfo.value, shoal.exceptions.TaskError)
    assert "chained-boom" in str(excinfo.value)


def test_application_errors_are_not_retried_by_default(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    ref = record_attempt_then_raise.options(max_retries=3).remote(str(attempts), "ValueError", 1)
    with pytest.raises(ValueError):
        shoal.get(ref)
    assert attempts.read_text().count("attempt") == 1


def test_retry_exceptions_true_retries_application_errors(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    ref = record_attempt_then_raise.options(max_retries=3, retry_exceptions=True).remote(
        str(attempts), "ValueError", 1
    )
    assert shoal.get(ref) == 2
    assert attempts.read_text().count("attempt") == 2


def test_retry_exceptions_gives_up_after_max_retries(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    ref = record_attempt_then_raise.options(max_retries=2, retry_exceptions=True).remote(
        str(attempts), "ValueError", 10
    )
    with pytest.raises(ValueError):
        shoal.get(ref)
    assert attempts.read_text().count("attempt") == 3  # first try + 2 retries


def test_retry_exceptions_list_retries_listed_type(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    ref = record_attempt_then_raise.options(max_retries=3, retry_exceptions=[ValueError]).remote(
        str(attempts), "ValueError", 1
    )
    assert shoal.get(ref) == 2


def test_retry_exceptions_list_does_not_retry_other_types(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    ref = record_attempt_then_raise.options(max_retries=3, retry_exceptions=[ValueError]).remote(
        str(attempts), "KeyError", 1
    )
    with pytest.raises(KeyError):
        shoal.get(ref)
    assert attempts.read_text().count("attempt") == 1


def test_cancel_pending_task_raises_task_cancelled_error(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    started = [tmp_path / f"started-{i}" for i in range(2)]
    blockers = [
        announce_then_block.options(num_cpus=1).remote(str(started[i]), str(gate), i)
        for i in range(2)
    ]
    try:
        wait_for_condition(lambda: all(p.exists() for p in started), timeout=30)
        queued = inc.options(num_cpus=1).remote(1)
        ready, _ = shoal.wait([queued], timeout=0.5)
        assert ready == [], "task should be queued behind the two blockers holding both CPUs"
        shoal.cancel(queued)
        with pytest.raises(shoal.exceptions.TaskCancelledError):
            shoal.get(queued, timeout=15)
    finally:
        open_gate(gate)
    assert shoal.get(blockers, timeout=30) == [0, 1]


@shoal.remote
def worker_pid():
    return os.getpid()


def test_task_pipelined_behind_a_blocked_one_is_stolen_by_an_idle_worker(
    shoal_cluster, tmp_path
):
    """Both tasks are submitted at once, so the owner may pipeline the second to the
    first worker; it must not wait there while the second leased worker is idle."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    blocker = announce_then_block.remote(str(started), str(gate), os.getpid())
    quick = worker_pid.remote()
    try:
        quick_pid = shoal.get(quick, timeout=30)
        assert not gate.exists()
        wait_for_condition(started.exists, timeout=30)
    finally:
        open_gate(gate)
    assert shoal.get(blocker, timeout=30) == os.getpid()
    assert quick_pid != os.getpid()


def test_many_pipelined_tasks_of_mixed_duration_all_complete(shoal_cluster):
    refs = [timed_work.remote(0.05 if i % 50 == 0 else 0) for i in range(400)]
    results = shoal.get(refs, timeout=60)
    assert len(results) == 400 and all(end >= start for start, end in results)


def test_cancel_running_task_raises_task_cancelled_error(shoal_cluster, tmp_path):
    started = tmp_path / "started"
    ref = loop_until_cancelled.remote(str(started))
    wait_for_condition(started.exists, timeout=30)
    start = time.monotonic()
    shoal.cancel(ref)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=10)
    assert time.monotonic() - start < 10


def test_cancel_recursive_cancels_parent_and_child(shoal_cluster, tmp_path):
    started = tmp_path / "child-started"
    parent = parent_of_long_child.remote(str(started))
    wait_for_condition(started.exists, timeout=30)
    shoal.cancel(parent, recursive=True)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(parent, timeout=10)
    # the child was cancelled too, so both CPUs become free well before its 20 s loop ends
    wait_for_condition(
        lambda: shoal.available_resources().get("CPU", 0) == 2,
        timeout=10,
        message="all CPUs free after recursive cancel",
    )


def test_cancel_finished_task_is_a_no_op(shoal_cluster):
    ref = inc.remote(1)
    assert shoal.get(ref) == 2
    shoal.cancel(ref)
    assert shoal.get(ref) == 2


def test_streaming_generator_yields_refs_in_order(shoal_cluster):
    @shoal.remote(num_returns="streaming")
    def squares(n):
        for i in range(n):
            yield i * i

    refs = list(squares.remote(5))
    assert all(isinstance(r, shoal.ObjectRef) for r in refs)
    assert [shoal.get(r) for r in refs] == [0, 1, 4, 9, 16]


def test_streaming_generator_via_options(shoal_cluster):
    @shoal.remote
    def letters(word):
        for letter in word:  # noqa: UP028 - plain loop: Ray calls .send() through `yield from`
            yield letter

    gen = letters.options(num_returns="streaming").remote("shoal")
    assert [shoal.get(ref) for ref in gen] == list("shoal")


def test_streaming_generator_error_surfaces_after_yielded_values(shoal_cluster):
    @shoal.remote(num_returns="streaming")
    def two_then_fail():
        yield 1
        yield 2
        raise ValueError("generator-broke")

    gen = two_then_fail.remote()
    values = []
    with pytest.raises(ValueError) as excinfo:
        for ref in gen:
            values.append(shoal.get(ref))
    assert values == [1, 2]
    assert "generator-broke" in str(excinfo.value)


def test_dynamic_generator_returns_iterable_of_refs(shoal_cluster):
    @shoal.remote(num_returns="dynamic")
    def countdown(n):
        yield from range(n, 0, -1)

    refs = list(shoal.get(countdown.remote(4)))
    assert len(refs) == 4
    assert all(isinstance(r, shoal.ObjectRef) for r in refs)
    assert shoal.get(refs) == [4, 3, 2, 1]


def test_spread_scheduling_strategy_runs_tasks(shoal_cluster):
    refs = [inc.options(scheduling_strategy="SPREAD").remote(i) for i in range(4)]
    assert shoal.get(refs) == [1, 2, 3, 4]


def test_node_affinity_scheduling_strategy_runs_on_requested_node(shoal_cluster):
    node_id = shoal.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    assert shoal.get(node_of_task.options(scheduling_strategy=strategy).remote()) == node_id
