"""Dask distributed: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``.

Tasks are ``client.submit(fn, *args, pure=False)`` (``pure=False``: Dask would
otherwise merge identical calls into one task), ``put`` is
``client.scatter(..., hash=False)``, ``get`` is ``Future.result``/``client.gather``,
and actors are ``client.submit(cls, actor=True)``.  Inside a task, a blocking
``get`` secedes from the worker's thread pool (``worker_client``), as Dask
requires; actor methods run on their own thread and block directly.
"""

from __future__ import annotations

import contextlib
import inspect

import distributed
from distributed.actor import BaseActorFuture
from distributed.utils import sync
from distributed.worker import thread_state

from bench.adapters import NotSupported


def _blocking():
    """Secede from the worker's pool while a task blocks on other work."""
    if getattr(thread_state, "start_time", None) is None or getattr(thread_state, "actor", False):
        return contextlib.nullcontext()
    return distributed.worker_client()


def _client():
    return distributed.get_client()


def _ready(args: tuple) -> tuple:
    """Resolve actor handles in ``args`` (and in lists among them) before Dask pickles
    them: pickling runs on the client's event loop, where blocking would deadlock."""
    for arg in args:
        for item in arg if isinstance(arg, list | tuple) else (arg,):
            if isinstance(item, ActorHandle):
                item._resolve()
    return args


class RemoteFunction:
    def __init__(self, fn, options: dict):
        if options.get("num_returns", 1) != 1:
            raise NotSupported("Dask has no num_returns")
        self.fn = fn
        self.options_ = options

    def options(self, **options):
        return RemoteFunction(self.fn, {**self.options_, **options})

    def remote(self, *args):
        return _client().submit(self.fn, *_ready(args), pure=False)


class ActorHandle:
    """A Dask actor proxy, created lazily from its creation future."""

    def __init__(self, future=None, proxy=None):
        self._creation = future
        self._proxy = proxy

    def _resolve(self):
        if self._proxy is None:
            self._proxy = self._creation.result()
        return self._proxy

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(getattr(self._resolve(), name))

    def __reduce__(self):  # only the proxy travels to other tasks and actors (see _ready)
        if self._proxy is None:
            raise RuntimeError("unresolved Dask actor handle: pass it through _ready()")
        return (ActorHandle, (None, self._proxy))


class _Method:
    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def remote(self, *args):
        return self.call(*_ready(args))


class ActorClass:
    def __init__(self, cls, options: dict):
        if options.get("max_concurrency", 1) != 1:
            raise NotSupported("Dask actors have no max_concurrency")
        self.cls = cls
        self.options_ = options

    def options(self, **options):
        return ActorClass(self.cls, {**self.options_, **options})

    def remote(self, *args):
        return ActorHandle(_client().submit(self.cls, *_ready(args), actor=True, pure=False))


class Adapter:
    name = "dask"

    def __init__(self):
        self.cluster = None
        self.client = None

    def init(self) -> None:
        self.cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        self.client = distributed.Client(self.cluster)

    def shutdown(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def remote(self, fn, **options):
        return RemoteFunction(fn, options)

    def actor(self, cls, **options):
        return ActorClass(cls, options)

    def put(self, value):
        return _client().scatter([value], hash=False)[0]

    def put_many(self, values) -> list:
        return _client().scatter(list(values), hash=False)

    def get(self, refs, timeout=None):
        if isinstance(refs, distributed.Future):
            with _blocking():
                return refs.result(timeout)
        if not isinstance(refs, list):
            return self._get_list([refs], timeout)[0]
        return self._get_list(refs, timeout)

    def _get_list(self, refs, timeout):
        with _blocking():
            futures = [r for r in refs if isinstance(r, distributed.Future)]
            if len(futures) == len(refs):
                return _client().gather(refs)
            values = iter(_client().gather(futures) if futures else ())
            out = []
            for ref in refs:
                if isinstance(ref, distributed.Future):
                    out.append(next(values))
                elif isinstance(ref, BaseActorFuture):
                    out.append(ref.result(timeout))
                elif inspect.iscoroutine(ref):  # an async actor called on its own worker
                    out.append(sync(distributed.get_worker().loop, lambda c=ref: c))
                else:
                    raise TypeError(f"not a Dask ref: {ref!r}")
            return out

    def wait(self, refs, num_returns=1, timeout=None, fetch_local=True):
        """Ray's wait: the first ``num_returns`` done refs, in order, and the rest."""
        if num_returns not in (1, len(refs)):
            raise NotSupported("only num_returns=1 or all")
        done = {ref for ref in refs if ref.done()}  # local status, no round trip
        if len(done) < num_returns:
            when = "FIRST_COMPLETED" if num_returns == 1 else "ALL_COMPLETED"
            done = distributed.wait(refs, timeout=timeout, return_when=when).done
        ready, not_ready = [], []
        for ref in refs:
            (ready if ref in done and len(ready) < num_returns else not_ready).append(ref)
        return ready, not_ready
