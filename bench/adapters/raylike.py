"""Adapter base for systems with Ray's API (shoal and Ray itself)."""

from __future__ import annotations


class RayLike:
    name = ""
    init_options: dict = {}

    def __init__(self, module):
        self.mod = module
        # bound once: the rows call these in tight loops
        self.get = module.get
        self.put = module.put
        self.wait = module.wait
        self._remotes: dict = {}

    def init(self) -> None:
        self.mod.init(num_cpus=2, **self.init_options)

    def shutdown(self) -> None:
        self.mod.shutdown()

    def remote(self, fn, **options):
        key = (fn, tuple(sorted(options.items())))
        if key not in self._remotes:  # tasks and actors call remote() again and again
            self._remotes[key] = self.mod.remote(**options)(fn) if options else self.mod.remote(fn)
        return self._remotes[key]

    actor = remote

    def put_many(self, values) -> list:
        put = self.put
        return [put(v) for v in values]
