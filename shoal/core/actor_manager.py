"""The caller's side of actors: creation, and sending calls straight to them.

Creation goes through the control store (it places the actor and survives
its owner's questions); calls never do::

    caller                     control store               actor process
      | CREATE_ACTOR(spec) ----> | place on a node, run __init__ ...
      | GET_ACTOR(id) ---------> | answers once ALIVE/DEAD
      | PUSH_TASK(method, seq) ------------------------------> |  in order
      | <------------------------------------------------ reply|

Calls from one caller are sent in submission order over one connection, so
a sync actor runs them in that order.  If the connection drops, the caller
asks GET_ACTOR again with the failed address as "stale" and learns whether
the actor died (and why).

A non-detached, unnamed actor whose handles in its owner process are all
gone, and that was never passed to another process, is terminated once its
pending calls finish (as Ray does).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.task_manager import PendingTask

log = logging.getLogger("shoal.core")


@dataclass
class ActorState:
    actor_id: str
    status: str = "PENDING"
    address: str = ""
    conn: Any = None
    queue: collections.deque = field(default_factory=collections.deque)
    in_flight: dict = field(default_factory=dict)
    connecting: bool = False
    death_cause: str = ""
    keepalive: list = field(default_factory=list)
    owned: bool = False
    escaped: bool = False
    handles: int = 0
    kill_when_idle: bool = False


class ActorManager:
    def __init__(self, worker: CoreWorker) -> None:
        self.worker = worker
        self.actors: dict[str, ActorState] = {}
        self.by_conn: dict[Any, ActorState] = {}
        # per actor: calls posted to the loop and not yet queued or sent there; while
        # any exist a user thread may not send straight to the actor (it would
        # overtake them).  Sets, as add/discard from any thread are atomic.
        self.slow: dict[str, set] = {}

    # ---- the direct path (user thread) ----------------------------------------------------
    def send_direct(self, task: PendingTask) -> bool:
        """Send an actor call from the calling thread when the actor is connected and
        nothing for it is queued: the loop is not woken for the submission (one thread
        switch less per call).  Its bookkeeping is queued for the loop, which runs it
        before handling any reply."""
        st = self.actors.get(task.spec.actor_id)
        if (st is None or st.status != "ALIVE" or st.queue or st.connecting
                or self.slow.get(st.actor_id)):
            return False
        conn = st.conn
        if conn is None or not conn.is_open():
            return False
        worker = self.worker
        worker.post_lazy(self._register_direct, st, task)
        conn.call_from_thread(Method.PUSH_TASK, task.spec.to_wire(False),
                              lambda f: self._on_reply(st, task, f))
        return True

    def _register_direct(self, st: ActorState, task: PendingTask) -> None:
        self.worker.tasks.register_direct(task)
        st.in_flight[task.spec.task_id] = task

    def note_slow(self, task: PendingTask) -> None:
        self.slow.setdefault(task.spec.actor_id, set()).add(task.spec.task_id)

    def slow_done(self, task: PendingTask) -> None:
        pending = self.slow.get(task.spec.actor_id)
        if pending is not None:
            pending.discard(task.spec.task_id)

    # ---- calls (loop) ----------------------------------------------------------------------
    def reserve(self, task: PendingTask) -> None:
        """Take the call's place in the actor's queue now, while its arguments may still
        be resolving: later calls wait behind it (Ray's per-caller ordering)."""
        st = self.state(task.spec.actor_id)
        self.slow_done(task)
        if st.status != "DEAD":
            task.reserved = True
            st.queue.append(task)

    def task_finished(self, task: PendingTask) -> None:
        self.slow_done(task)
        if task.reserved:  # failed while resolving (e.g. its argument's task raised)
            task.reserved = False
            st = self.actors.get(task.spec.actor_id)
            if st is not None and task in st.queue:
                st.queue.remove(task)
                if st.conn is not None and st.conn.is_open():
                    self._flush(st)

    def state(self, actor_id: str) -> ActorState:
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorState(actor_id)
        return st

    # ---- creation (user thread) -----------------------------------------------------
    def create(self, spec: dict, keepalive: list, counted: bool) -> dict:
        reply = self.worker.control_call(Method.CREATE_ACTOR, spec)
        actor_id = reply["actor_id"]
        if not reply["existing"]:
            self.worker.post(self._created, actor_id, keepalive, counted)
        return reply

    def _created(self, actor_id: str, keepalive: list, counted: bool) -> None:
        st = self.state(actor_id)
        st.keepalive = keepalive
        st.owned = True
        st.escaped = not counted
        self._ensure_connected(st)

    # ---- handle counting (posted from ActorHandle) -------------------------------------------
    def handle_created(self, actor_id: str) -> None:
        self.state(actor_id).handles += 1

    def handle_deleted(self, actor_id: str) -> None:
        st = self.actors.get(actor_id)
        if st is None:
            return
        st.handles -= 1
        if st.handles <= 0 and st.owned and not st.escaped and st.status != "DEAD":
            st.kill_when_idle = True
            self._maybe_kill_idle(st)

    def handle_escaped(self, actor_id: str) -> None:
        self.state(actor_id).escaped = True

    def _maybe_kill_idle(self, st: ActorState) -> None:
        if st.kill_when_idle and not st.queue and not st.in_flight and st.status != "PENDING":
            st.kill_when_idle = False
            self.worker.control.notify(Method.KILL_ACTOR, [st.actor_id, True])

    def enqueue_task(self, task: PendingTask) -> None:
        """The call is ready to send (arguments resolved), or is being retried."""
        st = self.state(task.spec.actor_id)
        self.slow_done(task)
        reserved, task.reserved = task.reserved, False
        if st.status == "DEAD":
            if reserved and task in st.queue:
                st.queue.remove(task)
            self._fail(task, st)
            return
        if not reserved:
            st.queue.append(task)
        if st.conn is not None and st.conn.is_open():
            self._flush(st)
        else:
            self._ensure_connected(st)

    def _ensure_connected(self, st: ActorState, stale: str = "") -> None:
        if st.connecting:
            return
        st.connecting = True
        self.worker.loop.create_task(self._connect(st, stale))

    async def _connect(self, st: ActorState, stale: str) -> None:
        try:
            record = await self.worker.control.call(Method.GET_ACTOR, [st.actor_id, stale])
        except Exception as exc:
            record = {"state": "DEAD", "death_cause": f"the control store is unreachable: {exc}"}
        st.keepalive = []
        if record["state"] != "ALIVE":
            st.connecting = False
            self._mark_dead(st, record.get("death_cause") or "the actor died")
            return
        try:
            conn = await self.worker.peer(record["address"])
        except Exception as exc:
            st.connecting = False
            log.debug("actor %s unreachable at %s: %s", st.actor_id, record["address"], exc)
            self._ensure_connected(st, record["address"])
            return
        st.connecting = False
        st.status = "ALIVE"
        st.address = record["address"]
        st.conn = conn
        self.by_conn[conn] = st
        self._flush(st)
        self._maybe_kill_idle(st)

    def _flush(self, st: ActorState) -> None:
        conn = st.conn
        while st.queue:
            if st.queue[0].reserved:
                break  # still resolving its arguments; the calls after it wait
            task = st.queue.popleft()
            if task.cancelled:
                self.worker.tasks.finish_cancelled(task)
                continue
            st.in_flight[task.spec.task_id] = task
            task.running_on = None
            fut = conn.call(Method.PUSH_TASK, task.spec.to_wire(False))
            fut.add_done_callback(lambda f, t=task: self._on_reply(st, t, f))

    def _on_reply(self, st: ActorState, task: PendingTask, fut) -> None:
        st.in_flight.pop(task.spec.task_id, None)
        exc = fut.exception() if not fut.cancelled() else exceptions.ActorDiedError("cancelled")
        if exc is None:
            self.worker.tasks.complete(task, fut.result())
        elif st.status == "DEAD":
            self._fail(task, st)
        else:
            # connection lost: find out whether the actor died, then fail or resend
            st.queue.appendleft(task)
            if st.conn is not None:
                self.by_conn.pop(st.conn, None)
                st.conn = None
            self._ensure_connected(st, st.address)
        self._maybe_kill_idle(st)

    def _mark_dead(self, st: ActorState, cause: str) -> None:
        st.status = "DEAD"
        st.death_cause = cause
        queued = list(st.queue) + list(st.in_flight.values())
        st.queue.clear()
        st.in_flight.clear()
        for task in queued:
            self._fail(task, st)

    def _fail(self, task: PendingTask, st: ActorState) -> None:
        if task.cancelled:
            self.worker.tasks.finish_cancelled(task)
            return
        self.worker.tasks.fail_with(task, exceptions.ActorDiedError(
            f"The actor {st.actor_id} is dead, so {task.spec.name} cannot run: "
            f"{st.death_cause}", st.actor_id))

    def connection_lost(self, conn) -> None:
        st = self.by_conn.pop(conn, None)
        if st is not None and st.conn is conn:
            st.conn = None

    def on_actor_update(self, record: dict) -> None:
        st = self.actors.get(record["actor_id"])
        if st is not None and record["state"] == "DEAD" and st.status != "DEAD":
            self._mark_dead(st, record.get("death_cause", ""))

    def cancel(self, task: PendingTask, force: bool) -> None:
        st = self.actors.get(task.spec.actor_id)
        if st is None:
            return
        if task in st.queue:
            st.queue.remove(task)
            task.reserved = False
            self.worker.tasks.finish_cancelled(task)
            if st.conn is not None and st.conn.is_open():
                self._flush(st)  # it may have held up the calls behind it
        elif task.spec.task_id in st.in_flight and st.conn is not None:
            st.conn.notify(Method.CANCEL_TASK, [task.spec.task_id, force, False])
