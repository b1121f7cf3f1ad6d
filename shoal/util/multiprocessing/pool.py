"""``multiprocessing.Pool`` on shoal actors (Ray's ``ray.util.multiprocessing.Pool``).

A pool is ``processes`` actors (one CPU each by default), each of which ran the
``initializer`` once.  Work is cut into chunks of ``chunksize`` items; each
chunk is one actor call that returns the chunk's results, and the chunks go to
the actors round robin, so they queue at the actors in submission order.
Results are refs: :class:`AsyncResult` and the ``imap`` iterators read them.

Why actors and not tasks: ``initializer`` state (a loaded model, an open
file) must live in the process that runs the work, as with the standard pool.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import shoal


class TimeoutError(Exception):  # noqa: A001 - the stdlib pool's name for it
    """``AsyncResult.get`` or an ``imap`` iterator's ``next`` timed out."""


class _PoolState(enum.Enum):
    RUNNING = "running"
    CLOSED = "closed"        # close(): no new work, the submitted work finishes
    TERMINATED = "terminated"


class _PoolActor:
    """Runs chunks of calls; the initializer ran once when it started."""

    def __init__(self, initializer: Callable | None, initargs: tuple) -> None:
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> bool:
        return True

    def run_chunk(self, func: Callable, chunk: list, star: bool) -> list:
        """``[(ok, value), ...]``: an item's exception is its value, so the
        other items' results survive it."""
        out = []
        for item in chunk:
            try:
                if star:
                    args, kwargs = item
                    value = func(*args, **kwargs)
                else:
                    value = func(item)
                out.append((True, value))
            except Exception as exc:  # the caller raises it (or passes it to error_callback)
                out.append((False, exc))
        return out


def _unpack_chunk(results: list) -> list:
    values = []
    for ok, value in results:
        if not ok:
            raise value
        values.append(value)
    return values


