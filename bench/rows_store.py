"""The object store's fast paths (issue 15): get of a mapped object, wait on ready
refs, large puts from reused and from freshly allocated arrays.

The machine's limits these are measured against are in docs/design.md ("Store
fast paths"): a get can be no cheaper than unpickling a view, a wait than one
pass over the refs, a put than one memcpy of its bytes.
"""

from __future__ import annotations

import time

import numpy as np

from bench.registry import GBPS, row
from bench.workloads import small_value

G = "store"
MB100 = 100 * 2**20


@row("get 100 MB array, same ref, a view held", group=G)
def get_mapped(api, ctx):
    ref = api.put(np.ones(MB100, dtype=np.uint8))
    held = api.get(ref)  # the process maps the object: later gets may reuse that
    rate = ctx.rate(lambda: api.get(ref))
    del held
    return rate


@row("get 100 MB array, same ref, result dropped", group=G)
def get_unmapped(api, ctx):
    ref = api.put(np.ones(MB100, dtype=np.uint8))
    return ctx.rate(lambda: api.get(ref))


@row("wait on 1k ready refs (num_returns=all)", group=G)
def wait_ready(api, ctx):
    f = api.remote(small_value)
    refs = [f.remote() for _ in range(1000)]
    api.get(refs)
    return ctx.rate(lambda: api.wait(refs, num_returns=len(refs)))


@row("put GB/s, 100 MB array reused", group=G, unit=GBPS)
def put_reused(api, ctx):
    arr = np.ones(MB100, dtype=np.uint8)  # real pages (np.zeros would read the zero page)
    return ctx.rate(lambda: api.put(arr), MB100 / 1e9)


def _fresh_put_rate(api, ctx, make) -> float:
    """GB/s of put alone, each put of a newly allocated array (allocation not timed)."""
    api.put(make())
    spent, count = 0.0, 0
    deadline = time.perf_counter() + max(ctx.budget, 1.0) * 2
    while spent < ctx.budget or count < 3:
        arr = make()
        start = time.perf_counter()
        api.put(arr)
        spent += time.perf_counter() - start
        count += 1
        del arr
        if time.perf_counter() > deadline and count >= 3:
            break
    return count * MB100 / 1e9 / spent


@row("put GB/s, 100 MB array freshly allocated (np.ones)", group=G, unit=GBPS)
def put_fresh_ones(api, ctx):
    return _fresh_put_rate(api, ctx, lambda: np.ones(MB100, dtype=np.uint8))


@row("put GB/s, 100 MB array freshly allocated (random)", group=G, unit=GBPS)
def put_fresh_random(api, ctx):
    rng = np.random.default_rng(0)
    return _fresh_put_rate(api, ctx, lambda: np.frombuffer(rng.bytes(MB100), dtype=np.uint8))
