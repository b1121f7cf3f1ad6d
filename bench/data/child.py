"""One sample: ``python -m bench.data.child SPEC`` under the system's own
interpreter starts the system's local cluster, runs one workload, stops the
cluster and prints ``@@result {json}``.  The runner measures memory from
outside."""

from __future__ import annotations

import json
import sys
import traceback

from bench.data import workloads


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        result = workloads.run(spec["system"], spec["workload"], spec["src"], spec["out"],
                               spec["store_bytes"])
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    sys.stdout.write("@@result " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
