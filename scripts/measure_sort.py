"""Measure the Exoshuffle sort (docs/design.md, "Exoshuffle").

    python scripts/measure_sort.py --total 1GB --partitions 16 --runs 3
    python scripts/measure_sort.py --total 1GB --partitions 16 --ideal

Each run starts a fresh ``shoal.init()``, sorts once to start the workers,
then generates the records in tasks, sorts with one strategy (``shoal sort``'s
code) and validates.  Reported per strategy: the median sort time and GB/s,
each run's time, and the machine's 1-minute load average before each run
(other work on this shared machine takes CPUs from the run).

``--ideal`` runs the same map and reduce kernels in this one process, no
cluster, no merges: the machine's compute limit for one core (the cluster's
limit is that times the number of cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import shoal
from shoal.shuffle import kernels
from shoal.shuffle.gensort import make_records
from shoal.shuffle.partitioning import boundaries_from_samples
from shoal.shuffle.sort_bench import SortConfig, parse_size, run


def one_run(config: SortConfig, cpus: int) -> tuple[float, float]:
    """(sort seconds, load average before the run)."""
    shoal.init(num_cpus=cpus)
    try:
        run(config)  # warm the workers and the store once (not measured)
        load = os.getloadavg()[0]
        report = run(config)
    finally:
        shoal.shutdown()
    assert report.verdict.ok, report.verdict.problems
    return report.sort_s, load


def ideal(total: int, partitions: int) -> float:
    """Seconds for one process to map and reduce ``total`` bytes (inputs made first)."""
    per = total // 100 // partitions
    inputs = [make_records(i * per, per, 0) for i in range(partitions)]
    bounds = boundaries_from_samples([], partitions)
    start = time.perf_counter()
    columns: list[list] = [[] for _ in range(partitions)]
    for records in inputs:
        for r, block in enumerate(kernels.sort_map(records, partitions, bounds)):
            columns[r].append(block)
    del inputs
    for r in range(partitions):
        kernels.sort_reduce(*columns[r])
        columns[r] = []
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--total", default="1GB")
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--strategies", default="simple,premerge,push")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--ideal", action="store_true")
    args = p.parse_args()
    total = parse_size(args.total)
    gb = total / 1e9
    if args.ideal:
        times = sorted(ideal(total, args.partitions) for _ in range(args.runs))
        best, median = times[0], statistics.median(times)
        print(f"numpy ideal, one process: {median:.2f} s median ({gb / median:.3f} GB/s), "
              f"best {best:.2f} s; on {args.cpus} cores: {gb / median * args.cpus:.3f} GB/s")
        return
    print(f"| strategy | {gb:g} GB, {args.partitions}x{args.partitions}: sort s (median of "
          f"{args.runs}) | GB/s | runs (s) | load before |")
    print("|---|---|---|---|---|")
    for strategy in args.strategies.split(","):
        config = SortConfig(total, args.partitions, strategy=strategy, progress=False)
        results = [one_run(config, args.cpus) for _ in range(args.runs)]
        seconds = [s for s, _ in results]
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        loads = ", ".join(f"{load:.1f}" for _, load in results)
        print(f"| {strategy} | {median:.2f} | {gb / median:.3f} | {runs} | {loads} |",
              flush=True)


if __name__ == "__main__":
    main()
