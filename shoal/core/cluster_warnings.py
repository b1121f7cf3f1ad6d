"""Warnings the cluster sends to drivers: a problem a driver's user should hear of
that happened elsewhere (on a node, in an owner that is a worker).

Theory of operation::

    node agent / owner               control store                 driver(s)
      | PUBLISH_WARNING [job, type, text] -> |
      |                                      | PUBSUB_MESSAGE on "warnings" ----> |
      |                                      |   (every driver; job "" = all)     |
                                                      printed on stderr, and handed
                                                      to each open WarningSubscription

Kinds (Ray's type names, so programs matching on them keep working):

* ``excess_queueing_warning``: an owner holds many calls to one actor that have
  not finished (the actor is slower than its callers): at 5000, then at every
  doubling (10000, 20000, ...), per actor.
* ``worker_pool_large``: a node runs many worker processes (actors, or tasks
  blocked in ``get`` whose CPU was lent to new workers): at 4x the node's CPUs,
  then at each further multiple.

A driver receives only warnings of its own job or of no job (node-wide ones).
Subscriptions (:func:`shoal.util.subscribe_warnings`) see the warnings that arrive
after they were opened, like Ray's error pubsub.
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import sys
import threading
import time

EXCESS_QUEUEING_FIRST = 5000  # Ray's actor_excess_queueing_warn_threshold
POOL_SIZE_MULTIPLE = 4  # first warn at this many workers per CPU (as Ray does)


class WarningType(enum.StrEnum):
    EXCESS_QUEUEING = "excess_queueing_warning"
    WORKER_POOL_LARGE = "worker_pool_large"


@dataclasses.dataclass(frozen=True)
class ClusterWarning:
    type: WarningType
    message: str
    job_id: str  # "" for a warning about the cluster, not one job
    timestamp: float

    def wire(self) -> list:
        return [self.job_id, self.type.value, self.message, self.timestamp]

    @classmethod
    def from_wire(cls, body: list) -> ClusterWarning:
        job_id, kind, message, timestamp = body
        return cls(WarningType(kind), message, job_id, timestamp)


def warning(kind: WarningType, message: str, job_id: str = "") -> ClusterWarning:
    return ClusterWarning(kind, message, job_id, time.time())


def publish(worker, kind: WarningType, message: str) -> None:
    """Tell the driver of ``worker``'s job (its loop thread)."""
    if worker.control is not None:
        from shoal.rpc.messages import Method

        worker.control.notify(Method.PUBLISH_WARNING, warning(kind, message,
                                                              worker.job_id).wire())


# ---- when to warn (pure) -------------------------------------------------------------
class QueueWarning:
    """Per actor: warn when the unfinished calls reach the threshold, which then
    doubles (one warning per doubling, not one per call)."""

    def __init__(self, first: int = EXCESS_QUEUEING_FIRST) -> None:
        self.next_at = first

    def check(self, pending: int, actor_id: str) -> str | None:
        if pending < self.next_at:
            return None
        at, self.next_at = self.next_at, self.next_at * 2
        return (f"Warning: More than {at} tasks are pending submission to actor {actor_id}. "
                "To reduce memory usage, wait for these tasks to finish before sending more.")


class PoolSizeWarning:
    """Per node: warn when its worker processes reach ``POOL_SIZE_MULTIPLE`` times its
    CPUs (at least 1), then each time that count doubles.  Ray warns at every
    further multiple of the CPUs, which on a small machine is a warning per two
    workers when nested tasks block in get()."""

    def __init__(self, cpus: float) -> None:
        self.next_at = POOL_SIZE_MULTIPLE * max(1, int(cpus))

    def check(self, workers: int, node_id: str, address: str) -> str | None:
        if workers < self.next_at:
            return None
        while self.next_at <= workers:
            self.next_at *= 2
        return (f"WARNING: {workers} worker processes have been started on node {node_id} "
                f"with address {address}. This could be a result of using a large number "
                "of actors, or of tasks blocked in get() calls (each lends its CPU, so "
                "another worker starts).")


# ---- the driver's side -----------------------------------------------------------------
class WarningSubscription:
    """Warnings that arrive from now on, in order (any thread)."""

    def __init__(self, hub: DriverWarnings) -> None:
        self._hub = hub
        self._queue: queue.Queue[ClusterWarning] = queue.Queue()

    def get(self, timeout: float | None = None) -> ClusterWarning | None:
        """The next warning, or None if none came within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def put(self, item: ClusterWarning) -> None:
        self._queue.put(item)

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> WarningSubscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DriverWarnings:
    """A driver's receiver of the ``warnings`` channel: prints its job's warnings (and
    node-wide ones) on stderr and hands them to open subscriptions."""

    def __init__(self, job_id: str, stream=None) -> None:
        self.job_id = job_id
        self.stream = stream  # None: sys.stderr at the time of printing
        self._subs: set[WarningSubscription] = set()
        self._lock = threading.Lock()

    def received(self, body: list) -> None:
        item = ClusterWarning.from_wire(body)
        if item.job_id and item.job_id != self.job_id:
            return
        print(f"shoal: warning: {item.message}", file=self.stream or sys.stderr, flush=True)
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.put(item)

    def subscribe(self) -> WarningSubscription:
        sub = WarningSubscription(self)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: WarningSubscription) -> None:
        with self._lock:
            self._subs.discard(sub)
