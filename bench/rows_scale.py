"""Scaling rows: many queued tasks, many actors, many arguments/returns/objects, big arrays."""

from __future__ import annotations

import time

import numpy as np
import psutil

from bench.registry import GBPS, KB, PER_S, SEC, row

NO_NUM_RETURNS = {"dask": "Dask has no num_returns"}


def noop():
    return None


def count_args(*args):
    return len(args)


def many_returns(n):
    return tuple(range(n))


class Pinger:
    def ping(self):
        return b"ok"


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _queued(n: int, label: str, mode: str, max_repeat: int | None, quick_repeat: int | None,
            timeout: float):
    name = f"tasks queued {label}"
    metrics = [
        (f"{name}: time to complete", SEC),
        (f"{name}: throughput", PER_S),
        (f"{name}: driver RSS growth per task", KB),
    ]

    @row(name, group=f"queued-{label}", metrics=metrics, mode=mode, max_repeat=max_repeat,
         quick_repeat=quick_repeat, timeout=timeout)
    def queued(api, ctx):
        f = api.remote(noop)
        api.get([f.remote() for _ in range(10)])  # workers up
        before = _rss()
        start = time.perf_counter()
        refs = [f.remote() for _ in range(n)]
        growth = _rss() - before  # every task submitted, most still queued
        api.get(refs)
        elapsed = time.perf_counter() - start
        return {metrics[0][0]: elapsed, metrics[1][0]: n / elapsed, metrics[2][0]: growth / n / 1e3}


# 100k is left out of --quick too: on 2 CPUs Ray needs ~2 min for it and Dask over 3
_queued(1_000, "1k", "both", None, None, 600)
_queued(10_000, "10k", "both", None, 1, 600)
_queued(100_000, "100k", "full", 3, None, 1200)
_queued(1_000_000, "1M", "full", 1, None, 2400)


def _actors(n: int, label: str, mode: str):
    @row(f"{label} actors created and each called once", group=f"actors-{label}", unit=SEC,
         mode=mode, timeout=1800, quick_repeat=1)
    def many_actors(api, ctx):
        cls = api.actor(Pinger)
        start = time.perf_counter()
        actors = [cls.remote() for _ in range(n)]
        api.get([a.ping.remote() for a in actors])
        return time.perf_counter() - start


_actors(1000, "1k", "full")
_actors(100, "100", "quick")


@row("task with 10k ref arguments (*args)", group="scale", unit=SEC)
def ref_args(api, ctx):
    refs = api.put_many(range(10000))
    f = api.remote(count_args)
    return ctx.seconds(lambda: api.get(f.remote(*refs)))


@row("task with 3k returns (num_returns=3000)", group="scale", unit=SEC, na=NO_NUM_RETURNS)
def many_returns_row(api, ctx):
    f = api.remote(many_returns, num_returns=3000)
    return ctx.seconds(lambda: api.get(f.remote(3000)))


@row("get of 10k objects (10k small put refs)", group="scale", unit=SEC)
def get_many(api, ctx):
    refs = api.put_many(range(10000))
    return ctx.seconds(lambda: api.get(refs))


def _put_rate(size: int, label: str):
    @row(f"put GB/s, {label} array", group="scale", unit=GBPS)
    def put_rate(api, ctx):
        arr = np.ones(size, dtype=np.uint8)  # real pages (np.zeros would read the zero page)
        return ctx.rate(lambda: api.put(arr), size / 1e9)


_put_rate(100 * 2**20, "100 MiB")
_put_rate(2**30, "1 GiB")


def _big_array(gib: int, mode: str):
    name = f"{gib} GiB numpy array put and get"
    metrics = [(f"{name}: put", SEC), (f"{name}: get", SEC)]

    @row(name, group=f"array-{gib}g", metrics=metrics, mode=mode, timeout=900)
    def big_array(api, ctx):
        arr = np.ones(gib * 2**30, dtype=np.uint8)
        start = time.perf_counter()
        ref = api.put(arr)
        put_done = time.perf_counter()
        out = api.get(ref)
        end = time.perf_counter()
        if out.nbytes != arr.nbytes:
            raise RuntimeError(f"got {out.nbytes} bytes back, put {arr.nbytes}")
        return {metrics[0][0]: put_done - start, metrics[1][0]: end - put_done}


_big_array(4, "full")
_big_array(1, "quick")
