"""`ray microbenchmark` rows on tasks."""

from __future__ import annotations

from bench.registry import row
from bench.workloads import ACTOR_OPTIONS, Actor, small_value

G = "tasks"


@row("single client tasks and get batch", group=G)
def tasks_and_get_batch(api, ctx):
    f = api.remote(small_value)
    return ctx.rate(lambda: api.get([f.remote() for _ in range(1000)]))


@row("single client tasks sync", group=G)
def tasks_sync(api, ctx):
    f = api.remote(small_value)
    return ctx.rate(lambda: api.get(f.remote()))


@row("single client tasks async", group=G)
def tasks_async(api, ctx):
    f = api.remote(small_value)
    return ctx.rate(lambda: api.get([f.remote() for _ in range(1000)]), 1000)


@row("multi client tasks async", group=G)
def multi_client_tasks_async(api, ctx):
    n, m = ctx.pick(10000, 1000), 4  # m actors, each submitting n tasks
    actors = [api.actor(Actor, **ACTOR_OPTIONS).remote() for _ in range(m)]
    return ctx.rate(lambda: api.get([a.small_value_batch.remote(n) for a in actors]), n * m)
