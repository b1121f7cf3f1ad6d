"""Remote functions and actor classes of ``ray microbenchmark``, written once for all systems.

They do the same work as the rows of Ray 2.x's ``ray microbenchmark`` (same calls, same
counts, same values) so the rows line up, written against the adapter of the system
the code runs on (``current()``).  The options Ray's decorators carry are given where
the classes are used (``ACTOR_OPTIONS`` ...).
"""

from __future__ import annotations

import multiprocessing

import numpy as np

from bench.adapters import current

ACTOR_OPTIONS = {"num_cpus": 0}  # @ray.remote(num_cpus=0) class Actor
CLIENT_OPTIONS = {"num_cpus": 0}  # @ray.remote(num_cpus=0) class Client
N_CPU = max(1, multiprocessing.cpu_count() // 2)  # ray_perf's n_cpu for the 1:n / n:n rows


def small_value():
    return b"ok"


def do_put_small():
    api = current()
    for _ in range(100):
        api.put(0)


def do_put():
    api = current()
    for _ in range(10):
        api.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))


def create_object_containing_ref():
    return current().put_many([1] * 10000)  # ray_perf: ray.put(1) 10000 times


def work(actors, n):
    """ray_perf's ``work``/``async_actor_work`` task of the n:n rows."""
    api = current()
    api.get([actors[i % len(actors)].small_value.remote() for i in range(n)])


class Actor:
    def small_value(self):
        return b"ok"

    def small_value_arg(self, x):
        return b"ok"

    def small_value_batch(self, n):
        api = current()
        f = api.remote(small_value)
        api.get([f.remote() for _ in range(n)])


class AsyncActor:
    async def small_value(self):
        return b"ok"

    async def small_value_with_arg(self, x):
        return b"ok"


class Client:
    def __init__(self, servers):
        if not isinstance(servers, list):
            servers = [servers]
        self.servers = servers

    def small_value_batch(self, n):
        results = []
        for s in self.servers:
            results.extend([s.small_value.remote() for _ in range(n)])
        current().get(results)

    def small_value_batch_arg(self, n):
        api = current()
        x = api.put(0)
        results = []
        for s in self.servers:
            results.extend([s.small_value_arg.remote(x) for _ in range(n)])
        api.get(results)
