"""The owner's side of a task: build, resolve dependencies, submit, complete.

Life of a task at its owner::

    submit_task (user thread)  serialize args; large ones become owned objects
      -> _submit (loop)        return ids owned; args counted as "submitted"
      -> _resolve              wait for top-level ref args; small ready values
                               are inlined into the spec, errors fail the task
      -> submitter.enqueue     (normal tasks: leases; actor tasks: the actor)
      -> complete / fail_system
                               store returns, release args, or retry

Retries: a task whose worker dies is re-queued up to ``max_retries`` times
(-1 = forever); an application exception is retried only if
``retry_exceptions`` is True or lists its type.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.api.object_ref import ObjectRef
from shoal.core import ids
from shoal.core.dependency_errors import consumer_error
from shoal.core.generator_state import GeneratorState
from shoal.core.lease_dispatch import scheduling_key
from shoal.core.lease_submitter import LeaseSubmitter
from shoal.core.serialization import Serialized, deserialize, serialize
from shoal.core.state_records import (
    DEPENDENCY_FAILED,
    ERROR_MESSAGE_LIMIT,
    TaskHistory,
    error_type_of,
)
from shoal.core.task_reply import ReplyStatus, TaskReply
from shoal.core.task_spec import (
    ARG_REF,
    ARG_VALUE,
    DYNAMIC,
    NODE_UNKNOWN,
    NODE_UNRESOLVED,
    REF_NODE,
    REF_OBJECT,
    REF_OWNER,
    STREAMING,
    TaskKind,
    TaskSpec,
    ref_arg,
    strategy_to_wire,
)
from shoal.core.task_state import (
    CancelStep,
    TaskEvent,
    TaskState,
    cancel_step,
    next_state,
    retry_allowed,
    use_retry,
)
from shoal.core.value_table import StoredValue
from shoal.core.value_wire import INLINE_THRESHOLD, error_value, value_from_wire
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.actor_manager import ActorManager
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links
    from shoal.core.object_locations import ObjectLocations
    from shoal.core.placement_client import BundleLocator

log = logging.getLogger("shoal.core")

ARGS_LOST_PAUSE_S = (0.05, 1.0)  # first and longest pause before re-queueing a handed-back task
ARGS_LOST_GIVE_UP = 60  # hand-backs (about a minute of pauses) before the task fails



@dataclass(eq=False)
class PendingTask:
    spec: TaskSpec
    return_ids: list[bytes]
    held: list[bytes]  # every ref the task keeps alive (args, nested refs)
    retries_left: int
    retry_exceptions: Any
    scheduling_key: tuple = ()
    parent_task_id: bytes | None = None
    state: TaskState = TaskState.SUBMITTED  # its lifecycle (task_state.py); advance() moves it
    unresolved: int = 0  # RESOLVING: ref arguments not ready yet
    running_on: Any = None  # PUSHED normal task: the LeasedWorker that has it
    sent_on: Any = None  # actor calls: the connection last used to send it
    generator: GeneratorState | None = None
    submit: Any = None  # how to queue it once resolved: the lease submitter or its actor
    keepalive: list = field(default_factory=list)
    actor_pin: Any = None  # actor calls: the handle's scope token, held until it finishes
    strategy: list | None = None  # scheduling strategy, wire form (task_spec.strategy_to_wire)
    runtime_env: dict | None = None  # resolved runtime env (shoal.runtime_env.spec)
    in_order: bool = True  # an actor call that keeps its place while its arguments resolve
    arg_locations: list | None = None  # [(node ids, size)] of shared-memory args (locality)
    ran_on: tuple = ()  # (worker id, node id) of the leased worker it was last pushed to
    error_type: str = ""  # why it failed, Ray's ErrorType names (state API)
    sent_at: float = 0.0  # wall-clock time it was last pushed to a worker (state API,
    #                       timeline: the owner's view of its start, if ran_at is unset)
    ran_at: list | None = None  # [start, end] the executing worker stamped in its reply
    #                       (its clock): what the records show when known
    returns_stored: bool = False  # its value was stored by the thread that read the reply
    args_handed_back: int = 0  # times a worker found no copy of an argument (ReplyStatus.ARGS_LOST)
    depth: int = 0  # 0: every argument was ready at submission; else 1 + its producers'
    #                 deepest (dependents run first, deepest first: lease_dispatch.ReadyQueue)
    queue_seq: int = -1  # its place among the dependents of its scheduling key
    dependents: list = field(default_factory=list)  # (task, arg index, arg) waiting for
    #                 one of its returns: resolved as it finishes, before the next dispatch

    def advance(self, event: TaskEvent) -> TaskState:
        """Apply a lifecycle event (InvalidTaskTransition if its state refuses it)."""
        self.state = next_state(self.state, event)
        return self.state


class TaskManager:
    def __init__(self, worker: CoreWorker, links: Links, locations: ObjectLocations,
                 placement: BundleLocator) -> None:
        self.worker = worker  # its ids, address, calls onto the loop, the executor
        # the parts it uses, made before it
        self.links = links  # the io loop, the node agent
        self.values = worker.value_table  # values of the tasks' returns
        self.references = worker.references  # the reference table (counts, lineage pins)
        self.recovery = worker.recovery  # lineage: rebuilding lost arguments
        self.unhandled = worker.unhandled  # task errors dropped unread
        self.locations = locations  # frees the copies of replaced returns
        # actor calls go there: set by the worker right after (it is built with us)
        self.actors: ActorManager | None = None
        self.pending: dict[bytes, PendingTask] = {}
        self.submitter = LeaseSubmitter(worker, self, links, locations, placement)
        self.history = TaskHistory()  # finished tasks, for the state API (bounded)
        worker.router.add(Method.GENERATOR_ITEM, self.handle_generator_item)
        worker.router.add(Method.CANCEL_BY_REF, lambda conn, body: self.cancel(*body))

    # ---- building (user thread) ------------------------------------------------------
    def build_args(self, name: str, args: tuple, kwargs: dict) -> tuple[list, list, list]:
        """Serialize arguments; returns (wire args, held ids, keepalive refs)."""
        if not args and not kwargs:
            return [], [], []
        worker = self.worker
        wire, held, keepalive = [], [], []
        values = list(args) + list(kwargs.values())
        for i, value in enumerate(values):
            if isinstance(value, ObjectRef):
                wire.append(ref_arg(value.object_id, value.owner_address))
                held.append(value.object_id)
                keepalive.append(value)
                continue
            what = (f"argument {i}" if i < len(args)
                    else f"keyword argument {list(kwargs)[i - len(args)]!r}")
            data = serialize(value, f"{what} of {name}()")
            held.extend(r.object_id for r in data.contained)
            keepalive.extend(data.contained)
            if data.data_size() > INLINE_THRESHOLD:
                oid = ids.object_id(worker.ids.task_id(), 0)
                stored = worker.store_owned(oid, data)
                worker.post(self.references.add_owned, oid, [r.object_id for r in data.contained])
                wire.append(ref_arg(oid, worker.address, stored.node_id))
                held.append(oid)
                keepalive.append(ObjectRef(oid, worker.address, worker))
            else:
                wire.append([ARG_VALUE, data.to_inline()])
        return wire, held, keepalive

    def submit(self, spec: TaskSpec, held: list[bytes], keepalive: list, max_retries: int,
               retry_exceptions: Any, strategy: Any = None,
               runtime_env: tuple[dict, str] = ({}, ""),
               in_order: bool = True, actor_pin: Any = None) -> list[ObjectRef] | Any:
        """User thread: register and post the task; return its refs at once."""
        worker = self.worker
        if spec.num_returns == STREAMING or spec.num_returns == DYNAMIC:
            # DYNAMIC: the ref of the generator of refs; STREAMING: the ref that is
            # ready when the task ends, with its error if it failed (completed())
            return_ids = [ids.object_id(spec.task_id, 0)]
        else:
            return_ids = [ids.object_id(spec.task_id, i + 1) for i in range(spec.num_returns)]
        ctx = worker.task_context.get()
        task = PendingTask(
            spec=spec,
            return_ids=return_ids,
            held=held,
            retries_left=max_retries,
            retry_exceptions=retry_exceptions,
            parent_task_id=ctx.task_id if ctx is not None else None,
            keepalive=keepalive,
            in_order=in_order,
            actor_pin=actor_pin,
        )
        if spec.kind is not TaskKind.ACTOR_TASK:  # actor calls go to their actor
            task.scheduling_key = scheduling_key(spec.resources, strategy, runtime_env[1])
            task.strategy = strategy_to_wire(strategy)
            task.runtime_env = runtime_env[0] or None
            if task.strategy is not None and task.strategy[0] == "PG":
                spec.placement = task.strategy[1:]  # the worker's get_current_placement_group
        if spec.num_returns == STREAMING:
            task.generator = GeneratorState(spec.task_id, spec.backpressure)
        elif spec.num_returns == DYNAMIC:
            task.generator = GeneratorState(spec.task_id)
        if spec.kind is TaskKind.ACTOR_TASK:
            task.submit = self.actors.enqueue_task
            if not held and task.generator is None and self.actors.send_direct(task):
                pass  # sent from this thread; the loop does the bookkeeping
            else:
                self.actors.note_slow(task)
                worker.post(self._submit, task)
        else:
            task.submit = self.submitter.enqueue
            worker.post(self._submit, task)
        # Counted by the loop's add_returns, which was queued above (before any drop).
        address, uncounted = worker.address, ObjectRef.uncounted
        refs = [uncounted(oid, address, worker) for oid in return_ids]
        if spec.num_returns == STREAMING:
            from shoal.api.generators import ObjectRefGenerator

            return ObjectRefGenerator(task.generator, worker, refs[0])
        return refs

    # ---- loop side ---------------------------------------------------------------------
    def register_direct(self, task: PendingTask) -> None:
        """Bookkeeping of an actor call a user thread already sent (see
        ActorManager.send_direct); runs before its reply is handled."""
        self.references.add_returns(task.return_ids)
        task.keepalive = []
        self.pending[task.spec.task_id] = task

    def _submit(self, task: PendingTask) -> None:
        refs = self.worker.references
        refs.add_returns(task.return_ids)
        refs.inc_submitted(task.held)
        task.keepalive = []  # counted now; the Python refs may go
        self.pending[task.spec.task_id] = task
        if task.spec.kind is TaskKind.ACTOR_TASK and task.in_order:
            self.actors.reserve(task)
        self._resolve(task)

    def _resolve(self, task: PendingTask) -> None:
        waiting = []
        for i, arg in enumerate(task.spec.args):
            if arg[0] != ARG_REF or arg[REF_NODE] != NODE_UNRESOLVED:
                continue
            value = self.values.get(arg[REF_OBJECT])
            if value is None:
                waiting.append((i, arg))
                continue
            if self._apply_arg(task, i, value, INLINE_THRESHOLD):
                return
        if not waiting:
            self._queue(task)
            return
        task.advance(TaskEvent.WAIT_ARGS)
        task.unresolved = len(waiting)
        producers = [self.pending.get(ids.task_of(arg[REF_OBJECT])) for _, arg in waiting]
        task.depth = 1 + max((p.depth for p in producers if p is not None), default=0)
        for (i, arg), producer in zip(waiting, producers, strict=True):
            if producer is not None and producer.generator is None:
                producer.dependents.append((task, i, arg))  # see _release_dependents
            else:
                self.links.loop.create_task(self._resolve_one(task, i, arg))

    @staticmethod
    def _queue(task: PendingTask) -> None:
        """Every argument is ready: its lease submitter's or its actor's queue takes it."""
        task.advance(TaskEvent.READY)
        task.submit(task)

    async def _resolve_one(self, task: PendingTask, i: int, arg: list) -> None:
        self._arg_ready(task, i, await self.worker.resolve(arg[REF_OBJECT], arg[REF_OWNER]))

    def _release_dependents(self, producer: PendingTask) -> None:
        """The producer finished and its returns are stored: resolve the tasks
        waiting for them now, on this turn of the loop, so that they are queued
        before the worker it freed is given its next task (ReadyQueue)."""
        dependents, producer.dependents = producer.dependents, []
        for task, i, arg in dependents:
            value = self.values.get(arg[REF_OBJECT])
            if value is None:  # not stored after all (freed meanwhile): ask for it
                self.links.loop.create_task(self._resolve_one(task, i, arg))
            else:
                self._arg_ready(task, i, value)

    def _arg_ready(self, task: PendingTask, i: int, value: StoredValue) -> None:
        if task.state is not TaskState.RESOLVING:  # failed or cancelled meanwhile
            return
        if self._apply_arg(task, i, value, INLINE_THRESHOLD):
            return
        task.unresolved -= 1
        if task.unresolved == 0:
            self._queue(task)

    def _apply_arg(self, task: PendingTask, i: int, value: StoredValue, limit: int) -> bool:
        """Put a ready dependency into the spec; True if it failed the task."""
        if value.is_error:
            task.error_type = DEPENDENCY_FAILED
            self._store_error(task, consumer_error(task.spec.name, value))
            self._finish(task, TaskEvent.FAIL)
            return True
        if value.inline is not None and value.inline.data_size() <= limit:
            task.spec.args[i] = [ARG_VALUE, value.inline.to_inline()]
        else:
            arg = task.spec.args[i]
            task.spec.args[i] = ref_arg(arg[REF_OBJECT], arg[REF_OWNER],
                                        value.node_id or NODE_UNKNOWN)
            if value.in_plasma:
                if task.arg_locations is None:
                    task.arg_locations = []
                task.arg_locations.append((value.locations, value.size))
        return False

    def complete(self, task: PendingTask, reply: TaskReply) -> None:
        status, returns = reply.status, reply.returns
        if reply.ran is not None:
            task.ran_at = reply.ran  # the executing worker's [start, end]
        if status is ReplyStatus.CANCELLED or (
                task.state is TaskState.CANCELLING and status is not ReplyStatus.OK):
            self.finish_cancelled(task)
            return
        if status is ReplyStatus.APP_ERROR and retry_allowed(task.retries_left) and returns:
            if self._should_retry_exception(task, returns[0][1]):
                self._retry(task)
                return
        if status is ReplyStatus.APP_ERROR:
            task.error_type = "TASK_EXECUTION_EXCEPTION"
        if task.generator is not None:  # its items came as GENERATOR_ITEMs; an error here
            error = value_from_wire(returns[0][1]) if returns else None
            self._finish_generator(task, reply.item_count, stored_error=error)
        elif not task.returns_stored:
            self._store_returns(task, returns)
        self._finish(task, TaskEvent.SUCCEED if status is ReplyStatus.OK else TaskEvent.FAIL)

    def store_early(self, task: PendingTask, body: list) -> bool:
        """Any thread: store the value of a call whose reply this thread read (the
        caller waiting for it, :meth:`ActorManager.read_reply`), so its ``get``
        returns before the loop runs the rest of ``complete``.  Only a plain value
        of a one-return call; False leaves everything to the loop."""
        reply = TaskReply.from_wire(body)
        returns = reply.returns
        if (reply.status is not ReplyStatus.OK or len(returns) != 1
                or returns[0].__class__ is not bytes
                or task.generator is not None or len(task.return_ids) != 1):
            return False
        task.returns_stored = True
        self.values.put(task.return_ids[0], StoredValue(Serialized(returns[0])))
        return True

    def _should_retry_exception(self, task: PendingTask, wire: list) -> bool:
        policy = task.retry_exceptions
        if not policy:
            return False
        if policy is True:
            return True
        from shoal.core.serialization import deserialize

        try:
            err = deserialize(value_from_wire(wire).inline, self.worker)
        except Exception:
            return False
        cause = getattr(err, "cause", err)
        return isinstance(cause, tuple(policy))

    def _retry(self, task: PendingTask) -> None:
        task.retries_left = use_retry(task.retries_left)
        task.advance(TaskEvent.RETRY)
        log.info("retrying task %s (%s)", task.spec.name, task.spec.task_id.hex())
        task.ran_at = None  # the next attempt's times, or none if it never answers
        self._queue(task)

    def fail_system(self, task: PendingTask, exc: BaseException, retry: bool) -> None:
        """The worker running the task died (or could not be reached)."""
        if task.spec.task_id not in self.pending:
            return
        if task.state is TaskState.CANCELLING:
            self.finish_cancelled(task)
            return
        if retry and retry_allowed(task.retries_left):
            self._retry(task)
            return
        err: BaseException
        if task.spec.kind is TaskKind.ACTOR_TASK:
            err = exc if isinstance(exc, exceptions.ActorError) else exceptions.ActorDiedError(
                f"the actor died while running {task.spec.name}: {exc}", task.spec.actor_id)
        elif isinstance(exc, exceptions.NodeDiedError):
            err = exc
        else:
            err = exceptions.WorkerCrashedError(
                f"the worker running {task.spec.name}() died before finishing it "
                f"({type(exc).__name__}: {exc})"
            )
        self.fail_with(task, err)

    def fail_with(self, task: PendingTask, err: BaseException,
                  event: TaskEvent = TaskEvent.FAIL) -> None:
        task.error_type = error_type_of(err)
        self._store_error(task, error_value(err))
        if task.generator is not None:
            self._finish_generator(task, len(task.generator.items), err)
        self._finish(task, event)

    def finish_cancelled(self, task: PendingTask) -> None:
        if task.spec.task_id not in self.pending:
            return
        self.fail_with(task, exceptions.TaskCancelledError(
            task.spec.task_id.hex(), f"task {task.spec.name} was cancelled"),
            TaskEvent.CANCELLED)

    def _error_message(self, task: PendingTask) -> str:
        """The failed task's error as text, with its traceback (state API, dashboard);
        only failures pay for it.  Empty when nobody holds the return any more."""
        value = self.values.get(task.return_ids[0]) if task.return_ids else None
        if value is None or not value.is_error:
            return ""
        try:
            return str(deserialize(value.inline))[:ERROR_MESSAGE_LIMIT]
        except Exception as exc:  # an error that cannot be read here: say so
            return f"(the error could not be read: {type(exc).__name__}: {exc})"

    def _store_error(self, task: PendingTask, value: StoredValue) -> None:
        for oid in task.return_ids:
            if oid in self.references.refs:
                self.values.put(oid, value)

    def _store_returns(self, task: PendingTask, returns: list) -> None:
        """One pass over the returns (entries ``[index, wire, contained]``, or the
        pickle bytes of a plain value at its position), one lock for all of them."""
        refs = self.worker.references
        table, task_id = refs.refs, task.spec.task_id
        # the ids submit made (index i + 1 at i), unless a generator's
        known = task.return_ids if task.generator is None else ()
        frees, stored = [], []
        for position, entry in enumerate(returns):
            if entry.__class__ is bytes:  # a plain small value (Executor._package)
                index, value, contained = position + 1, StoredValue(Serialized(entry)), None
            else:
                index, wire, contained = entry
                value = value_from_wire(wire)
            oid = known[index - 1] if 0 < index <= len(known) else ids.object_id(task_id, index)
            if oid not in table:
                # nobody holds the ref any more: drop the value right away
                self.unhandled.freed(oid, value)  # an error nobody will read
                if value.inline is None:
                    frees.append((oid, value))
                if contained:
                    refs.add_owned(oid)
                    refs.add_contained(oid, [tuple(c) for c in contained])
                    refs.release_if_unused(oid)
                continue
            if contained:
                refs.add_contained(oid, [tuple(c) for c in contained])
            stored.append((oid, value))
        if refs.values_freed:  # some of these may be rebuilds of freed values
            refs.value_stored([oid for oid, _ in stored])
        for oid, old, value in self.values.put_many(stored):
            if old.in_plasma:  # a rebuild: copies of the last run
                stale = old.locations - (value.locations if value.in_plasma else set())
                if stale:
                    frees.append((oid, StoredValue(node_id=next(iter(stale)), size=old.size,
                                                   locations=stale)))
        if frees:
            self.locations.free(frees)

    def _finish(self, task: PendingTask, event: TaskEvent) -> None:
        """Its outcome is stored: SUCCEED, FAIL or CANCELLED ends its lifecycle."""
        if task.spec.kind is TaskKind.ACTOR_TASK:
            task.actor_pin = None  # the actor may go out of scope now (actor_scope.py)
            self.actors.task_finished(task)  # (before: it reads the state)
        if self.pending.pop(task.spec.task_id, None) is None:
            return
        ok = task.advance(event) is TaskState.FINISHED
        self.history.finished(task, task.error_type,
                              self._error_message(task) if task.error_type else "")
        refs = self.worker.references
        if task.spec.kind is not TaskKind.ACTOR_CREATION:  # (an actor call with retries
            live = self._live_plasma_returns(task) if ok else []  # is re-run too: Ray's)
            kept = task if task.generator is None else \
                dataclasses.replace(task, generator=task.generator.for_lineage())
            added, released = self.recovery.lineage.task_finished(kept, ok, live)
            if added:  # keep the arguments' rows: a rebuild may need them
                refs.inc_lineage(task.held)
            for held in released:
                refs.dec_lineage(held)
        refs.dec_submitted(task.held)
        if task.generator is not None and task.generator.lost:
            self._rebuild_lost_items(task, ok)
        if task.dependents:
            self._release_dependents(task)
        self.worker.perform_actions()

    def _live_plasma_returns(self, task: PendingTask) -> list[bytes]:
        """Its returns in shared memory that are referenced (a generator's: its items,
        so lineage can make them again: the run re-yields them, handle_generator_item)."""
        refs, values = self.references.refs, self.values.values
        if task.generator is None:
            oids, lost = task.return_ids, ()
        else:
            oids = task.generator.item_ids()
            # items lost, or freed while another task's lineage needs them (it was
            # their reader), are made again by a rebuild too
            lost = {ids.object_id(task.spec.task_id, i) for i in task.generator.lost}
            lost.update(oid for oid in oids if self.references.value_was_freed(oid))
        return [oid for oid in oids
                if oid in refs and (oid in lost or (
                    (v := values.get(oid)) is not None and v.in_plasma))]

    def resubmit(self, done: PendingTask) -> None:
        """Run a finished task again to rebuild its lost returns (recovery.py).  Its
        arguments' rows were kept by its lineage entry; values freed since are
        rebuilt first (recursively) or, if they cannot be, fail it."""
        task = dataclasses.replace(
            done, state=TaskState.RETRYING, running_on=None, unresolved=0,
            dependents=[], queue_seq=-1,
            returns_stored=False, args_handed_back=0,
            keepalive=[], arg_locations=None, retries_left=use_retry(done.retries_left))
        self.references.inc_submitted(task.held)
        me = self.worker.address
        to_recover = []
        for arg in task.spec.args:
            if arg[0] == ARG_REF:
                arg[REF_NODE] = NODE_UNRESOLVED  # the node it was on may be gone
                if (arg[REF_OWNER] == me and self.values.get(arg[REF_OBJECT]) is None
                        and ids.task_of(arg[REF_OBJECT]) not in self.pending):
                    # next loop turn: a chain of freed links must not recurse here
                    self.links.loop.call_soon(self.recovery.rebuild_freed, arg[REF_OBJECT])
                else:
                    to_recover.append((arg[REF_OBJECT], arg[REF_OWNER]))
        self.pending[task.spec.task_id] = task
        if to_recover:
            self.links.loop.create_task(self._recover_args_then_resolve(task, to_recover))
        else:
            self._resolve(task)

    def arguments_lost(self, task: PendingTask, oids: list[bytes]) -> None:
        """The leased worker found no copy of these arguments and handed the task
        back unstarted: recover them, then queue it again (no retry is used up).
        Until the control store declares a dying node dead, its owner still lists
        the copies there; the hand-backs are then spaced out, and the task fails
        after ARGS_LOST_GIVE_UP of them."""
        if task.state is TaskState.CANCELLING:
            self.finish_cancelled(task)
            return
        task.args_handed_back += 1
        if task.args_handed_back > ARGS_LOST_GIVE_UP:
            self.fail_with(task, exceptions.ObjectLostError(
                oids[0].hex(), f"task {task.spec.name} was handed back "
                f"{ARGS_LOST_GIVE_UP} times because no node it could reach held its "
                f"argument {oids[0].hex()}, although the argument's owner still lists a "
                "live copy"))
            return
        task.advance(TaskEvent.HAND_BACK)
        lost = set(oids)
        task.arg_locations = None  # found again by _resolve
        args = []
        for arg in task.spec.args:
            if arg[0] == ARG_REF:
                arg[REF_NODE] = NODE_UNRESOLVED  # resolved again, with its locations
                if arg[REF_OBJECT] in lost:
                    args.append((arg[REF_OBJECT], arg[REF_OWNER]))
        pause = min(ARGS_LOST_PAUSE_S[0] * 2 ** (task.args_handed_back - 1),
                    ARGS_LOST_PAUSE_S[1])
        self.links.loop.create_task(self._recover_args_then_resolve(task, args, pause))

    async def _recover_args_then_resolve(self, task: PendingTask,
                                         args: list[tuple[bytes, str]],
                                         pause_if_unchanged: float = 0.0) -> None:
        """Make sure a task's shared-memory arguments have a live copy before it is
        leased: an argument lost with its node is rebuilt first (recursively), by its
        owner.  The task must not wait for it on a leased worker: that worker holds
        the resources (a custom resource, the node's only CPU) the rebuild may need."""
        before = {oid: self.values.get(oid) for oid, _ in args}
        values = await self.recovery.recover_many(args)
        if task.state is not TaskState.RETRYING:  # cancelled meanwhile
            return
        if pause_if_unchanged and all(
                before[oid] is not None and before[oid].locations == v.locations
                for oid, v in values.items()):
            await asyncio.sleep(pause_if_unchanged)  # the node may be dying
            if task.state is not TaskState.RETRYING:
                return
        for oid, value in values.items():
            if value.is_error:
                for i, arg in enumerate(task.spec.args):
                    if arg[0] == ARG_REF and arg[REF_OBJECT] == oid:
                        self._apply_arg(task, i, value, 0)
                        return
        self._resolve(task)

    # ---- generators --------------------------------------------------------------------------
    def handle_generator_item(self, conn, body):
        task_id, index, wire, contained = body
        task = self.pending.get(task_id)
        if task is None or task.generator is None:
            return None
        gen = task.generator
        if index in gen.items:  # a retry's repeat; or a rebuild's new copy
            if gen.finished_count is not None or index in gen.lost:
                gen.lost.discard(index)  # (the run had finished, or a reader wants it)
                self._store_returns(task, [[index, wire, contained]])
                return gen.hold_reply(index)
            return self._repeated_item(task, index, wire, contained)
        oid = ids.object_id(task_id, index)
        refs = self.worker.references
        refs.add_owned(oid)
        if contained:
            refs.add_contained(oid, [tuple(c) for c in contained])
        self.values.put(oid, value_from_wire(wire))
        task.generator.add(index, ObjectRef(oid, self.worker.address, self.worker))
        return task.generator.hold_reply(index)  # a request only under back-pressure

    async def _repeated_item(self, task: PendingTask, index: int, wire: list,
                             contained: list) -> None:
        """A retry re-yielded an item the caller has: Ray keeps the first value, unless
        every copy of it died (its node with the last attempt, say) before a reader
        asked for it again; then the new value is stored.  A new copy not kept is
        freed (on a node other than the kept one's: the id is the same)."""
        gen, oid = task.generator, ids.object_id(task.spec.task_id, index)
        new = value_from_wire(wire)
        old = self.values.get(oid)
        keep_new = False
        if old is not None and old.in_plasma and oid in self.references.refs:
            alive = await self.recovery.alive_nodes()
            keep_new = index in gen.lost or not (_copies(old) & alive)
        if keep_new:
            gen.lost.discard(index)
            if task.spec.task_id in self.pending:
                self._store_returns(task, [[index, wire, contained]])
        elif new.in_plasma and (old is None or not (_copies(new) & _copies(old))):
            self.locations.free([(oid, new)])
        fut = gen.hold_reply(index)
        if fut is not None:
            await fut
        return None

    def rebuild_while_running(self, oid: bytes) -> bool:
        """``oid``, an item of a generator task still running (or being retried), was
        lost or freed and a reader needs it: the task's next run yields it again
        (the current attempt's retry, or a rebuild once it finishes: _finish).  False
        if no run can make it (not a generator item, or no retry left)."""
        task = self.pending.get(ids.task_of(oid))
        if task is None or task.generator is None or task.retries_left == 0:
            return False
        index = ids.index_of(oid)
        if index not in task.generator.items or task.generator.finished_count is not None:
            return False
        task.generator.lost.add(index)
        return True

    def _rebuild_lost_items(self, task: PendingTask, ok: bool) -> None:
        """The run ended with items a reader wants again that it did not yield after
        they were lost: re-run it from lineage, or fail their readers."""
        gen = task.generator
        lost = [ids.object_id(task.spec.task_id, i) for i in sorted(gen.lost)]
        gen.lost.clear()
        lost = [oid for oid in lost
                if oid in self.references.refs and self.values.get(oid) is None]
        if not lost or (ok and self.recovery.rebuild_started(lost[0])):
            return
        failure = self.recovery.lost_error(lost[0])
        for oid in lost:
            self.references.value_stored([oid])
            self.values.put(oid, failure)

    def _finish_generator(self, task: PendingTask, item_count: int | None,
                          error: BaseException | None = None,
                          stored_error: StoredValue | None = None) -> None:
        gen = task.generator
        gen.release()
        count = len(gen.items) if item_count is None else item_count
        failure = stored_error if stored_error is not None else (
            error_value(error) if error is not None else None)
        if gen.finished_count is not None:  # a rebuild (lineage) ended: items it lost
            if failure is not None:           # and could not make again fail their readers
                self._fail_lost_items(gen, failure)
            return
        if failure is not None:
            # surface the failure as one more item, like an exception raised by next()
            index = count + 1
            oid = ids.object_id(task.spec.task_id, index)
            self.references.add_owned(oid)
            self.values.put(oid, failure)
            gen.add(index, ObjectRef(oid, self.worker.address, self.worker))
            count = index
        if task.spec.num_returns == DYNAMIC and task.return_ids:
            from shoal.api.generators import DynamicObjectRefGenerator

            items = [gen.items[i] for i in sorted(gen.items)]
            outer = task.return_ids[0]
            if outer in self.references.refs:
                data: Serialized = serialize(DynamicObjectRefGenerator(items), "generator")
                self.references.add_contained(outer, [(r.object_id, "") for r in items])
                self.values.put(outer, StoredValue(inline=data))
        elif task.spec.num_returns == STREAMING and task.return_ids:
            done = task.return_ids[0]
            values = self.worker.value_table
            if done in self.references.refs and values.get(done) is None:
                values.put(done, failure if failure is not None else StoredValue(
                    inline=serialize(None, "generator completion")))
        gen.finish(count)

    def _fail_lost_items(self, gen: GeneratorState, failure: StoredValue) -> None:
        refs, values = self.references.refs, self.worker.value_table
        for oid in gen.item_ids():
            if oid in refs and values.get(oid) is None:
                values.put(oid, failure)

    # ---- cancellation ---------------------------------------------------------------------------
    def cancel(self, oid: bytes, force: bool, recursive: bool) -> None:
        task = self.pending.get(ids.task_of(oid))
        if task is None:  # finished: a lost object of it is not rebuilt (lineage.py)
            self.recovery.lineage.task_cancelled(ids.task_of(oid))
            return
        step = cancel_step(task.state)
        if step is CancelStep.FINISH_NOW:  # no worker has it
            if task.state is TaskState.QUEUED and task.spec.kind is not TaskKind.ACTOR_TASK:
                self.submitter.remove_queued(task)
            self.finish_cancelled(task)  # (an actor call leaves its queue: task_finished)
        elif step is CancelStep.TELL_WORKER:
            task.advance(TaskEvent.CANCEL)
            if task.spec.kind is TaskKind.ACTOR_TASK:
                self.actors.cancel(task, force, recursive)
            elif task.running_on is not None and task.running_on.conn is not None:
                task.running_on.conn.notify(
                    Method.CANCEL_TASK, [task.spec.task_id, force, recursive])

    def kind_of(self, task_id: bytes) -> TaskKind | None:
        """A task's kind while it is pending or in the finished history (loop thread)."""
        task = self.pending.get(task_id)
        return task.spec.kind if task is not None else self.history.kind_of(task_id)

    def cancel_at_owner(self, owner: str, oid: bytes, force: bool, recursive: bool) -> None:
        """``cancel`` of a ref this process borrows: its owner cancels the task."""
        async def send() -> None:
            try:
                (await self.worker.peer(owner)).notify(Method.CANCEL_BY_REF,
                                                       [oid, force, recursive])
            except Exception as exc:  # the owner is gone: so is its task
                log.info("could not ask owner %s to cancel a task: %s", owner, exc)

        self.links.loop.create_task(send())

    def pending_children(self, parent_task_id: bytes) -> list[PendingTask]:
        """The tasks submitted from task ``parent_task_id`` that have not finished
        (what a recursive cancel reaches), from any thread: the loop's table plus the
        submissions posted to the loop and not yet registered there (read first, so
        a task moving from one to the other is not missed)."""
        found: dict[bytes, PendingTask] = {}
        for _ in range(10):  # another thread may change either while we copy it
            try:
                queued = [args[-1] for _fn, args in self.worker.queued_commands()
                          if args and isinstance(args[-1], PendingTask)]
                registered = list(self.pending.values())
                break
            except RuntimeError:
                continue
        else:
            queued, registered = [], []
        for task in queued + registered:
            if task.parent_task_id == parent_task_id and not task.state.is_final:
                found[task.spec.task_id] = task
        return list(found.values())

    def cancel_children(self, parent_task_id: bytes, force: bool) -> None:
        for task in self.pending_children(parent_task_id):
            self.cancel(task.return_ids[0] if task.return_ids
                        else ids.object_id(task.spec.task_id, 1), force, True)

    # ---- failures and shutdown -------------------------------------------------------------------
    def connection_lost(self, conn) -> None:
        self.submitter.connection_lost(conn)

    def shutdown(self) -> None:
        self.submitter.return_all()
        if self.links.node is not None:
            self.links.node.notify(Method.CANCEL_LEASE_REQUESTS, None)


def _copies(value: StoredValue) -> set:
    """The nodes holding a shared-memory value."""
    return set(value.locations) | ({value.node_id} if value.node_id else set())
