"""Medians, ratios, the printed tables and the ``--json`` file of bench.shuffle.

Ratios are shoal/peer with "> 1 means shoal is better": the peer's sort time over
shoal's.  For the one-process numpy rows the peer is the 2-core ideal (half the
one-core time), so the ratio is the fraction of the machine's compute limit that
shoal reaches.
"""

from __future__ import annotations

import json
import statistics
import sys

from bench import report as bench_report
from bench.shuffle.variants import LIBRARY, VARIANTS

GB = 1e9
IDEAL_CORES = 2  # the one-process rows stand for this many cores' ideal
RATIO_OF = [*LIBRARY, "shoal-core"]


def progress(label: str, outcome: dict) -> None:
    s = outcome["sample"]
    if outcome["ok"]:
        mem = outcome.get("memory_sort") or {}
        spilled = s.get("spilled_bytes")
        restored = (s.get("detail") or {}).get("restored_bytes")
        print(f"[{label}] sort {s['sort_s']:.2f} s ({s['gb_per_s']:.3f} GB/s, "
              f"{mem.get('cpu_s', 0):.1f} CPU s, load {outcome.get('load_before', 0):.1f}), "
              f"validated; "
              f"peak PSS {mem.get('pss', 0) / GB:.2f} GB"
              + (f", spilled {spilled / GB:.2f} GB" if spilled else "")
              + (f", restored {restored / GB:.2f} GB" if restored else ""),
              file=sys.stderr, flush=True)
    else:
        why = s.get("error") or "INVALID: " + "; ".join(s.get("problems", []))
        print(f"[{label}] FAILED: {why}", file=sys.stderr, flush=True)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(samples: list[dict], sizes, systems: list[str]) -> dict:
    """{size label: {system: medians, errors, ratios}}."""
    out: dict = {}
    for size in sizes:
        table: dict = {}
        for system in systems:
            mine = [o for o in samples if o["size"] == size.label and o["system"] == system]
            good = [o for o in mine if o["ok"]]
            errors = [o["sample"].get("error") or "INVALID: "
                      + "; ".join(o["sample"].get("problems", [])) for o in mine if not o["ok"]]
            seconds = _median([o["sample"]["sort_s"] for o in good])
            table[system] = {
                "samples": len(mine), "ok": len(good), "errors": errors,
                "sort_s": seconds, "sort_s_all": [o["sample"]["sort_s"] for o in good],
                "gb_per_s": size.total_bytes / GB / seconds if seconds else None,
                "peak_pss_sort": _median([(o["memory_sort"] or {}).get("pss") for o in good]),
                "peak_pss_sample": _median([(o["memory_sample"] or {}).get("pss")
                                            for o in good]),
                "cpu_s_sort": _median([(o["memory_sort"] or {}).get("cpu_s") for o in good]),
                "load_before": _median([o.get("load_before") for o in mine]),
                "peak_rss_sort": _median([(o["memory_sort"] or {}).get("rss") for o in good]),
                "peak_shm_sort": _median([(o["memory_sort"] or {}).get("shm") for o in good]),
                "spilled_sort": _median([o["sample"].get("spilled_bytes") for o in good]),
                "spilled_total": _median([o["sample"].get("spilled_total") for o in good]),
            }
        for system, row in table.items():
            if not VARIANTS[system].peer or row["sort_s"] is None:
                continue
            peer_s = row["sort_s"] / IDEAL_CORES if system.startswith("numpy") else row["sort_s"]
            row["ratios"] = {f"{s}/{system}": peer_s / table[s]["sort_s"]
                             for s in RATIO_OF if table.get(s, {}).get("sort_s")}
        out[size.label] = table
    return out


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def print_tables(summary: dict, sizes, systems: list[str], notes: list[str], args,
                 elapsed: float) -> None:
    info = bench_report.machine_info()
    print()
    print(f"bench.shuffle: sort phase only (inputs generated in tasks and stored first), "
          f"median of up to {args.repeat}; each sample in a fresh subprocess, 2 CPUs")
    print(f"machine: {info['cpu_count']} CPUs, {info['memory_bytes'] / 2**30:.0f} GiB; shoal "
          f"commit {info['git_commit'][:12]}{' (dirty tree)' if info['git_dirty'] else ''}")
    print("cpu s: CPU seconds of all the system's processes during the sort (robust to other "
          "load); load: 1-minute load average before the sample")
    print("peak mem: sum of PSS over the system's processes during the sort; spilled: during "
          "the sort; ratios: peer time / shoal time (> 1: shoal better); numpy rows: one core, "
          "ratios against the 2-core ideal (half its time)")
    ratio_heads = [f"{s.removeprefix('shoal-')}/x" for s in RATIO_OF]
    head = ["system", "sort s", "GB/s", "cpu s", "load", "peak mem GB", "shm GB", "spilled GB",
            "ok", *ratio_heads]
    for size in sizes:
        table = summary[size.label]
        rows = []
        for system in systems:
            r = table[system]
            ratios = r.get("ratios", {})
            rows.append([system, _fmt(r["sort_s"]), _fmt(r["gb_per_s"], digits=3),
                         _fmt(r["cpu_s_sort"]), _fmt(r["load_before"], digits=1),
                         _fmt(r["peak_pss_sort"], GB), _fmt(r["peak_shm_sort"], GB),
                         _fmt(r["spilled_sort"], GB), f"{r['ok']}/{r['samples']}",
                         *(_fmt(ratios.get(f"{s}/{system}")) for s in RATIO_OF)])
        widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
        print()
        print(f"== {size.describe()}")
        print("  ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
                        for i, (h, w) in enumerate(zip(head, widths, strict=True))))
        for row in rows:
            print("  ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}"
                            for i, (v, w) in enumerate(zip(row, widths, strict=True))))
        for system in systems:
            for error in sorted(set(table[system]["errors"])):
                print(f"  {system}: {error}")
    for note in notes:
        print(f"note: {note}")
    print(f"elapsed: {elapsed:.0f} s")


def write_json(path: str, samples: list[dict], summary: dict, args, elapsed: float,
               log_dir: str, interpreters: dict) -> None:
    out = {"summary": summary, "samples": samples,
           "_meta": {**bench_report.machine_info(), "argv": sys.argv[1:],
                     "repeat": args.repeat, "elapsed_s": elapsed, "log_dir": log_dir,
                     "interpreters": interpreters,
                     "variants": {k: v.what for k, v in VARIANTS.items()},
                     "ratio": "peer sort time / shoal sort time: > 1 means shoal is better"}}
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
