"""Running tasks inside a worker process.

PUSH_TASK arrives on the io thread; the task runs elsewhere and the reply is
sent when it finishes:

* normal tasks and sync actors: the process's main thread, one at a time, in
  arrival order (so signals can interrupt a running task for ``cancel``).
  The owner pipelines several normal tasks to one worker; those not started
  yet can be taken back (STEAL_TASKS) for a worker that went idle;
* threaded actors (``max_concurrency > 1``): a thread pool of that size;
* async actors (any ``async def`` method): an event loop on its own thread,
  at most ``max_concurrency`` calls at once.

Reply: a :class:`~shoal.core.task_reply.TaskReply`, with one ``[index, value,
contained]`` per return, where ``value`` is inline bytes or the location in this node's store
and ``contained`` lists refs inside it.  A plain small value (an int, str, ...:
no buffers, no refs) is sent as just its pickle bytes, its index being its
position: a task with 3000 returns then sends no nested lists to build and
decode.  ``ran`` is ``[start, end]``: when this worker began the task (before
reading its arguments) and finished it (its returns stored), in seconds of
this machine's wall clock; the owner's task records use them (state API,
timeline).  Before replying, the worker registers
the caller as borrower of those refs, and itself as borrower of refs it got
in its arguments and still holds (see :mod:`reference_table`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import cloudpickle

from shoal import exceptions
from shoal.api.actor_exit import EXIT_REQUESTS
from shoal.api.object_ref import ObjectRef
from shoal.core import accelerator_env, ids, interrupts, proc_title
from shoal.core.actor_methods import BUILTIN_METHODS as _BUILTIN_METHODS
from shoal.core.actor_methods import construct as _construct
from shoal.core.actor_methods import exit_now as _exit_now
from shoal.core.actor_methods import method_of as _method_of
from shoal.core.concurrency_groups import ConcurrencyGroups, method_groups_of, started_pool
from shoal.core.context import new_event_loop
from shoal.core.core_worker import TaskContext, current_task
from shoal.core.error_envelope import safe_str
from shoal.core.idle_reads import IdleReads
from shoal.core.retire import Retirement
from shoal.core.serialization import (
    SerializationError,
    Serialized,
    deserialize_collecting,
    pickle_plain,
    serialize,
)
from shoal.core.stream_backpressure import send_item_and_wait
from shoal.core.task_reply import ReplyStatus, TaskReply
from shoal.core.task_returns import (
    check_generator_count,
    drain_async_generator,
    max_generator_returns,
    pack_yielded,
    split_returns,
)
from shoal.core.task_spec import (
    ARG_INLINE,
    ARG_VALUE,
    REF_NODE,
    REF_OBJECT,
    REF_OWNER,
    STREAMING,
    TaskKind,
    TaskSpec,
    names_a_node,
)
from shoal.core.value_wire import (
    INLINE_THRESHOLD,
    VALUE_INLINE,
    VALUE_PLASMA,
    error_value,
    value_to_wire,
)
from shoal.rpc import protocol
from shoal.rpc.actor_messages import ActorInstanceBody
from shoal.rpc.messages import Method
from shoal.rpc.transport import DeferredReply

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker

log = logging.getLogger("shoal.executor")


class _ArgumentsLost(Exception):
    """A normal task's shared-memory argument has no copy we could pull.  The task is
    handed back to its owner rather than waiting here: the rebuild may need the
    resources this worker's lease holds."""

    def __init__(self, oids: list[bytes]) -> None:
        super().__init__(f"{len(oids)} argument(s) lost")
        self.oids = oids


class _Cancelled(BaseException):
    """Raised inside a running task to cancel it (BaseException so user
    ``except Exception`` blocks do not swallow it)."""


# Not a task's error: they end the worker process, as they would end a program.
# Any other BaseException a task raises is its error (asyncio.CancelledError in an
# async actor is a cancellation).
_PROCESS_EXITS = (SystemExit, KeyboardInterrupt)
# what a generator task raises that ends the call rather than becoming its error
_PASS_THROUGH = (_Cancelled, *EXIT_REQUESTS, *_PROCESS_EXITS)