class AsyncResult:
    """The result of ``apply_async``/``map_async``; ``get`` waits for it."""

    def __init__(self, refs: list, single: bool, callback: Callable | None = None,
                 error_callback: Callable | None = None) -> None:
        self._refs = refs
        self._single = single
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        if callback is not None or error_callback is not None:
            threading.Thread(target=self._wait_and_call, args=(callback, error_callback),
                             daemon=True, name="shoal-pool-callback").start()

    def _collect(self, timeout: float | None) -> None:
        if self._done.is_set():
            return
        ready, _ = shoal.wait(self._refs, num_returns=len(self._refs), timeout=timeout)
        if len(ready) < len(self._refs):
            raise TimeoutError(f"the result was not ready within {timeout} s")
        try:
            values = list(itertools.chain.from_iterable(
                _unpack_chunk(chunk) for chunk in shoal.get(self._refs)))
            self._value = values[0] if self._single else values
        except Exception as exc:
            self._error = exc
        self._done.set()

    def _wait_and_call(self, callback: Callable | None, error_callback: Callable | None) -> None:
        self._collect(None)
        if self._error is None and callback is not None:
            callback(self._value)
        elif self._error is not None and error_callback is not None:
            error_callback(self._error)

    def get(self, timeout: float | None = None) -> Any:
        """The result; re-raises the work's exception; :class:`TimeoutError` if not
        ready within ``timeout`` seconds."""
        self._collect(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the result (returns either way)."""
        try:
            self._collect(timeout)
        except TimeoutError:
            pass

    def ready(self) -> bool:
        if self._done.is_set():
            return True
        ready, _ = shoal.wait(self._refs, num_returns=len(self._refs), timeout=0)
        return len(ready) == len(self._refs)

    def successful(self) -> bool:
        """Whether the work raised nothing; ValueError if it is not done yet."""
        if not self.ready():
            raise ValueError("the result is not ready yet")
        self._collect(None)
        return self._error is None


class _ResultIterator:
    """What ``imap`` (in order) and ``imap_unordered`` (as done) return."""

    def __init__(self, refs: list, ordered: bool) -> None:
        self._pending = list(refs)
        self._ordered = ordered
        self._buffer: list = []

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        while not self._buffer:
            if not self._pending:
                raise StopIteration
            if self._ordered:
                ready, _ = shoal.wait(self._pending[:1], timeout=timeout)
            else:
                ready, _ = shoal.wait(self._pending, num_returns=1, timeout=timeout)
            if not ready:
                raise TimeoutError(f"no result within {timeout} s")
            self._pending.remove(ready[0])
            self._buffer.extend(_unpack_chunk(shoal.get(ready[0])))
        return self._buffer.pop(0)


class Pool:
    """A pool of worker actors with the standard ``multiprocessing.Pool`` API."""

    def __init__(self, processes: int | None = None, initializer: Callable | None = None,
                 initargs: Iterable | None = None, maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: dict | None = None) -> None:
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError(f"Pool: processes must be a positive int, got {processes!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError("Pool: initializer must be callable")
        if not shoal.is_initialized():
            shoal.init(address=ray_address or os.environ.get("SHOAL_ADDRESS"))
        if processes is None:
            processes = max(1, int(shoal.cluster_resources().get("CPU", 1)))
        self._processes = processes
        options = {"num_cpus": 1, **(ray_remote_args or {})}
        actor_class = shoal.remote(_PoolActor).options(**options)
        self._actors = [actor_class.remote(initializer, tuple(initargs or ()))
                        for _ in range(processes)]
        self._next_actor = itertools.cycle(range(processes))
        self._state = _PoolState.RUNNING
        self._submitted: list = []

    # ---- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def close(self) -> None:
        """No more work may be submitted; what was submitted still runs."""
        if self._state is _PoolState.RUNNING:
            self._state = _PoolState.CLOSED

    def terminate(self) -> None:
        """Stop the pool's actors now; unfinished work is lost."""
        if self._state is _PoolState.TERMINATED:
            return
        self._state = _PoolState.TERMINATED
        for actor in self._actors:
            shoal.kill(actor)
        self._actors = []

    def join(self) -> None:
        """Wait for all submitted work to finish (after ``close`` or ``terminate``)."""
        if self._state is _PoolState.RUNNING:
            raise ValueError("Pool.join() needs close() or terminate() first")
        if self._state is _PoolState.CLOSED and self._submitted:
            shoal.wait(self._submitted, num_returns=len(self._submitted))
            self._submitted = []

    def _check_running(self) -> None:
        if self._state is not _PoolState.RUNNING:
            raise ValueError(f"Pool not running (it is {self._state.value})")

    # ---- submitting -------------------------------------------------------------
    def _submit(self, func: Callable, items: list, star: bool, chunksize: int | None) -> list:
        self._check_running()
        if not callable(func):
            raise TypeError(f"the function to run must be callable, got {func!r}")
        if chunksize is None:
            chunksize = max(1, -(-len(items) // (self._processes * 4)))
        elif not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
        refs = []
        for start in range(0, len(items), chunksize):
            actor = self._actors[next(self._next_actor)]
            refs.append(actor.run_chunk.remote(func, items[start:start + chunksize], star))
        self._submitted.extend(refs)
        return refs

    @staticmethod
    def _star_args(iterable: Iterable) -> list:
        return [(tuple(args), {}) for args in iterable]

    def apply(self, func: Callable, args: tuple = (), kwds: dict | None = None) -> Any:
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable, args: tuple = (), kwds: dict | None = None,
                    callback: Callable | None = None,
                    error_callback: Callable | None = None) -> AsyncResult:
        refs = self._submit(func, [(tuple(args), dict(kwds or {}))], True, 1)
        return AsyncResult(refs, True, callback, error_callback)

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        return self.map_async(func, iterable, chunksize).get()

    def map_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                  callback: Callable | None = None,
                  error_callback: Callable | None = None) -> AsyncResult:
        refs = self._submit(func, list(iterable), False, chunksize)
        return AsyncResult(refs, False, callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                      callback: Callable | None = None,
                      error_callback: Callable | None = None) -> AsyncResult:
        refs = self._submit(func, self._star_args(iterable), True, chunksize)
        return AsyncResult(refs, False, callback, error_callback)

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> _ResultIterator:
        """Results in the order of ``iterable``, each as soon as it and those before it
        are done."""
        return _ResultIterator(self._submit(func, list(iterable), False, chunksize), True)

    def imap_unordered(self, func: Callable, iterable: Iterable,
                       chunksize: int = 1) -> _ResultIterator:
        """Results in the order they finish."""
        return _ResultIterator(self._submit(func, list(iterable), False, chunksize), False)
