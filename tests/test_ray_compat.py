"""Programs written for Ray run unchanged under ``import shoal as ray``.

Each program in ``tests/compat_programs`` takes the module name to import as
``ray`` (they were checked to print the same under Ray 2.60).  The expected
values are computed here from the programs' own logic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

PROGRAMS = os.path.join(os.path.dirname(__file__), "compat_programs")


def run_program(name: str) -> str:
    out = subprocess.run(
        [sys.executable, os.path.join(PROGRAMS, f"{name}.py"), "shoal"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line in output:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return lines[-1].split(" ", 1)[1]


@pytest.mark.timeout(150)
def test_parameter_server_program():
    # p <- p - 0.1 * 4 * (p - 1) five times from 0, over 10 parameters
    p = 0.0
    for _ in range(5):
        p = p - 0.1 * 4 * (p - 1)
    assert float(run_program("parameter_server")) == pytest.approx(10 * p, abs=1e-6)


@pytest.mark.timeout(150)
def test_map_reduce_program():
    text = ["the quick brown fox", "jumps over the lazy dog", "the end"] * 20
    total = Counter(w for line in text for w in line.split())
    lows = sum(1 for line in text for w in line.split() if w < "m")
    the, count, nested, kind = run_program("map_reduce").split()
    assert int(the) == total["the"]
    assert int(count) == sum(total.values())
    assert int(nested) == lows
    assert kind == "task-error"


@pytest.mark.timeout(150)
def test_actor_pipeline_program():
    result = json.loads(run_program("pipeline"))
    assert result["chain"] == [i * 2 * 10 for i in range(5)]
    assert result["pooled"] == [3 * i for i in range(6)]
    assert result["streamed"] == [i * i for i in range(5)]
    assert result["cancelled"] is True