def _remote_traceback(exc: BaseException) -> str:
    """The traceback of a task's exception as text, from the task's own code: the
    executor's frames that called it are dropped."""
    te = traceback.TracebackException.from_exception(exc)
    here = _remote_traceback.__code__.co_filename  # as this module's frames name it
    while te.stack and te.stack[0].filename == here:
        del te.stack[0]
    return "".join(te.format())


class Executor:
    def __init__(self, worker: CoreWorker) -> None:
        self.worker = worker
        self.tasks = worker.tasks  # the tasks this process owns (a cancel reaches children)
        self.config = worker.config  # ASSIGN_JOB fills in the job's settings
        self.id_generator = worker.ids  # ASSIGN_JOB names the job in the ids it makes
        self.functions: dict[bytes, Any] = {}
        self.main_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.actor: Any = None
        self.actor_id: str | None = None
        self.actor_class_name = ""
        self.actor_name = ""
        self.actor_num_restarts = 0  # > 0: this process hosts a restarted actor
        self.actor_placement: list | None = None  # [pg_id, bundle index, capture]
        self.max_generator_returns = max_generator_returns()
        self.actor_accelerators: dict | None = None  # {"GPU": [ids]} for its whole life
        self.actor_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.actor_loop: asyncio.AbstractEventLoop | None = None
        self.actor_semaphore: asyncio.Semaphore | None = None
        self.running: dict[bytes, Any] = {}  # task_id -> thread ident or asyncio task
        self.started_at: dict[bytes, float] = {}  # running task_id -> its start (time())
        self.cancelled: set[bytes] = set()
        self.queued: dict[bytes, Any] = {}  # normal tasks not started: task_id -> reply
        self.queued_lock = threading.Lock()
        self.main_thread_id = threading.main_thread().ident
        self.interrupter: interrupts.TaskInterrupter | None = None  # (run_forever)
        self.idle_reads: IdleReads | None = None  # a sync actor's (see idle_reads.py)
        self.groups: ConcurrencyGroups | None = None  # the actor's concurrency groups
        self.runtime_env: dict = {}  # the runtime env this process was started in (if any)
        self.actor_resources: dict = {}  # what this process's actor holds
        self.exit_requested = False  # exit_actor() was called: no more replies, exit
        # Ray's rule: OMP_NUM_THREADS follows the task's CPUs unless it was set for us
        self.omp_set_by_user = "OMP_NUM_THREADS" in os.environ
        r = worker.router
        r.add(Method.PUSH_TASK, self.handle_push_task)
        r.add(Method.CANCEL_TASK, self.handle_cancel_task)
        r.add(Method.STEAL_TASKS, self.handle_steal_tasks)
        r.add(Method.CREATE_ACTOR_INSTANCE, self.handle_create_actor)
        r.add(Method.ASSIGN_JOB, self.handle_assign_job)
        r.add(Method.EXIT_WORKER, lambda conn, body: os._exit(0))
        self.retirement = Retirement(worker.links, worker.references,  # max_calls
                                     self.queued)
        r.add(Method.RETIRE_WORKER, self.retirement.handle_retire_worker)

    # ---- main thread ----------------------------------------------------------------
    def run_forever(self) -> None:
        self.interrupter = interrupts.TaskInterrupter(self.worker.loop, self.main_thread_id,
                                                      self.running, self.cancelled,
                                                      _Cancelled)
        signal.signal(signal.SIGINT, self._on_sigint)
        while True:
            item = self._next_item()
            if item is None:
                return
            item()

    def _next_item(self):
        reads = self.idle_reads
        if reads is None:
            return self.main_queue.get()
        while True:
            if reads.calls:  # read by this thread: ahead of anything queued since
                conn, request_id, body = reads.calls.popleft()
                return lambda: self._run_read_call(conn, request_id, body)
            try:
                return self.main_queue.get_nowait()
            except queue.Empty:
                reads.wait()

    def _to_main(self, item) -> None:
        self.main_queue.put(item)
        reads = self.idle_reads
        if reads is not None:
            reads.wake()

    def _run_read_call(self, conn, request_id: int, body) -> None:
        """A PUSH_TASK this (main) thread read itself: what the router and
        handle_push_task would have done; a sync actor's call runs at once."""
        try:
            spec = TaskSpec.from_wire(body)
        except Exception as exc:
            conn.send_from_thread(protocol.encode_error(request_id, type(exc).__name__,
                                                        str(exc)))
            return
        fut = DeferredReply()
        fut.bind(conn, request_id)
        if spec.kind is TaskKind.ACTOR_TASK and self._group_of(spec) is None:
            self._execute(spec, conn, fut)  # what _accept would queue for this thread
        else:
            self._accept(spec, conn, fut)

    def _on_sigint(self, signum, frame) -> None:
        # Ray's semantics: a cancelled normal task sees a KeyboardInterrupt, which it
        # may catch (is_canceled() is then True); uncaught, the task is cancelled.
        current = current_task.get()
        if current is not None and self.interrupter.should_raise(current.task_id, frame):
            raise KeyboardInterrupt("the task was cancelled")

    # ---- handlers (io thread) ------------------------------------------------------------
    def handle_assign_job(self, conn, body):
        job_id, job = body
        self.worker.job_id = job_id
        self.id_generator.set_job(job_id)  # the ids it makes name the job (Ray's)
        env_paths = self.runtime_env.get("paths") or []  # stay first (working_dir, py_modules)
        for path in reversed(job.get("sys_path", [])):
            if path not in sys.path:
                sys.path.insert(len(env_paths), path)
        cwd = job.get("cwd")
        if cwd and os.path.isdir(cwd) and not self.runtime_env.get("cwd"):
            try:
                os.chdir(cwd)
            except OSError:
                pass
        self.worker.namespace = job.get("namespace", "default")
        self.config.default_actor_lifetime = job.get("default_actor_lifetime", "non_detached")
        return None

    def handle_push_task(self, conn, body):
        fut = DeferredReply()
        self._accept(TaskSpec.from_wire(body), conn, fut)
        return fut

    def _accept(self, spec: TaskSpec, conn, fut: DeferredReply) -> None:
        """Start or queue a pushed task, by what this process runs."""
        if spec.function_bytes is not None and spec.function_id not in self.functions:
            self.functions[spec.function_id] = spec.function_bytes
        run = lambda: self._execute(spec, conn, fut)  # noqa: E731
        group = self._group_of(spec) if spec.kind is TaskKind.ACTOR_TASK else None
        if group is not None and self.actor_loop is not None:
            loop, semaphore = self.groups.loop(group)
            loop.call_soon_threadsafe(self._start_async, spec, conn, fut, loop, semaphore)
        elif group is not None:
            self.groups.submit(group, run)
        elif spec.kind is TaskKind.ACTOR_TASK and self.actor_loop is not None:
            self.actor_loop.call_soon_threadsafe(self._start_async, spec, conn, fut,
                                                 self.actor_loop, self.actor_semaphore)
        elif spec.kind is TaskKind.ACTOR_TASK and self.actor_pool is not None:
            self.actor_pool.submit(run)
        elif spec.kind is TaskKind.ACTOR_TASK:
            self._to_main(run)
        else:
            with self.queued_lock:
                self.queued[spec.task_id] = fut
            self._to_main(lambda: self._start_queued(spec, conn, fut))

    def _group_of(self, spec: TaskSpec) -> str | None:
        groups = self.groups
        return None if groups is None else groups.group_for(spec.method, spec.concurrency_group)

    def _start_queued(self, spec: TaskSpec, conn, fut) -> None:
        # decides the race with handle_steal_tasks: whoever takes the entry answers it.
        # Compare before removing: a stolen task may already be back, pushed again.
        with self.queued_lock:
            mine = self.queued.get(spec.task_id) is fut
            if mine:
                del self.queued[spec.task_id]
        if mine and self.retirement.retiring:  # max_calls reached: its owner queues it again
            fut.send(TaskReply(ReplyStatus.STOLEN).to_wire())
        elif mine:
            self._execute(spec, conn, fut)

    def _take_queued(self, task_id: bytes) -> DeferredReply | None:
        with self.queued_lock:
            return self.queued.pop(task_id, None)

    def handle_steal_tasks(self, conn, body):
        """Hand back the listed tasks that have not started; returns their ids."""
        stolen = []
        for task_id in body:
            fut = self._take_queued(task_id)
            if fut is not None:
                stolen.append(task_id)
                fut.send(TaskReply(ReplyStatus.STOLEN).to_wire())
        return stolen

    def handle_cancel_task(self, conn, body):
        task_id, force, recursive = body
        if recursive:
            self.tasks.cancel_children(task_id, force)
        queued = self._take_queued(task_id)
        if queued is not None:  # pipelined behind another task: answer now
            queued.send(TaskReply(ReplyStatus.CANCELLED).to_wire())
            return None
        self.cancelled.add(task_id)
        running = self.running.get(task_id)
        if running is None:
            return None  # queued: it will see the flag when dequeued
        if force:
            os._exit(1)
        if isinstance(running, asyncio.Task):
            running.get_loop().call_soon_threadsafe(running.cancel)
        elif self.actor_id is not None:
            pass  # Ray: a running sync/threaded actor call is not interrupted (it has
            #       state); the flag is what is_canceled() reads, and its result is
            #       TaskCancelledError
        else:
            self.interrupter.interrupt(task_id, running)  # (interrupts.py)
        return None

    def is_cancelled(self, task_id: bytes | None) -> bool:
        """``get_runtime_context().is_canceled()`` of the running call ``task_id``."""
        if self.actor_loop is not None:
            raise RuntimeError("This method is not supported in an async actor.")
        return task_id is not None and task_id in self.cancelled

    def handle_create_actor(self, conn, body):
        """An ``ActorInstanceBody``: run the constructor (main thread); the reply
        is None or the error text."""
        request = ActorInstanceBody.from_wire(body)
        self.actor_num_restarts = request.num_restarts
        self.actor_accelerators, self.actor_placement = request.accelerators, request.placement
        accelerator_env.apply(self.actor_accelerators)
        fut = DeferredReply()
        self._to_main(lambda: self._create_actor(request.actor_id, request.creation, fut))
        return fut

    # ---- actor creation (main thread) --------------------------------------------------------
    def _create_actor(self, actor_id: str, creation: bytes, fut) -> None:
        error = None
        ctx = TaskContext(task_id=None, task_name="__init__", actor_id=actor_id, rebuilt=[])
        token = current_task.set(ctx)
        try:
            info = cloudpickle.loads(creation)
            cls = info["cls"]
            self.actor_id = actor_id
            self.actor_class_name = cls.__name__
            self.actor_name = info.get("name") or ""  # get_runtime_context().get_actor_name()
            proc_title.set_idle(self.actor_class_name)
            args, kwargs = self._resolve_args(info["args"], info["kwarg_names"], ctx)
            is_async = any(
                inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                for _, m in inspect.getmembers(cls, predicate=inspect.isfunction)
            )
            concurrency = info.get("max_concurrency")
            self.actor_resources = info.get("resources") or {}
            self._set_omp_threads(self.actor_resources.get("CPU", 0))
            if is_async:  # before __init__: what it binds to the event loop binds to this one
                self._start_actor_loop(concurrency or 1000)
                asyncio.set_event_loop(self.actor_loop)
            self.actor = cls.__new__(cls)
            _construct(self.actor, self.actor_loop if is_async else None, args, kwargs)
            del args, kwargs
            self.groups = ConcurrencyGroups(info.get("concurrency_groups") or {},
                                            method_groups_of(cls), is_async)
            if not is_async and concurrency and concurrency > 1:
                self.actor_pool = started_pool(concurrency, "shoal-actor")
            elif not is_async:
                self.worker.post(self._start_idle_reads)
        except BaseException as exc:
            # A string: it becomes the actor's death_cause, in every ActorDiedError.
            error = (f"the constructor {self.actor_class_name or 'actor'}.__init__() "
                     f"(pid={os.getpid()}) raised {type(exc).__name__}: {safe_str(exc)}\n"
                     + _remote_traceback(exc))
        finally:
            current_task.reset(token)
        rebuilt = [r.object_id for r in ctx.rebuilt if r.owner_address != self.worker.address]
        ctx.rebuilt = None
        self._reply_after_registrations(fut, error, rebuilt)

    def _start_idle_reads(self) -> None:
        if self.idle_reads is None:
            self.idle_reads = IdleReads(self.worker, self.main_queue)

    def _start_actor_loop(self, concurrency: int) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            self.actor_loop = loop
            self.actor_semaphore = asyncio.Semaphore(concurrency)
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="shoal-actor-loop", daemon=True).start()
        ready.wait()

    # ---- running a task -------------------------------------------------------------------------
    def _function(self, spec: TaskSpec) -> Any:
        if spec.kind is TaskKind.ACTOR_TASK:
            if self.actor is None or spec.actor_id != self.actor_id:
                # e.g. a restarted actor's old address, reused by another worker
                raise exceptions.ActorDiedError(
                    f"this worker does not host actor {spec.actor_id}")
            builtin = _BUILTIN_METHODS.get(spec.method)
            if builtin is not None:
                return functools.partial(builtin, self.actor)
            return _method_of(self.actor, spec.method)
        fn = self.functions.get(spec.function_id)
        if isinstance(fn, bytes):
            fn = cloudpickle.loads(fn)
            self.functions[spec.function_id] = fn
        if fn is None:
            raise exceptions.RaySystemError(f"function {spec.name} was never sent to this worker")
        return fn

    def _resolve_args(self, wire_args: list, kwarg_names: list, ctx: TaskContext,
                      hand_back_lost: bool = False, in_place: bool = False):
        """``in_place``: arguments spilled on this node are mapped from their spill
        files, not restored (the task's ``_read_args_in_place`` option)."""
        values = []
        plasma = []
        for i, arg in enumerate(wire_args):
            if arg[0] == ARG_VALUE:
                data = Serialized.from_inline(arg[ARG_INLINE])
                values.append(deserialize_collecting(data, self.worker, ctx.rebuilt))
            else:
                values.append(None)
                plasma.append((i, arg))
        if plasma:
            self._fetch_ref_args(plasma, values, ctx, hand_back_lost, in_place)
        n = len(values) - len(kwarg_names)
        return values[:n], dict(zip(kwarg_names, values[n:], strict=False))

    def _fetch_ref_args(self, plasma: list, values: list, ctx: TaskContext,
                        hand_back_lost: bool, in_place: bool = False) -> None:
        worker = self.worker
        local = [(i, a) for i, a in plasma if a[REF_NODE] == worker.node_id]
        remote = [(i, a) for i, a in plasma if a[REF_NODE] != worker.node_id]
        if local:
            locations = worker.call(worker.pin_on_loop, [a[REF_OBJECT] for _, a in local], in_place)
            remote += self._read_located(local, locations, values, ctx, in_place)
        if remote:
            remote = self._pull_args(remote, values, ctx)
        if remote and hand_back_lost:
            lost = [a[REF_OBJECT] for _, a in remote if names_a_node(a[REF_NODE])]
            if lost:
                raise _ArgumentsLost(lost)
        if remote:
            refs = [ObjectRef(a[REF_OBJECT], a[REF_OWNER], worker) for _, a in remote]
            got = worker.get(refs, None)
            for (i, _), value in zip(remote, got, strict=False):
                values[i] = value
            del refs, got

    def _pull_args(self, remote: list, values: list, ctx: TaskContext) -> list:
        """Pull arguments whose copy is on another node (the node id their owner
        saw) through our agent; returns those to ask their owners about."""
        worker = self.worker
        direct = [(i, a) for i, a in remote
                  if names_a_node(a[REF_NODE]) and a[REF_NODE] != worker.node_id]
        if not direct:
            return remote
        locations = worker.locations.pull(
            [[a[REF_OBJECT], a[REF_OWNER], 0, [a[REF_NODE]]] for _, a in direct], None)
        left = [(i, a) for i, a in remote
                if not names_a_node(a[REF_NODE]) or a[REF_NODE] == worker.node_id]
        return left + self._read_located(direct, locations, values, ctx)

    def _read_located(self, args: list, locations: list, values: list,
                      ctx: TaskContext, sparse: bool = False) -> list:
        """Deserialize the pinned args from our store; returns those not found."""
        worker = self.worker
        missing = []
        for (i, arg), loc in zip(args, locations, strict=False):
            if loc is None:
                missing.append((i, arg))
                continue
            data = worker.shm.view(arg[REF_OBJECT], *loc, sparse=sparse)
            values[i] = deserialize_collecting(data, worker, ctx.rebuilt)
        return missing

    def _execute(self, spec: TaskSpec, conn, fut) -> None:
        if spec.task_id in self.cancelled:
            self.cancelled.discard(spec.task_id)
            self._post_reply(fut, TaskReply(ReplyStatus.CANCELLED).to_wire())
            return
        started = time.time()
        proc_title.set_title(spec.name)  # ray::<task name> while it runs
        ctx = TaskContext(spec.task_id, spec.name, self.actor_id, spec.resources, [])
        if spec.kind is TaskKind.NORMAL:
            ctx.placement, ctx.accelerators = spec.placement, spec.accelerators
            accelerator_env.apply(spec.accelerators)
            self._set_omp_threads(spec.resources.get("CPU", 0))
        token = current_task.set(ctx)
        self.running[spec.task_id] = threading.get_ident()
        self.started_at[spec.task_id] = started
        reply = None
        try:
            try:
                fn = ctx.function = self._function(spec)
                args, kwargs = self._resolve_args(spec.args, spec.kwarg_names, ctx,
                                                  hand_back_lost=spec.kind is TaskKind.NORMAL,
                                                  in_place=spec.args_in_place)
                result = fn(*args, **kwargs)
                del args, kwargs
                if spec.kind is TaskKind.ACTOR_TASK and spec.task_id in self.cancelled:
                    result = None  # cancelled while it ran: its result is the cancellation
                    raise _Cancelled()
                reply = self._package(spec, result, conn)
                del result
            except _Cancelled:
                reply = TaskReply(ReplyStatus.CANCELLED)
                interrupts.release_import_lock()
            except KeyboardInterrupt:
                if spec.task_id not in self.cancelled:
                    raise
                reply = TaskReply(ReplyStatus.CANCELLED)
                interrupts.release_import_lock()
            except _ArgumentsLost as lost:
                reply = TaskReply(ReplyStatus.ARGS_LOST, lost=lost.oids)
            except EXIT_REQUESTS:
                self.exit_process()
                return
            except _PROCESS_EXITS as exc:
                if threading.get_ident() == self.main_thread_id:
                    raise
                self._end_process_from_main(exc)  # a threaded actor's call: no reply
                return
            except BaseException as exc:  # a BaseException subclass is the task's error too
                reply = self._error_reply(spec, exc)
        except (_Cancelled, KeyboardInterrupt):  # the signal landed just after it finished
            if reply is None:
                reply = TaskReply(ReplyStatus.CANCELLED)
            interrupts.release_import_lock()
        finally:
            self.running.pop(spec.task_id, None)
            self.started_at.pop(spec.task_id, None)
            self.cancelled.discard(spec.task_id)
            self.interrupter.finished(spec.task_id)
            current_task.reset(token)
        self._finish(spec, ctx, fut, reply, started)

    def _start_async(self, spec: TaskSpec, conn, fut, loop, semaphore) -> None:
        loop.create_task(self._execute_async(spec, conn, fut, semaphore))

    async def _execute_async(self, spec: TaskSpec, conn, fut, semaphore) -> None:
        async with semaphore:
            if spec.task_id in self.cancelled:
                self.cancelled.discard(spec.task_id)
                self._post_reply(fut, TaskReply(ReplyStatus.CANCELLED).to_wire())
                return
            started = time.time()
            proc_title.set_title(spec.name)
            ctx = TaskContext(spec.task_id, spec.name, self.actor_id, spec.resources, [])
            current_task.set(ctx)
            self.running[spec.task_id] = asyncio.current_task()
            self.started_at[spec.task_id] = started
            try:
                if spec.backpressure:
                    raise ValueError(
                        f"{spec.name}: _generator_backpressure_num_objects is not supported "
                        "for an async actor's methods (its event loop cannot pause)")
                fn = ctx.function = self._function(spec)
                args, kwargs = self._resolve_args(spec.args, spec.kwarg_names, ctx)
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result) and not isinstance(result, ObjectRef):
                    result = await result  # a ref a method returns is its value (Ray)
                del args, kwargs
                if inspect.isasyncgen(result) and spec.is_generator():
                    reply = await self._stream_async(spec, result, conn)
                else:
                    if inspect.isasyncgen(result):  # num_returns=N: its N items
                        result = await drain_async_generator(
                            result, (asyncio.CancelledError, *_PASS_THROUGH))
                    reply = self._package(spec, result, conn)
            except (asyncio.CancelledError, _Cancelled):
                reply = TaskReply(ReplyStatus.CANCELLED)
            except EXIT_REQUESTS:
                self.exit_process()
                return
            except _PROCESS_EXITS as exc:
                self._end_process_from_main(exc)  # an async actor's call: no reply
                return
            except BaseException as exc:
                reply = self._error_reply(spec, exc)
            finally:
                self.running.pop(spec.task_id, None)
                self.started_at.pop(spec.task_id, None)
                self.cancelled.discard(spec.task_id)
        self._finish(spec, ctx, fut, reply, started)

    def _set_omp_threads(self, cpus: float) -> None:
        if not self.omp_set_by_user:
            value = str(max(1, int(cpus)))
            if os.environ.get("OMP_NUM_THREADS") != value:
                os.environ["OMP_NUM_THREADS"] = value

    def _end_process_from_main(self, exc: BaseException) -> None:
        """sys.exit() (or KeyboardInterrupt) in a call off the main thread ends the
        process, as it would on the main thread (its caller sees the actor die)."""
        def end() -> None:
            raise exc

        self._to_main(end)

    def exit_process(self) -> None:
        """After ``exit_actor()``: end this process from the main thread, running the
        atexit handlers; the calling call gets no reply (its caller sees the actor
        dead, with the exit as the cause)."""
        if threading.get_ident() == self.main_thread_id:
            _exit_now()
        self._to_main(_exit_now)

    def _error_reply(self, spec: TaskSpec, exc: BaseException) -> TaskReply:
        """The reply of a task that raised: a TaskError in every return.  Its
        pickle is an envelope that always loads (see error_envelope)."""
        tb = _remote_traceback(exc)
        actor_repr = f"{self.actor_class_name}({self.actor_id[:8]})" if self.actor_id else None
        cause = exc.cause if isinstance(exc, exceptions.TaskError) and exc.cause else exc
        err = exceptions.TaskError(spec.name, tb, cause, os.getpid(), actor_repr)
        exc.__traceback__ = None
        value = value_to_wire(error_value(err))
        if spec.is_generator():  # the error is the item after the last one yielded
            return TaskReply(ReplyStatus.APP_ERROR, [[1, value, []]], item_count=0)
        n = max(spec.num_returns, 1)
        return TaskReply(ReplyStatus.APP_ERROR, [[i + 1, value, []] for i in range(n)])

    def _package(self, spec: TaskSpec, result: Any, conn) -> TaskReply:
        if spec.is_generator():
            return self._stream(spec, result, conn)
        n = spec.num_returns
        returns: list = []  # what is stored so far is freed if the task fails
        pack = functools.partial(self._package_into, spec, returns)
        try:
            if inspect.isgenerator(result) and n:  # each stored as it is yielded
                error = pack_yielded(spec.name, result, n, pack, _PASS_THROUGH)
                if error is not None:  # Ray: what it yielded stays; the rest is the error
                    returns += self._error_reply(spec, error).returns[len(returns):]
            else:
                values = [result] if n == 1 else split_returns(spec.name, result, n) if n else []
                for i, value in enumerate(values):
                    pack(i + 1, value)
        except BaseException:
            written = [ids.object_id(spec.task_id, entry[0]) for entry in returns
                       if isinstance(entry, list) and entry[1][0] == VALUE_PLASMA]
            if written:  # nobody will hear of these copies
                self.worker.drop_written(written)
            raise
        return TaskReply(ReplyStatus.OK, returns)

    def _package_into(self, spec: TaskSpec, returns: list, index: int, value: Any) -> None:
        plain = pickle_plain(value, INLINE_THRESHOLD)
        returns.append(plain if plain is not None else self._package_value(spec, index, value))

    def _package_value(self, spec: TaskSpec, index: int, value: Any) -> list:
        data = serialize(value, f"the return value of {spec.name}()")
        contained = [[r.object_id, r.owner_address] for r in data.contained]
        if data.data_size() <= INLINE_THRESHOLD:
            wire = [VALUE_INLINE, data.to_inline()]
        else:
            oid = ids.object_id(spec.task_id, index)
            size = self.worker.write_plasma(oid, data, spec.owner, cold=spec.cold_returns)
            wire = [VALUE_PLASMA, self.worker.node_id, size]
        if contained:
            self._register_for_caller(spec.owner, contained)
        return [index, wire, contained]

    def _stream(self, spec: TaskSpec, result: Any, conn) -> TaskReply:
        if not hasattr(result, "__iter__"):
            raise TypeError(f"{spec.name}() has num_returns={spec.num_returns!r} "
                            "but did not return a generator")
        count = 0
        error = None
        try:
            for item in result:
                check_generator_count(spec.name, count + 1, self.max_generator_returns)
                count += 1
                self._stream_item(spec, count, item, conn)
        except (SerializationError, _Cancelled, *EXIT_REQUESTS, *_PROCESS_EXITS):
            raise
        except BaseException as exc:
            error = exc
        return self._stream_end(spec, count, error, conn)

    async def _stream_async(self, spec: TaskSpec, agen: Any, conn) -> TaskReply:
        """An async generator method's items, each sent as it is yielded."""
        count = 0
        error = None
        try:
            async for item in agen:
                check_generator_count(spec.name, count + 1, self.max_generator_returns)
                count += 1
                self._stream_item(spec, count, item, conn)
        except (SerializationError, asyncio.CancelledError, _Cancelled, *EXIT_REQUESTS,
                *_PROCESS_EXITS):
            raise
        except BaseException as exc:
            error = exc
        return self._stream_end(spec, count, error, conn)

    def _stream_item(self, spec: TaskSpec, index: int, item: Any, conn) -> None:
        entry = self._package_value(spec, index, item)
        if spec.backpressure and spec.num_returns == STREAMING:
            send_item_and_wait(conn, [spec.task_id] + entry)  # back-pressure
        else:
            conn.notify_from_thread(Method.GENERATOR_ITEM, [spec.task_id] + entry)

    def _stream_end(self, spec: TaskSpec, count: int, error: BaseException | None,
                    conn) -> TaskReply:
        """The reply of a generator task.  If it raised, the error comes in the reply
        (as the item after the last): its owner may retry the task (items it already
        has are not taken again) or make the error its last item."""
        if error is None:
            return TaskReply(ReplyStatus.OK, item_count=count)
        reply = self._error_reply(spec, error)
        reply.returns[0][0] = count + 1
        reply.item_count = count
        return reply

    def _register_for_caller(self, caller: str, contained: list) -> None:
        """Refs inside a return value: the caller becomes their borrower
        before we reply (see reference_table)."""
        worker = self.worker
        remote = []
        for oid, owner in contained:
            if owner == caller:
                continue
            if owner == worker.address:
                worker.post(worker.references.add_borrower, oid, caller)
            else:
                remote.append((owner, oid))
        if remote:
            async def register_all() -> None:
                await asyncio.gather(*[worker.register_at_owner(owner, oid, caller)
                                       for owner, oid in remote])

            worker.call(register_all)

    def _finish(self, spec: TaskSpec, ctx: TaskContext, fut, reply: TaskReply,
                started: float) -> None:
        reply.ran = [started, time.time()]  # this worker's clock
        self.retirement.ran(spec, reply)
        proc_title.set_idle(self.actor_class_name)
        rebuilt = [r.object_id for r in ctx.rebuilt if r.owner_address != self.worker.address]
        ctx.rebuilt = None
        self._reply_after_registrations(fut, reply.to_wire(), rebuilt)

    def _reply_after_registrations(self, fut, body: Any, rebuilt: list) -> None:
        """Reply (``body``, in its wire form) once we are registered as borrower
        of the foreign refs we got in this task's arguments and still hold (the
        caller keeps them alive until then)."""
        worker = self.worker
        if self.exit_requested:  # exit_actor() ran (even if its SystemExit was caught)
            self.exit_process()
            return
        if not rebuilt:
            self._post_reply(fut, body)
            return

        def start() -> None:
            async def run() -> None:
                try:
                    await worker.register_borrows(None, rebuilt)
                finally:
                    fut.send(body)

            worker.loop.create_task(run())

        worker.post(start)

    def _post_reply(self, fut: DeferredReply, body: Any) -> None:
        """Answer from this (task) thread: straight to the caller's socket."""
        fut.send(body)
