"""Cold start: a fresh process runs init() and gets its first task result.

Each sample is a new interpreter (imports included), as a user would see it.
Prints the median per system and shoal's ratio.  Usage:
    python bench/cold_start.py [--runs 5]
``python -m bench`` reports the same measurement as its "cold start" row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys

SCRIPT = """
import time
t0 = time.perf_counter()
import {mod} as ray
ray.init(num_cpus=2{extra})
@ray.remote
def f(x):
    return x + 1
assert ray.get(f.remote(1)) == 2
t1 = time.perf_counter()
ray.shutdown()
print("RESULT", t1 - t0)
"""

DASK_SCRIPT = """
import time
t0 = time.perf_counter()
from distributed import Client, LocalCluster
def f(x):
    return x + 1
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
client = Client(cluster)
assert client.submit(f, 1).result() == 2
t1 = time.perf_counter()
client.close()
cluster.close()
print("RESULT", t1 - t0)
"""


def sample(mod: str, timeout: float = 300) -> float:
    extra = ", include_dashboard=False" if mod == "ray" else ""
    script = DASK_SCRIPT if mod == "dask" else SCRIPT.format(mod=mod, extra=extra)
    out = subprocess.run([sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=timeout)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return float(line.split()[1])
    raise RuntimeError(f"{mod} run failed:\n{out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    systems = ["shoal"] + [m for m in ("ray", "dask") if importlib.util.find_spec(m)]
    samples: dict[str, list[float]] = {s: [] for s in systems}
    for _ in range(args.runs):  # interleaved
        for system in systems:
            samples[system].append(sample(system))
    medians = {s: statistics.median(v) for s, v in samples.items()}
    for system, value in medians.items():
        print(f"{system:6s} init -> first result: median {value:.3f} s  "
              f"(runs: {', '.join(f'{x:.2f}' for x in samples[system])})")
    for other in systems[1:]:
        print(f"{other}/shoal: {medians[other] / medians['shoal']:.1f}x faster cold start")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cold_start_s": medians, "samples": samples}, f, indent=2)


if __name__ == "__main__":
    main()
