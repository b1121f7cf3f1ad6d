"""The caller's side of actors: creation, and sending calls straight to them.

Creation goes through the control store (it places the actor and survives
its owner's questions); calls never do::

    caller                     control store               actor process
      | CREATE_ACTOR(spec) ----> | place on a node, run __init__ ...
      | GET_ACTOR(id) ---------> | answers once ALIVE/DEAD
      | PUSH_TASK(method, seq) ------------------------------> |  in order
      | <------------------------------------------------ reply|

Calls from one caller are sent in submission order over one connection, so
a sync actor runs them in that order.

Restarts (``max_restarts``; the control store's side is
:mod:`shoal.control.actor_lifecycle`)::

    caller                       control store                actor process
      |  ... the connection drops; calls sent on it and unanswered are "lost" ...
      | GET_ACTOR(id, stale=addr) -> | RESTARTING + cause (or ALIVE elsewhere, or DEAD)
      |   lost calls with retries left (max_task_retries) go back to the head of
      |   the queue, in their order; the others fail with ActorUnavailableError
      |   (DEAD: every call fails with ActorDiedError and the cause)
      | GET_ACTOR(id, stale, wait_restart) -> | answers once ALIVE again, or DEAD
      | PUSH_TASK ... to the new process: retried calls first, then the calls
      |   made meanwhile (they waited in the queue and use no retry); a call made
      |   while the caller knows the actor is restarting and that has no retries
      |   (max_task_retries=0, Ray's at-most-once default) fails at once with
      |   ActorUnavailableError instead of waiting

The caller also subscribes to the ``actor`` channel: a RESTARTING/DEAD notice,
or an address change, for an actor it is connected to aborts that connection,
so calls to a process that is cut off rather than dead fail over too.

A non-detached actor (named or not) is terminated once no strong handle to it
is left in any process and its pending calls have finished, as Ray does: see
:mod:`shoal.core.actor_scope` (handles hold a scope token that reference
counting tracks across processes).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.control.actor_lifecycle import ActorState
from shoal.core import actor_shutdown
from shoal.core.actor_scope import ActorScopeTable
from shoal.core.actor_view import (
    ViewEvent,
    keeps_actor_busy,
    may_send,
    next_view,
    reported,
)
from shoal.core.task_reply import TaskReply
from shoal.core.task_state import (
    WAITING_TO_RUN,
    TaskEvent,
    TaskState,
    retry_allowed,
    use_retry,
)
from shoal.rpc.actor_messages import GetActorBody
from shoal.rpc.messages import Channel, Method
from shoal.rpc.read_lending import ReadLending
from shoal.rpc.transport import RemoteError

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links
    from shoal.core.task_manager import PendingTask

log = logging.getLogger("shoal.core")


@dataclass
class ActorCalls:
    """One actor as this caller sees it, and its calls."""

    actor_id: str
    view: ActorState = ActorState.PENDING  # the caller's last news (:mod:`actor_view`)
    address: str = ""
    num_restarts: int = 0  # of the incarnation at ``address``
    conn: Any = None
    queue: collections.deque = field(default_factory=collections.deque)
    in_flight: dict = field(default_factory=dict)  # task_id -> task, sent, unanswered
    lost: list = field(default_factory=list)  # sent on a failed connection, in send order
    connecting: bool = False
    death_cause: str = ""
    keepalive: list = field(default_factory=list)  # the constructor's arguments
    restartable: bool = False  # owned and max_restarts != 0: keep ``keepalive``


class ActorManager:
    def __init__(self, worker: CoreWorker, links: Links) -> None:
        self.worker = worker  # its address, calls onto the loop, peers, control_call
        self.links = links  # the io loop, the control store (actor records, pubsub)
        self.tasks = worker.tasks  # completes and fails the calls
        self.actors: dict[str, ActorCalls] = {}
        self.by_conn: dict[Any, ActorCalls] = {}
        # per actor: calls posted to the loop and not yet queued or sent there; while
        # any exist a user thread may not send straight to the actor (it would
        # overtake them).  Sets, as add/discard from any thread are atomic.
        self.slow: dict[str, set] = {}
        self._subscribed = False  # to the control store's ``actor`` channel
        self._lending: ReadLending | None = None  # actor connections' reads (loop)
        self._sent = threading.local()  # per user thread: its last direct call
        self.scopes = ActorScopeTable()  # owned non-detached actors: when to terminate

    # ---- the direct path (user thread) ----------------------------------------------------
    def send_direct(self, task: PendingTask) -> bool:
        """Send an actor call from the calling thread when the actor is connected and
        nothing for it is queued: the loop is not woken for the submission (one thread
        switch less per call).  Its bookkeeping is queued for the loop, which runs it
        before handling any reply."""
        st = self.actors.get(task.spec.actor_id)
        if (st is None or not may_send(st.view) or st.queue or st.connecting
                or self.slow.get(st.actor_id)):
            return False
        conn = st.conn
        if conn is None or not conn.is_open():
            return False
        worker = self.worker
        task.advance(TaskEvent.PUSH)  # the loop has not seen it yet (register_direct)
        task.sent_on = conn
        task.sent_at = time.time()
        worker.post_lazy(self._register_direct, st, task)
        request_id = conn.call_from_thread(Method.PUSH_TASK, task.spec.to_wire(False),
                                           lambda f: self._on_reply(st, task, f, conn))
        self._sent.last = (task, conn, request_id)
        return True

    def read_reply(self, oid: bytes, done, deadline: float | None) -> None:
        """A user thread about to block for ``oid``: if it is the value of the call
        this thread sent last, read the reply off the actor's connection here rather
        than be woken by the loop (one thread wake-up less per sync call;
        :mod:`shoal.rpc.read_lending`).  Returns when ``done()``, or when the loop
        has to take over."""
        last = getattr(self._sent, "last", None)
        if last is None:
            return
        self._sent.last = None
        task, conn, request_id = last
        if task.return_ids[0] != oid or len(task.return_ids) != 1:
            return
        worker = self.worker
        conn.read_in_thread(request_id, lambda body: self.tasks.store_early(task, body),
                            done, deadline, worker.post, worker.post_lazy)

    def _register_direct(self, st: ActorCalls, task: PendingTask) -> None:
        self.tasks.register_direct(task)
        st.in_flight[task.spec.task_id] = task

    def note_slow(self, task: PendingTask) -> None:
        self.slow.setdefault(task.spec.actor_id, set()).add(task.spec.task_id)

    def slow_done(self, task: PendingTask) -> None:
        pending = self.slow.get(task.spec.actor_id)
        if pending is not None:
            pending.discard(task.spec.task_id)

    def shutdown(self) -> None:
        if self._lending is not None:
            self._lending.close()

    # ---- calls (loop) ----------------------------------------------------------------------
    def reserve(self, task: PendingTask) -> None:
        """Take the call's place in the actor's queue now, while its arguments may still
        be resolving: later calls wait behind it (Ray's per-caller ordering)."""
        st = self.state(task.spec.actor_id)
        self.slow_done(task)
        if st.view is not ActorState.DEAD:
            st.queue.append(task)  # held while RESOLVING (see _flush)

    def task_finished(self, task: PendingTask) -> None:
        """Before its final state: a call that ends while it waits in the queue (its
        argument's task raised, it was cancelled) leaves it, and the calls it held
        up may go."""
        self.slow_done(task)
        if task.state in WAITING_TO_RUN:
            st = self.actors.get(task.spec.actor_id)
            if st is not None and task in st.queue:
                st.queue.remove(task)
                if st.conn is not None and st.conn.is_open():
                    self._flush(st)

    def state(self, actor_id: str) -> ActorCalls:
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorCalls(actor_id)
            if not self._subscribed and self.links.control is not None:
                self._subscribed = True
                self.links.control.notify(Method.SUBSCRIBE, [Channel.ACTOR])
        return st

    # ---- creation (user thread) -----------------------------------------------------
    def create(self, spec: dict, keepalive: list, token: bytes | None) -> dict:
        """Create the actor; ``token``: the object id of its scope token (None for a
        detached actor, which is never terminated for being out of scope)."""
        reply = self.worker.control_call(Method.CREATE_ACTOR, spec)
        actor_id = reply["actor_id"]
        if not reply["existing"]:
            self.worker.post(self._created, actor_id, keepalive, token,
                             spec.get("max_restarts", 0) != 0)
        return reply

    def _created(self, actor_id: str, keepalive: list, token: bytes | None,
                 restartable: bool) -> None:
        st = self.state(actor_id)
        st.keepalive = keepalive
        st.restartable = restartable
        if token is not None:
            self.scopes.track(actor_id, token)
        self._ensure_connected(st)

    # ---- going out of scope (loop) -------------------------------------------------------
    def token_freed(self, token: bytes) -> None:
        """An object we owned was freed: if it is an actor's scope token, no strong
        handle to that actor is left anywhere."""
        actor_id = self.scopes.by_token.get(token)
        if actor_id is None:
            dead = self.scopes.dead_tokens.pop(token, None)
            if dead is not None:  # the last handle to a dead actor: its name is free
                self.links.control.notify(Method.RELEASE_ACTOR_NAME, [dead])
            return
        st = self.actors.get(actor_id)
        busy = st is not None and (bool(st.queue or st.in_flight or st.lost)
                                   or keeps_actor_busy(st.view))
        if self.scopes.token_freed(token, busy) is not None:
            self._kill_out_of_scope(actor_id)

    def _maybe_kill_idle(self, st: ActorCalls) -> None:
        if (not st.queue and not st.in_flight and not st.lost
                and not keeps_actor_busy(st.view)
                and self.scopes.idle(st.actor_id)):
            self._kill_out_of_scope(st.actor_id)

    def _kill_out_of_scope(self, actor_id: str) -> None:
        """Graceful, as Ray: ``__ray_shutdown__`` runs, then the process exits."""
        actor_shutdown.terminate(
            self.worker, actor_id, "The actor is dead because all references to the actor "
            "were removed (no handle to it is left in any process).")

    def enqueue_task(self, task: PendingTask) -> None:
        """The call is ready to send (arguments resolved), or is being retried."""
        st = self.state(task.spec.actor_id)
        self.slow_done(task)
        # never sent and in order: it has held its place in the queue (reserve)
        reserved = task.in_order and task.sent_on is None
        if st.view is ActorState.DEAD:
            if reserved and task in st.queue:
                st.queue.remove(task)
            self._fail(task, st)
            return
        if st.view is ActorState.RESTARTING and task.sent_on is None and task.retries_left == 0:
            # Ray's at-most-once default: a call without retries made while the actor
            # is known to be restarting fails at once instead of waiting for it
            if reserved and task in st.queue:
                st.queue.remove(task)
            self.tasks.fail_with(task, exceptions.ActorUnavailableError(
                f"The actor {st.actor_id} is restarting ({st.death_cause or 'it died'}); "
                f"{task.spec.name} has no retries (max_task_retries=0), so it fails at "
                "once instead of waiting for the actor to come back", st.actor_id))
            return
        if not reserved and task.sent_on is not None:
            # a retry: it was sent before every call not sent yet, which may wait for
            # its result (a later call taking it as argument): it goes before them,
            # after the retries queued before it (they keep their order)
            first_unsent = next((i for i, t in enumerate(st.queue) if t.sent_on is None),
                                len(st.queue))
            st.queue.insert(first_unsent, task)
        elif not reserved:
            st.queue.append(task)
        if st.conn is not None and st.conn.is_open():
            self._flush(st)
        else:
            self._ensure_connected(st)

    def _ensure_connected(self, st: ActorCalls, stale: str = "") -> None:
        if st.connecting:
            return
        st.connecting = True
        self.links.loop.create_task(self._connect(st, stale))

    async def _connect(self, st: ActorCalls, stale: str) -> None:
        """Ask where the actor is (not at ``stale``, the address seen failing) and
        connect.  With no lost calls to account for, a restart is waited out."""
        wait_restart = not st.lost
        try:
            record = await self.links.control.call(Method.GET_ACTOR, GetActorBody(
                st.actor_id, stale or None, wait_restart, st.num_restarts).to_wire())
        except Exception as exc:
            record = {"state": ActorState.DEAD.value, "death_cause": _lookup_failure(exc)}
        if not st.restartable:
            st.keepalive = []
        state = reported(record)
        if st.view is ActorState.DEAD:  # a DEAD notice came meanwhile: all settled
            st.connecting = False
            return
        if state is ActorState.DEAD:
            st.connecting = False
            self._mark_dead(st, record.get("death_cause") or "the actor died")
            return
        if st.lost and state is ActorState.ALIVE and record["address"] == st.address and (
                record.get("num_restarts", 0) == st.num_restarts):
            # an answer from before the store heard of the failure the lost calls saw
            st.connecting = False
            self._ensure_connected(st, st.address)
            return
        if st.lost:
            self._settle_lost(st, record)
        if state is not ActorState.ALIVE:  # RESTARTING: calls queue until it is back
            st.view = next_view(st.view, ViewEvent.RESTART_REPORTED)
            st.death_cause = record.get("death_cause", "")
            st.connecting = False
            self._ensure_connected(st, stale)
            return
        try:
            conn = await self.worker.peer(record["address"])
        except Exception as exc:
            st.connecting = False
            log.debug("actor %s unreachable at %s: %s", st.actor_id, record["address"], exc)
            st.num_restarts = record.get("num_restarts", 0)
            self._ensure_connected(st, record["address"])
            return
        st.connecting = False
        if st.view is ActorState.DEAD:  # a DEAD notice came while we connected
            return
        st.view = next_view(st.view, ViewEvent.CONNECTED)
        st.address = record["address"]
        st.num_restarts = record.get("num_restarts", 0)
        st.conn = conn
        if self._lending is None:
            self._lending = ReadLending(self.links.loop)
        conn.lend_reads(self._lending)
        self.by_conn[conn] = st
        self._flush(st)
        self._maybe_kill_idle(st)

    def _settle_lost(self, st: ActorCalls, record: dict) -> None:
        """The actor restarts (or has restarted): lost calls with retries left go back
        to the head of the queue in their order; the others fail."""
        lost, st.lost = st.lost, []
        retry = []
        cause = record.get("death_cause") or "its process died"
        for task in lost:
            if task.state is TaskState.CANCELLING:
                self.tasks.finish_cancelled(task)
            elif retry_allowed(task.retries_left):
                task.retries_left = use_retry(task.retries_left)
                task.advance(TaskEvent.RETRY)
                task.advance(TaskEvent.READY)
                retry.append(task)
            else:
                what = ("is restarting" if reported(record) is ActorState.RESTARTING
                        else "has restarted")
                self.tasks.fail_with(task, exceptions.ActorUnavailableError(
                    f"The actor {st.actor_id} {what} after it died ({cause}); "
                    f"{task.spec.name} was sent to the process that died and has no "
                    f"retries left (max_task_retries), so it is not sent again",
                    st.actor_id))
        st.queue.extendleft(reversed(retry))

    def _flush(self, st: ActorCalls) -> None:
        conn = st.conn
        while st.queue:
            if st.queue[0].state is not TaskState.QUEUED:
                break  # still resolving its arguments; the calls after it wait
            task = st.queue.popleft()
            task.advance(TaskEvent.PUSH)
            st.in_flight[task.spec.task_id] = task
            task.sent_on = conn
            task.sent_at = time.time()
            fut = conn.call(Method.PUSH_TASK, task.spec.to_wire(False))
            fut.add_done_callback(lambda f, t=task: self._on_reply(st, t, f, conn))

    def _on_reply(self, st: ActorCalls, task: PendingTask, fut, conn) -> None:
        exc = fut.exception() if not fut.cancelled() else ConnectionError("cancelled")
        if exc is None:
            # not in flight: already failed (a DEAD notice overtook this reply)
            if st.in_flight.pop(task.spec.task_id, None) is task:
                self.tasks.complete(task, TaskReply.from_wire(fut.result()))
        elif isinstance(exc, RemoteError):  # the process answered, with an error
            if st.in_flight.pop(task.spec.task_id, None) is task:
                self.tasks.fail_with(task, exceptions.RaySystemError(
                    f"the actor {st.actor_id} could not run {task.spec.name}: {exc}"))
        else:
            self.worker.drain_queued()  # a direct send's bookkeeping may still wait
            if st.in_flight.get(task.spec.task_id) is task:
                self._connection_failed(st, conn)
        self._maybe_kill_idle(st)

    def _connection_failed(self, st: ActorCalls, conn) -> None:
        """The connection to the actor's process failed: set aside every call sent on
        it (in send order) and ask the control store what became of the actor."""
        lost = [t for t in st.in_flight.values() if t.sent_on is conn]
        for task in lost:
            del st.in_flight[task.spec.task_id]
        st.lost.extend(lost)
        if st.conn is conn:
            self.by_conn.pop(conn, None)
            st.conn = None
        elif st.conn is not None:  # a straggler: we already reconnected elsewhere
            self._settle_lost(st, {"state": ActorState.ALIVE.value,
                                   "death_cause": st.death_cause})
            self._flush(st)
            return
        self._ensure_connected(st, st.address)

    def _mark_dead(self, st: ActorCalls, cause: str) -> None:
        st.view = next_view(st.view, ViewEvent.DIED)
        self.scopes.died(st.actor_id)
        st.death_cause = cause
        st.keepalive = []
        queued = st.lost + list(st.queue) + list(st.in_flight.values())
        st.lost = []
        st.queue.clear()
        st.in_flight.clear()
        for task in queued:
            self._fail(task, st)

    def _fail(self, task: PendingTask, st: ActorCalls) -> None:
        if task.state is TaskState.CANCELLING:
            self.tasks.finish_cancelled(task)
            return
        self.tasks.fail_with(task, exceptions.ActorDiedError(
            f"The actor {st.actor_id} is dead, so {task.spec.name} cannot run: "
            f"{st.death_cause}", st.actor_id))

    def connection_lost(self, conn) -> None:
        st = self.by_conn.pop(conn, None)
        if st is not None and st.conn is conn:
            st.conn = None

    def on_actor_update(self, record: dict) -> None:
        """``actor`` channel: a death ends the calls at once; a restart or a move of
        the process we are connected to drops that connection, so its calls take the
        failover path even if the old process is unreachable rather than dead."""
        st = self.actors.get(record["actor_id"])
        if st is None:
            return
        state = reported(record)
        if state is ActorState.DEAD:
            if st.view is not ActorState.DEAD:
                self._mark_dead(st, record.get("death_cause", ""))
            return
        if state is ActorState.RESTARTING and st.view is ActorState.ALIVE:
            # known now (calls without retries fail at once: enqueue_task); the
            # connect below waits for it to come back and makes it ALIVE again
            st.view = next_view(st.view, ViewEvent.RESTART_REPORTED)
            st.death_cause = record.get("death_cause", "")
        if st.conn is not None and (state is not ActorState.ALIVE
                                    or record.get("address") != st.address):
            st.conn.abort()
        if st.view is ActorState.RESTARTING and st.conn is None and not st.in_flight:
            self._ensure_connected(st, st.address)

    def cancel(self, task: PendingTask, force: bool, recursive: bool = True) -> None:
        """A call the actor has (CANCELLING; one still queued is finished at once by
        the task manager): tell the actor, or finish it if its connection failed.
        ``recursive``: the actor also cancels the tasks the call submitted."""
        st = self.actors.get(task.spec.actor_id)
        if st is None:
            return
        if task in st.lost:
            st.lost.remove(task)
            self.tasks.finish_cancelled(task)
        elif task.spec.task_id in st.in_flight and st.conn is not None:
            st.conn.notify(Method.CANCEL_TASK, [task.spec.task_id, force, recursive])


def _lookup_failure(exc: Exception) -> str:
    """The death cause of an actor whose record could not be fetched.  A store that
    answers it does not know the actor means a handle from an earlier cluster (Ray's
    wording, which users match on)."""
    if isinstance(exc, RemoteError) and exc.error_type == "LookupError":
        return ("the cluster's control store does not know this actor. It might be dead "
                f"or it's from a different cluster ({exc.message})")
    return f"the control store is unreachable: {exc}"
