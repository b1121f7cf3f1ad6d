"""One system's fresh subprocess: start its cluster, run some rows, stop the cluster.

Run by the runner as ``python -m bench.child SPEC`` (SPEC: JSON with system, rows,
quick).  Talks to the runner through stdout lines starting with ``@@bench ``;
anything else on stdout or stderr is the systems' own output (kept in a log).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback

from bench import adapters
from bench.registry import Ctx, all_rows

PREFIX = "@@bench "


def emit(**event) -> None:
    sys.stdout.write(PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def describe(exc: BaseException) -> str:
    traceback.print_exc(file=sys.stderr)  # the full traceback goes to the log
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}"[:600] + where


def tie_to_runner(runner_pid: int) -> None:
    """Stop cleanly (shutdown in ``finally``) on SIGTERM, also sent when the runner dies."""

    def stop(signum, frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != runner_pid:  # the runner died before the line above
        raise SystemExit("runner gone")


def main() -> int:
    spec = json.loads(sys.argv[1])
    tie_to_runner(spec["runner_pid"])
    system = spec["system"]
    by_name = {r.name: r for r in all_rows()}
    rows = [by_name[name] for name in spec["rows"]]
    api = None
    try:
        if any(r.cluster for r in rows):
            api = adapters.make(system)
            adapters.set_current(api)
            try:
                api.init()
            except Exception as exc:
                emit(event="init_error", error=describe(exc))
                return 1
        emit(event="ready")
        ctx = Ctx(system, spec["quick"], time.perf_counter())
        for r in rows:
            emit(event="start", row=r.name)
            try:
                value = r.fn(api, ctx)
            except Exception as exc:
                emit(event="error", row=r.name, error=describe(exc))
                continue
            values = value if isinstance(value, dict) else {r.name: value}
            emit(event="result", row=r.name, values=values)
    finally:
        if api is not None:
            started = time.perf_counter()
            try:
                api.shutdown()
            except Exception as exc:
                emit(event="shutdown_error", error=describe(exc))
            emit(event="shutdown", seconds=time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
