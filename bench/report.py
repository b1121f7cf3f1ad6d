"""Collecting samples, the printed table and the ``--json`` file."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys

import psutil

from bench.registry import HIGHER_IS_BETTER, Row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("shoal", "ray", "dask", "distributed", "numpy", "psutil", "cloudpickle", "msgpack",
            "uvloop")


class Results:
    """samples and errors per (metric, system)."""

    def __init__(self):
        self.data: dict[str, dict[str, dict[str, list]]] = {}

    def _slot(self, metric: str, system: str) -> dict[str, list]:
        return self.data.setdefault(metric, {}).setdefault(system, {"samples": [], "errors": []})

    def add(self, r: Row, system: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            self._slot(metric, system)["samples"].append(value)

    def error(self, r: Row, system: str, message: str) -> None:
        for metric, _ in r.metrics:
            self._slot(metric, system)["errors"].append(message)

    def get(self, metric: str, system: str) -> dict[str, list]:
        return self.data.get(metric, {}).get(system, {"samples": [], "errors": []})

    def median(self, metric: str, system: str) -> float | None:
        samples = self.get(metric, system)["samples"]
        return statistics.median(samples) if samples else None


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(shoal: float | None, other: float | None, unit: str) -> str:
    if not shoal or not other:
        return ""
    r = shoal / other if unit in HIGHER_IS_BETTER else other / shoal
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def progress(label: str, system: str, r: Row, values: dict[str, float]) -> None:
    units = dict(r.metrics)
    shown = ", ".join(f"{fmt(v)} {units.get(m, '')}" + (f" ({m[len(r.name) + 2:]})"
                                                        if m != r.name else "")
                      for m, v in values.items())
    print(f"[{label}] {system:5s} {r.name}: {shown}", file=sys.stderr, flush=True)


def cell(results: Results, r: Row, metric: str, system: str) -> str:
    if system in r.na:
        return "n/a"
    slot = results.get(metric, system)
    if slot["samples"]:
        return fmt(statistics.median(slot["samples"])) + ("*" if slot["errors"] else "")
    return "error" if slot["errors"] else "-"


def print_table(rows: list[Row], systems: list[str], results: Results, notes: list[str],
                args, elapsed: float) -> None:
    others = [s for s in systems if s != "shoal"] if "shoal" in systems else []
    header = ["row", "unit", *systems, *(f"shoal/{o}" for o in others)]
    lines, last_group = [], None
    for r in rows:
        if last_group is not None and r.group != last_group:
            lines.append(None)  # separator between groups
        last_group = r.group
        for metric, unit in r.metrics:
            medians = {s: None if s in r.na else results.median(metric, s) for s in systems}
            lines.append([metric, unit, *(cell(results, r, metric, s) for s in systems),
                          *(ratio(medians.get("shoal"), medians[o], unit) for o in others)])
    widths = [max(len(str(x[i])) for x in [header] + [ln for ln in lines if ln])
              for i in range(len(header))]

    def render(values):
        first = f"{values[0]:<{widths[0]}}  {values[1]:<{widths[1]}}"
        return first + "".join(f"  {v:>{w}}" for v, w in zip(values[2:], widths[2:], strict=True))

    info = machine_info()
    rule = "-" * len(render(header))
    print()
    print(f"shoal benchmark: median of up to {args.repeat or (3 if args.quick else 5)} samples per "
          f"system{' (--quick)' if args.quick else ''}; each system in its own fresh "
          f"subprocess, num_cpus=2")
    print(f"machine: {info['cpu_count']} CPUs, {info['memory_bytes'] / 2**30:.0f} GiB, "
          f"Python {info['python']}; shoal commit {info['git_commit'][:12]}"
          f"{' (dirty tree)' if info['git_dirty'] else ''}")
    if others:
        print("ratio > 1 means shoal is better: shoal/other for rates (per second, GB/s), "
              "other/shoal for s, MB and KB")
    print(rule)
    print(render(header))
    print(rule)
    for ln in lines:
        print(render(ln) if ln else "")
    print(rule)
    print("n/a: no equivalent in that system; *: median of the samples that succeeded; "
          "-: not run")
    na = sorted({f"{s}: {r.name}: {why}" for r in rows for s, why in r.na.items() if s in systems})
    errors = sorted({f"{s}: {r.name}: {msg}" for r in rows for s in systems
                     for msg in results.get(r.metrics[0][0], s)["errors"]})
    for title, items in (("n/a", na), ("errors", errors), ("notes", notes)):
        if items:
            print(f"{title}:")
            for item in items:
                print(f"  {item}")
    print(f"elapsed: {elapsed:.0f} s")


def _git(*argv: str) -> str:
    try:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
    }


def write_json(path: str, rows: list[Row], systems: list[str], results: Results, args,
               elapsed: float, log_dir: str, interpreters: dict | None = None) -> None:
    out: dict = {}
    for r in rows:
        for metric, unit in r.metrics:
            out[metric] = {}
            for s in systems:
                slot = results.get(metric, s)
                entry = {"median": None if s in r.na else results.median(metric, s),
                         "samples": slot["samples"], "unit": unit}
                if slot["errors"]:
                    entry["errors"] = slot["errors"]
                if s in r.na:
                    entry["na"] = r.na[s]
                out[metric][s] = entry
    out["_meta"] = {**machine_info(), "argv": sys.argv[1:], "quick": args.quick,
                    "repeat": args.repeat or (3 if args.quick else 5), "systems": systems,
                    "elapsed_s": elapsed, "log_dir": log_dir,
                    "interpreters": interpreters or {},
                    "ratio": "ratio > 1 means shoal is better"}
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
