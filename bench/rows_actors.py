"""`ray microbenchmark` rows on actors and async actors."""

from __future__ import annotations

from bench.registry import row
from bench.workloads import (
    ACTOR_OPTIONS,
    CLIENT_OPTIONS,
    N_CPU,
    Actor,
    AsyncActor,
    Client,
    work,
)

NO_CONCURRENCY = {"dask": "Dask actors have no max_concurrency"}


@row("1:1 actor calls sync", group="actors")
def actor_sync(api, ctx):
    a = api.actor(Actor, **ACTOR_OPTIONS).remote()
    return ctx.rate(lambda: api.get(a.small_value.remote()))


@row("1:1 actor calls async", group="actors")
def actor_async(api, ctx):
    a = api.actor(Actor, **ACTOR_OPTIONS).remote()
    return ctx.rate(lambda: api.get([a.small_value.remote() for _ in range(1000)]), 1000)


@row("1:1 actor calls concurrent", group="actors", na=NO_CONCURRENCY)
def actor_concurrent(api, ctx):
    a = api.actor(Actor, **ACTOR_OPTIONS).options(max_concurrency=16).remote()
    return ctx.rate(lambda: api.get([a.small_value.remote() for _ in range(1000)]), 1000)


def _one_client(api, ctx, server_cls, server_options):
    n = ctx.pick(5000, 500)
    servers = [api.actor(server_cls, **server_options).remote() for _ in range(N_CPU)]
    client = api.actor(Client, **CLIENT_OPTIONS).remote(servers)
    return ctx.rate(lambda: api.get(client.small_value_batch.remote(n)), n * len(servers))


def _task_clients(api, ctx, server_cls, server_options):
    n, m = ctx.pick(5000, 500), 4  # m tasks, each calling the servers n times
    servers = [api.actor(server_cls, **server_options).remote() for _ in range(N_CPU)]
    w = api.remote(work)
    return ctx.rate(lambda: api.get([w.remote(servers, n) for _ in range(m)]), m * n)


@row("1:n actor calls async", group="actors")
def actor_one_to_n(api, ctx):
    return _one_client(api, ctx, Actor, ACTOR_OPTIONS)


@row("n:n actor calls async", group="actors")
def actor_n_to_n(api, ctx):
    return _task_clients(api, ctx, Actor, ACTOR_OPTIONS)


@row("n:n actor calls with arg async", group="actors")
def actor_n_to_n_arg(api, ctx):
    n = 1000
    servers = [api.actor(Actor, **ACTOR_OPTIONS).remote() for _ in range(N_CPU)]
    clients = [api.actor(Client, **CLIENT_OPTIONS).remote(s) for s in servers]
    return ctx.rate(
        lambda: api.get([c.small_value_batch_arg.remote(n) for c in clients]), n * len(clients)
    )


@row("1:1 async-actor calls sync", group="async-actors")
def async_actor_sync(api, ctx):
    a = api.actor(AsyncActor).remote()
    return ctx.rate(lambda: api.get(a.small_value.remote()))


@row("1:1 async-actor calls async", group="async-actors")
def async_actor_async(api, ctx):
    a = api.actor(AsyncActor).remote()
    return ctx.rate(lambda: api.get([a.small_value.remote() for _ in range(1000)]), 1000)


@row("1:1 async-actor calls with args async", group="async-actors")
def async_actor_args(api, ctx):
    a = api.actor(AsyncActor).remote()
    return ctx.rate(
        lambda: api.get([a.small_value_with_arg.remote(i) for i in range(1000)]), 1000
    )


@row("1:n async-actor calls async", group="async-actors")
def async_actor_one_to_n(api, ctx):
    return _one_client(api, ctx, AsyncActor, {})


@row("n:n async-actor calls async", group="async-actors")
def async_actor_n_to_n(api, ctx):
    return _task_clients(api, ctx, AsyncActor, {})
