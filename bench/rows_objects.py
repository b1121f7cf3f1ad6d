"""`ray microbenchmark` rows on objects: put, get and wait."""

from __future__ import annotations

import numpy as np

from bench.registry import GBPS, row
from bench.workloads import create_object_containing_ref, do_put, do_put_small, small_value

G = "objects"


@row("single client get calls (Plasma Store)", group=G)
def get_calls(api, ctx):
    value = api.put(0)
    return ctx.rate(lambda: api.get(value))


@row("single client put calls (Plasma Store)", group=G)
def put_calls(api, ctx):
    return ctx.rate(lambda: api.put(0))


@row("multi client put calls (Plasma Store)", group=G)
def multi_put_calls(api, ctx):
    f = api.remote(do_put_small)
    return ctx.rate(lambda: api.get([f.remote() for _ in range(10)]), 1000)


@row("single client put gigabytes", group=G, unit=GBPS)
def put_gigabytes(api, ctx):
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
    return ctx.rate(lambda: api.put(arr), 8 * 0.1)


@row("multi client put gigabytes", group=G, unit=GBPS)
def multi_put_gigabytes(api, ctx):
    f = api.remote(do_put)
    tasks = ctx.pick(10, 2)  # each task puts 10 x 80 MiB ("0.8 GB" in ray_perf's units)
    return ctx.rate(lambda: api.get([f.remote() for _ in range(tasks)]), tasks * 8 * 0.1)


@row("single client get object containing 10k refs", group=G)
def get_containing_refs(api, ctx):
    obj = api.remote(create_object_containing_ref).remote()
    return ctx.rate(lambda: api.get(obj))


@row("single client wait 1k refs", group=G)
def wait_refs(api, ctx):
    f = api.remote(small_value)

    def wait_multiple_refs():
        not_ready = [f.remote() for _ in range(1000)]
        fetch_local = True
        for _ in range(1000):
            _ready, not_ready = api.wait(not_ready, fetch_local=fetch_local)
            fetch_local = False

    return ctx.rate(wait_multiple_refs)
