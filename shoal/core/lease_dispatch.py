"""Which leased worker gets which ready task, and when to lease or return one:
the caller's side of the lease protocol, pure (no sockets, no clock, no loop).

Theory of operation
-------------------
Normal tasks with the same *scheduling key* (resource shape, strategy, runtime
env, locality target) share the workers leased for them.  Per key
(:class:`KeyState`): a :class:`ReadyQueue` of tasks whose arguments are ready,
the :class:`LeasedWorker` s granted, and how many lease requests are in flight.
:mod:`shoal.core.lease_submitter` performs the plans made here::

    ready task / reply / grant -> dispatch(key):
        next_worker:     while it names one, the head of the queue is pushed to
                         it: the least loaded usable worker, while it has fewer
                         than the key's limit in flight (min of max_in_flight
                         and the function's PipelineDepth)
        leases_wanted:   one more lease per task still queued or waiting behind a
                         running one (at most 64 in flight per key)
        idle_workers:    workers left with nothing to do: steal for them
                         (steal_victim), then return them after LEASE_LINGER_S
                         unless work came (should_return)
    a grant arrives   -> keep_grant(key): False returns it at once (no work left)

A caller-side lease is live from its grant until it is returned or its worker
is lost (``LeasedWorker.dead``); the agent's side of the same lease is
:mod:`shoal.node.leases`.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.core.task_manager import PendingTask

MAX_IN_FLIGHT = int(os.environ.get("SHOAL_MAX_TASKS_IN_FLIGHT", "8"))
PIPELINE_WINDOW_S = 0.01  # pipeline up to this much work per leased worker
MAX_LEASE_REQUESTS = 64  # lease requests in flight per scheduling key, at most


@dataclass(eq=False)
class LeasedWorker:
    lease_id: int
    worker_id: str
    address: str
    node_id: str
    node_conn: object
    conn: object = None
    in_flight: dict = field(default_factory=dict)  # task_id -> PendingTask
    linger: asyncio.TimerHandle | None = None
    dead: bool = False
    stealing: bool = False  # a STEAL_TASKS to this worker is outstanding
    node_death: str = ""  # set when its node was declared dead: why
    head_started: float = 0.0  # when the task at the head of in_flight began (about)
    accelerators: dict | None = None  # {"GPU": [ids]} the agent gave this lease


class PipelineDepth:
    """How many tasks of a function to queue in one leased worker: enough to cover
    PIPELINE_WINDOW_S of its running time (a moving average of reply intervals)."""

    def __init__(self, window_s: float = PIPELINE_WINDOW_S, most: int = MAX_IN_FLIGHT) -> None:
        self.window_s = window_s
        self.most = most
        self.seconds: dict[bytes, float] = {}  # function id -> average running time

    def record(self, function_id: bytes, seconds: float) -> None:
        last = self.seconds.get(function_id)
        self.seconds[function_id] = seconds if last is None else 0.75 * last + 0.25 * seconds

    def depth(self, function_id: bytes) -> int:
        seconds = self.seconds.get(function_id)
        if seconds is None:
            return 1  # not seen to finish yet: it may be long
        return max(1, min(self.most, int(self.window_s / max(seconds, 1e-6))))


_QUEUE_SEQ = itertools.count()


class ReadyQueue:
    """Tasks ready to push.  Dependents (tasks that waited for another task's
    output) first, the deepest first (``PendingTask.depth``: a validate after a
    reduce after a map goes before the reduces), FIFO within a depth; then the
    tasks that were ready when submitted, FIFO.  A stolen task goes back to the
    place it had."""

    def __init__(self) -> None:
        self.dependents: list[tuple[int, int, PendingTask]] = []  # heap: (-depth, seq, task)
        self.others: collections.deque = collections.deque()

    def append(self, task: PendingTask) -> None:
        if task.depth == 0:
            self.others.append(task)
            return
        if task.queue_seq < 0:
            task.queue_seq = next(_QUEUE_SEQ)  # unique: heap entries never compare tasks
        heapq.heappush(self.dependents, (-task.depth, task.queue_seq, task))

    def appendleft(self, task: PendingTask) -> None:
        if task.depth == 0:
            self.others.appendleft(task)
        else:
            self.append(task)  # its first place, by its first sequence number

    def popleft(self) -> PendingTask:
        if self.dependents:
            return heapq.heappop(self.dependents)[2]
        return self.others.popleft()

    def peek(self) -> PendingTask:
        return self.dependents[0][2] if self.dependents else self.others[0]

    def remove(self, task: PendingTask) -> None:
        if task.depth == 0:
            self.others.remove(task)
            return
        self.dependents = [entry for entry in self.dependents if entry[2] is not task]
        heapq.heapify(self.dependents)

    def __contains__(self, task: PendingTask) -> bool:
        if task.depth == 0:
            return task in self.others
        return any(entry[2] is task for entry in self.dependents)

    def __len__(self) -> int:
        return len(self.dependents) + len(self.others)


@dataclass
class KeyState:
    key: tuple
    resources: dict
    label: str
    queue: ReadyQueue = field(default_factory=ReadyQueue)
    workers: list[LeasedWorker] = field(default_factory=list)
    requesting: int = 0
    strategy: list | None = None
    target_node: str = ""  # locality: ask this node's agent first
    runtime_env: dict | None = None  # resolved; its workers are started in it
    max_in_flight: int = MAX_IN_FLIGHT


def scheduling_key(resources: dict, strategy: object, env_hash: str = "") -> tuple:
    """Tasks with equal keys share leased workers: same shape, strategy and runtime env."""
    where = repr(strategy) if strategy else ""
    return (tuple(sorted(resources.items())), f"{where}|env={env_hash}" if env_hash else where)


def next_worker(state: KeyState, depth_of: Callable[[bytes], int]) -> LeasedWorker | None:
    """The worker the task at the head of ``state.queue`` goes to now: the first of
    the least loaded usable workers, if it has fewer than the limit in flight
    (the key's max_in_flight, and ``depth_of(function id)``: PipelineDepth);
    None when nothing is queued or no worker may take more.  The caller pops the
    task, pushes it (``in_flight`` grows) and asks again."""
    queue = state.queue
    if not queue:
        return None
    target = None
    for leased in state.workers:
        if not leased.dead and leased.conn is not None and (
                target is None or len(leased.in_flight) < len(target.in_flight)):
            target = leased
    if target is None or len(target.in_flight) >= min(
            state.max_in_flight, depth_of(queue.peek().spec.function_id)):
        return None
    return target


def leases_wanted(state: KeyState) -> int:
    """New lease requests to send (after the pushes): one per task still queued or
    waiting behind a running one (a worker leased for it steals it: a CPU may be
    free while it waits behind a long task), at most MAX_LEASE_REQUESTS in flight."""
    waiting = 0
    for leased in state.workers:
        n = len(leased.in_flight)
        if n > 1:
            waiting += n - 1
    return max(0, min(len(state.queue) + waiting, MAX_LEASE_REQUESTS) - state.requesting)


def idle_workers(state: KeyState) -> list[LeasedWorker]:
    """Workers with nothing to do and nothing queued: steal for each, then linger."""
    if state.queue:
        return []
    return [w for w in state.workers if not w.in_flight and w.linger is None and not w.dead]


def steal_victim(state: KeyState, idle: LeasedWorker) -> LeasedWorker | None:
    """The worker with the most tasks waiting behind its running one, if any
    (and no steal from it outstanding): the newest half of those go to ``idle``."""
    victim = None
    for leased in state.workers:
        if (leased is not idle and not leased.dead and not leased.stealing
                and len(leased.in_flight) > 1
                and (victim is None or len(leased.in_flight) > len(victim.in_flight))):
            victim = leased
    return victim


def tasks_to_steal(victim: LeasedWorker) -> list[bytes]:
    waiting = list(victim.in_flight)[1:]
    return waiting[len(waiting) // 2:]


def keep_grant(state: KeyState) -> bool:
    """A lease was granted: worth keeping while tasks wait, queued or behind others."""
    return bool(state.queue) or any(len(w.in_flight) > 1 for w in state.workers)


def should_return(state: KeyState, leased: LeasedWorker) -> bool:
    """Its linger ran out: return it if it is still idle and nothing is queued."""
    return not (leased.in_flight or leased.dead or state.queue)


def locality_node(arg_locations: list, my_node: str) -> str:
    """The node holding most of a task's shared-memory argument bytes, if not
    ``my_node`` (``arg_locations``: [(node ids, size)]); "" for no preference."""
    held: dict[str, int] = {}
    for locations, size in arg_locations:
        for node_id in list(locations):
            held[node_id] = held.get(node_id, 0) + size
    if not held:
        return ""
    best = max(held, key=held.__getitem__)
    if held[best] <= held.get(my_node, 0):
        return ""
    return best
