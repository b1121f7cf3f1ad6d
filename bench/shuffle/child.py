"""One sample in a fresh subprocess: ``python -m bench.shuffle.child SPEC`` (SPEC:
JSON with system, total_bytes, partitions, store_bytes, timeout, runner_pid).

Runs the variant's module, then reports the :class:`Sample` (``@@shuffle`` line);
a failure of the run is reported in it (``error``), not raised.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback

from bench.child import tie_to_runner
from bench.shuffle.sample import Sample, emit
from bench.shuffle.variants import VARIANTS


def main() -> int:
    spec = json.loads(sys.argv[1])
    tie_to_runner(spec["runner_pid"])
    variant = VARIANTS[spec["system"]]
    sample = Sample(variant.name, spec["total_bytes"], spec["partitions"], spec["store_bytes"])
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.shuffle.{variant.module}")
        module.run(sample, spec["timeout"])
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        sample.error = f"{type(exc).__name__}: {exc}"[:600] + where
    sample.detail["wall_s"] = time.perf_counter() - started
    emit("result", sample=sample.as_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
