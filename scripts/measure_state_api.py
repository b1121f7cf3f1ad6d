"""State API cost for docs/design.md ("State API and ``shoal memory``").

    python scripts/measure_state_api.py [--objects 10000] [--actor-objects M] [--runs 5]

On a local cluster (``shoal.init(num_cpus=2)``) whose driver holds N live refs
(small ``put`` values, inline) and one actor holds M more (default N), measures
(median of the runs):
* the LIST_STATE round trip alone (control store -> agent -> core workers and
  back, with msgpack both ways): ``fetch_state(["objects"])``;
* ``list_objects(limit=None)``: the above plus the merge into records;
* ``memory_summary()``: the above plus the text;
* one core worker's snapshot built in-process (``object_rows``) for N refs;
* ``TaskHistory.finished`` per task (the only cost on the task path).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import shoal
from shoal.core import context, state_records
from shoal.core.task_manager import PendingTask
from shoal.core.task_spec import TaskKind, TaskSpec
from shoal.launch.state_client import fetch_state
from shoal.util import memory_summary
from shoal.util.state import list_objects


def median_ms(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def history_cost_us() -> float:
    spec = TaskSpec(task_id=b"t" * 16, kind=TaskKind.NORMAL, name="f", function_id=b"f",
                    args=[], kwarg_names=[], num_returns=1, owner="a", job_id="j",
                    resources={"CPU": 1.0})
    task = PendingTask(spec=spec, return_ids=[], held=[], retries_left=0,
                       retry_exceptions=False)
    history = state_records.TaskHistory(1000)
    n = 200_000
    return timeit.timeit(lambda: history.finished(task, ""), number=n) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--actor-objects", type=int, default=None,
                   help="refs an actor holds as well (default: as many as the driver)")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    n = args.objects
    m = n if args.actor_objects is None else args.actor_objects
    shoal.init(num_cpus=2)

    @shoal.remote
    class Holder:
        def __init__(self, n):
            self.refs = [shoal.put(i) for i in range(n)]

        def ready(self):
            return len(self.refs)

    refs = [shoal.put(i) for i in range(n)]
    holder = Holder.remote(m)
    assert shoal.get(holder.ready.remote(), timeout=120) == m
    worker = context.current_worker_or_none()

    total = len(list_objects(limit=None))
    print(f"{total} object records ({n} in the driver, {m} in an actor)")
    for label, fn in [
        ("LIST_STATE round trip (fetch_state)", lambda: fetch_state(["objects"])),
        ("list_objects() (default limit=100)", list_objects),
        ("list_objects(limit=None)", lambda: list_objects(limit=None)),
        ("memory_summary()", memory_summary),
    ]:
        med, times = median_ms(fn, args.runs)
        print(f"{label}: median {med:.1f} ms  ({', '.join(f'{t:.0f}' for t in times)})")
    if worker is not None:
        rows = lambda: state_records.object_rows(  # noqa: E731
            worker.references.refs, worker.value_table.values, lambda t: None)
        med, _ = median_ms(rows, args.runs)
        print(f"object_rows for the driver's {len(worker.references.refs)} refs "
              f"(in-process): {med:.1f} ms")
    print(f"TaskHistory.finished: {history_cost_us():.2f} us per task")
    del refs, holder
    shoal.shutdown()


if __name__ == "__main__":
    main()
