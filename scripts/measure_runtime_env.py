"""Runtime environment costs for docs/design.md ("Runtime environments").

    python scripts/measure_runtime_env.py [--runs 5]

For each kind of env, the time of one trivial task as the driver sees it
(``get(f.options(runtime_env=env).remote())``):
* first: a new node cache (nothing unpacked or built), new driver;
* cached: a new driver (so a new worker process) on the cache the first run made;
* reused: the same driver again (an idle worker of that env is reused).
Baseline: the same task with no env.  Median over the runs.  Not part of the suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

CHILD = r"""
import json, os, sys, time
import shoal
env = json.loads(sys.argv[1])
shoal.init(num_cpus=1)
@shoal.remote
def f():
    return os.getpid()
shoal.get(f.remote())  # the default worker is up: what follows is the env's cost
def timed(opts):
    t0 = time.perf_counter()
    shoal.get(f.options(**opts).remote())
    return time.perf_counter() - t0
first = timed({"runtime_env": env})
again = timed({"runtime_env": env})
base = timed({})
print(json.dumps([first, again, base]))
shoal.shutdown()
"""


def run(env: dict, cache: str) -> list[float]:
    import json

    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(env)], capture_output=True,
                         text=True, env={**os.environ, "SHOAL_RUNTIME_RESOURCES": cache},
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_inputs(root: str) -> dict[str, dict]:
    work = os.path.join(root, "work")
    os.makedirs(os.path.join(work, "pkg"))
    for i in range(50):
        with open(os.path.join(work, "pkg", f"m{i}.py"), "w") as f:
            f.write("X = 1\n" * 200)
    wheel = os.path.join(root, "tinymeasure-1.0-py3-none-any.whl")
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("tinymeasure/__init__.py", "X = 1\n")
        z.writestr("tinymeasure-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: tinymeasure\nVersion: 1.0\n")
        z.writestr("tinymeasure-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("tinymeasure-1.0.dist-info/RECORD", "")
    return {"env_vars": {"env_vars": {"A": "1"}},
            "working_dir (50 files, 0.5 MB)": {"working_dir": work},
            "pip (one local wheel)": {"pip": [wheel]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for name, env in make_inputs(root).items():
            firsts, cached, reused, base = [], [], [], []
            for i in range(args.runs):
                cache = os.path.join(root, f"cache-{name[:3]}-{i}")
                first, again, b = run(env, cache)
                firsts.append(first)
                reused.append(again)
                base.append(b)
                cached.append(run(env, cache)[0])
            med = statistics.median
            print(f"{name:32s} first {med(firsts) * 1000:7.0f} ms  "
                  f"cached {med(cached) * 1000:6.0f} ms  reused {med(reused) * 1000:5.1f} ms"
                  f"  (no env {med(base) * 1000:4.1f} ms)")


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"({time.time() - t:.0f} s)")
