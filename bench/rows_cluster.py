"""Cluster rows: cold start (a fresh interpreter per sample) and idle memory."""

from __future__ import annotations

import time

import psutil

from bench import cold_start
from bench.registry import MB, SEC, row


@row("cold start (init to first result)", group="cold-start", unit=SEC, cluster=False)
def cold(api, ctx):
    return cold_start.sample(ctx.system)


def _pss(proc: psutil.Process) -> int:
    try:
        try:
            return proc.memory_full_info().pss
        except (psutil.AccessDenied, AttributeError):
            return proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0


@row("idle cluster memory (PSS of processes init started)", group="idle", unit=MB)
def idle_cluster(api, ctx):
    time.sleep(max(0.0, ctx.init_done + 3.0 - time.perf_counter()))
    children = psutil.Process().children(recursive=True)
    return sum(_pss(p) for p in children) / 1e6


@row("idle driver memory (PSS; Dask's scheduler lives here)", group="idle", unit=MB)
def idle_driver(api, ctx):
    time.sleep(max(0.0, ctx.init_done + 3.0 - time.perf_counter()))
    return _pss(psutil.Process()) / 1e6
