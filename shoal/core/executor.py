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

Reply: ``[status, returns, info, ran]`` with one ``[index, value, contained]`` per
return, where ``value`` is inline bytes or the location in this node's store
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
import ctypes
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
from shoal.core import accelerator_env, ids
from shoal.core.context import new_event_loop
from shoal.core.core_worker import INLINE_THRESHOLD, TaskContext, current_task
from shoal.core.error_envelope import safe_str
from shoal.core.idle_reads import IdleReads
from shoal.core.serialization import (
    SerializationError,
    Serialized,
    deserialize_collecting,
    pickle_plain,
    serialize,
)
from shoal.core.task_spec import (
    ARG_VALUE,
    STATUS_APP_ERROR,
    STATUS_ARGS_LOST,
    STATUS_CANCELLED,
    STATUS_OK,
    STATUS_STOLEN,
    TaskKind,
    TaskSpec,
)
from shoal.core.value_wire import VALUE_INLINE, VALUE_PLASMA, error_value, value_to_wire
from shoal.rpc import protocol
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
        self.functions: dict[bytes, Any] = {}
        self.main_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.actor: Any = None
        self.actor_id: str | None = None
        self.actor_class_name = ""
        self.actor_num_restarts = 0  # > 0: this process hosts a restarted actor
        self.actor_placement: list | None = None  # [pg_id, bundle index, capture]
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
        self.idle_reads: IdleReads | None = None  # a sync actor's (see idle_reads.py)
        r = worker.router
        r.add(Method.PUSH_TASK, self.handle_push_task)
        r.add(Method.CANCEL_TASK, self.handle_cancel_task)
        r.add(Method.STEAL_TASKS, self.handle_steal_tasks)
        r.add(Method.CREATE_ACTOR_INSTANCE, self.handle_create_actor)
        r.add(Method.ASSIGN_JOB, self.handle_assign_job)
        r.add(Method.EXIT_WORKER, lambda conn, body: os._exit(0))

    # ---- main thread ----------------------------------------------------------------
    def run_forever(self) -> None:
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
        if spec.kind is TaskKind.ACTOR_TASK:
            self._execute(spec, conn, fut)  # what _accept would queue for this thread
        else:
            self._accept(spec, conn, fut)

    def _on_sigint(self, signum, frame) -> None:
        current = current_task.get()
        if current is not None and current.task_id in self.cancelled:
            raise _Cancelled()

    # ---- handlers (io thread) ------------------------------------------------------------
    def handle_assign_job(self, conn, body):
        job_id, job = body
        self.worker.job_id = job_id
        for path in reversed(job.get("sys_path", [])):
            if path not in sys.path:
                sys.path.insert(0, path)
        cwd = job.get("cwd")
        if cwd and os.path.isdir(cwd):
            try:
                os.chdir(cwd)
            except OSError:
                pass
        self.worker.namespace = job.get("namespace", "default")
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
        if spec.kind is TaskKind.ACTOR_TASK and self.actor_loop is not None:
            self.actor_loop.call_soon_threadsafe(self._start_async, spec, conn, fut)
        elif spec.kind is TaskKind.ACTOR_TASK and self.actor_pool is not None:
            self.actor_pool.submit(run)
        elif spec.kind is TaskKind.ACTOR_TASK:
            self._to_main(run)
        else:
            with self.queued_lock:
                self.queued[spec.task_id] = fut
            self._to_main(lambda: self._start_queued(spec, conn, fut))

    def _start_queued(self, spec: TaskSpec, conn, fut) -> None:
        # decides the race with handle_steal_tasks: whoever takes the entry answers it.
        # Compare before removing: a stolen task may already be back, pushed again.
        with self.queued_lock:
            mine = self.queued.get(spec.task_id) is fut
            if mine:
                del self.queued[spec.task_id]
        if mine:
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
                fut.send([STATUS_STOLEN, [], None])
        return stolen

    def handle_cancel_task(self, conn, body):
        task_id, force, recursive = body
        if recursive:
            self.worker.tasks.cancel_children(task_id, force)
        queued = self._take_queued(task_id)
        if queued is not None:  # pipelined behind another task: answer now
            queued.send([STATUS_CANCELLED, [], None])
            return None
        self.cancelled.add(task_id)
        running = self.running.get(task_id)
        if running is None:
            return None  # queued: it will see the flag when dequeued
        if force:
            os._exit(1)
        if isinstance(running, asyncio.Task):
            self.actor_loop.call_soon_threadsafe(running.cancel)
        elif running == self.main_thread_id:
            os.kill(os.getpid(), signal.SIGINT)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(running), ctypes.py_object(_Cancelled))
        return None

    def handle_create_actor(self, conn, body):
        actor_id, creation = body[:2]
        self.actor_num_restarts = body[2] if len(body) > 2 else 0
        if len(body) > 4:
            self.actor_accelerators, self.actor_placement = body[3], body[4]
        accelerator_env.apply(self.actor_accelerators)
        fut = DeferredReply()
        self._to_main(lambda: self._create_actor(actor_id, creation, fut))
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
            args, kwargs = self._resolve_args(info["args"], info["kwarg_names"], ctx)
            self.actor = cls.__new__(cls)
            self.actor.__init__(*args, **kwargs)
            del args, kwargs
            is_async = any(
                inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                for _, m in inspect.getmembers(cls, predicate=inspect.isfunction)
            )
            concurrency = info.get("max_concurrency")
            if is_async:
                self._start_actor_loop(concurrency or 1000)
            elif concurrency and concurrency > 1:
                self.actor_pool = concurrent.futures.ThreadPoolExecutor(
                    concurrency, thread_name_prefix="shoal-actor")
            else:
                self.worker.post(self._start_idle_reads)
        except BaseException as exc:
            # A string: it becomes the actor's death_cause, in every ActorDiedError.
            error = (f"the constructor {self.actor_class_name or 'actor'}.__init__() "
                     f"(pid={os.getpid()}) raised {type(exc).__name__}: {safe_str(exc)}\n"
                     + _remote_traceback(exc))
        finally:
            current_task.reset(token)
        rebuilt = [r._id for r in ctx.rebuilt if r._owner != self.worker.address]
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
            return getattr(self.actor, spec.method)
        fn = self.functions.get(spec.function_id)
        if isinstance(fn, bytes):
            fn = cloudpickle.loads(fn)
            self.functions[spec.function_id] = fn
        if fn is None:
            raise exceptions.RaySystemError(f"function {spec.name} was never sent to this worker")
        return fn

    def _resolve_args(self, wire_args: list, kwarg_names: list, ctx: TaskContext,
                      hand_back_lost: bool = False):
        values = []
        plasma = []
        for i, arg in enumerate(wire_args):
            if arg[0] == ARG_VALUE:
                data = Serialized.from_inline(arg[1])
                values.append(deserialize_collecting(data, self.worker, ctx.rebuilt))
            else:
                values.append(None)
                plasma.append((i, arg))
        if plasma:
            self._fetch_ref_args(plasma, values, ctx, hand_back_lost)
        n = len(values) - len(kwarg_names)
        return values[:n], dict(zip(kwarg_names, values[n:], strict=False))

    def _fetch_ref_args(self, plasma: list, values: list, ctx: TaskContext,
                        hand_back_lost: bool) -> None:
        from shoal.api.object_ref import ObjectRef

        worker = self.worker
        local = [(i, a) for i, a in plasma if a[3] == worker.node_id]
        remote = [(i, a) for i, a in plasma if a[3] != worker.node_id]
        if local:
            locations = worker.call(worker._pin_on_loop, [a[1] for _, a in local])
            remote += self._read_located(local, locations, values, ctx)
        if remote:
            remote = self._pull_args(remote, values, ctx)
        if remote and hand_back_lost:
            lost = [a[1] for _, a in remote if a[3] not in ("", "?")]
            if lost:
                raise _ArgumentsLost(lost)
        if remote:
            refs = [ObjectRef(a[1], a[2], worker) for _, a in remote]
            got = worker.get(refs, None)
            for (i, _), value in zip(remote, got, strict=False):
                values[i] = value
            del refs, got

    def _pull_args(self, remote: list, values: list, ctx: TaskContext) -> list:
        """Pull arguments whose copy is on another node (the node id their owner
        saw) through our agent; returns those to ask their owners about."""
        worker = self.worker
        direct = [(i, a) for i, a in remote if a[3] not in ("", "?", worker.node_id)]
        if not direct:
            return remote
        locations = worker.locations.pull([[a[1], a[2], 0, [a[3]]] for _, a in direct], None)
        left = [(i, a) for i, a in remote if a[3] in ("", "?", worker.node_id)]
        return left + self._read_located(direct, locations, values, ctx)

    def _read_located(self, args: list, locations: list, values: list,
                      ctx: TaskContext) -> list:
        """Deserialize the pinned args from our store; returns those not found."""
        worker = self.worker
        missing = []
        for (i, arg), loc in zip(args, locations, strict=False):
            if loc is None:
                missing.append((i, arg))
                continue
            data = worker.shm.view(arg[1], *loc)
            values[i] = deserialize_collecting(data, worker, ctx.rebuilt)
        return missing

    def _execute(self, spec: TaskSpec, conn, fut) -> None:
        if spec.task_id in self.cancelled:
            self.cancelled.discard(spec.task_id)
            self._post_reply(fut, [STATUS_CANCELLED, [], None])
            return
        started = time.time()
        ctx = TaskContext(spec.task_id, spec.name, self.actor_id, spec.resources, [])
        if spec.kind is TaskKind.NORMAL:
            ctx.placement, ctx.accelerators = spec.placement, spec.accelerators
            accelerator_env.apply(spec.accelerators)
        token = current_task.set(ctx)
        self.running[spec.task_id] = threading.get_ident()
        self.started_at[spec.task_id] = started
        reply = None
        try:
            try:
                fn = self._function(spec)
                args, kwargs = self._resolve_args(spec.args, spec.kwarg_names, ctx,
                                                  hand_back_lost=spec.kind is TaskKind.NORMAL)
                result = fn(*args, **kwargs)
                del args, kwargs
                reply = self._package(spec, result, conn)
                del result
            except _Cancelled:
                reply = [STATUS_CANCELLED, [], None]
            except _ArgumentsLost as lost:
                reply = [STATUS_ARGS_LOST, [], {"lost": lost.oids}]
            except _PROCESS_EXITS:
                raise
            except BaseException as exc:  # a BaseException subclass is the task's error too
                reply = self._error_reply(spec, exc)
        except _Cancelled:  # the signal landed just after the task finished
            if reply is None:
                reply = [STATUS_CANCELLED, [], None]
        finally:
            self.running.pop(spec.task_id, None)
            self.started_at.pop(spec.task_id, None)
            self.cancelled.discard(spec.task_id)
            current_task.reset(token)
        self._finish(spec, ctx, fut, reply, started)

    def _start_async(self, spec: TaskSpec, conn, fut) -> None:
        self.actor_loop.create_task(self._execute_async(spec, conn, fut))

    async def _execute_async(self, spec: TaskSpec, conn, fut) -> None:
        async with self.actor_semaphore:
            if spec.task_id in self.cancelled:
                self.cancelled.discard(spec.task_id)
                self._post_reply(fut, [STATUS_CANCELLED, [], None])
                return
            started = time.time()
            ctx = TaskContext(spec.task_id, spec.name, self.actor_id, spec.resources, [])
            current_task.set(ctx)
            self.running[spec.task_id] = asyncio.current_task()
            self.started_at[spec.task_id] = started
            try:
                fn = self._function(spec)
                args, kwargs = self._resolve_args(spec.args, spec.kwarg_names, ctx)
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                del args, kwargs
                reply = self._package(spec, result, conn)
            except (asyncio.CancelledError, _Cancelled):
                reply = [STATUS_CANCELLED, [], None]
            except _PROCESS_EXITS:
                raise
            except BaseException as exc:
                reply = self._error_reply(spec, exc)
            finally:
                self.running.pop(spec.task_id, None)
                self.started_at.pop(spec.task_id, None)
                self.cancelled.discard(spec.task_id)
        self._finish(spec, ctx, fut, reply, started)

    def _error_reply(self, spec: TaskSpec, exc: BaseException) -> list:
        """The reply of a task that raised: a TaskError in every return.  Its
        pickle is an envelope that always loads (see error_envelope)."""
        tb = _remote_traceback(exc)
        actor_repr = f"{self.actor_class_name}({self.actor_id[:8]})" if self.actor_id else None
        cause = exc.cause if isinstance(exc, exceptions.TaskError) and exc.cause else exc
        err = exceptions.TaskError(spec.name, tb, cause, os.getpid(), actor_repr)
        exc.__traceback__ = None
        value = value_to_wire(error_value(err))
        if spec.is_generator():
            return [STATUS_APP_ERROR, [], {"error": value, "count": 0}]
        n = max(spec.num_returns, 1)
        return [STATUS_APP_ERROR, [[i + 1, value, []] for i in range(n)], None]

    def _package(self, spec: TaskSpec, result: Any, conn) -> list:
        if spec.is_generator():
            return self._stream(spec, result, conn)
        n = spec.num_returns
        if n == 1:
            values = [result]
        elif n == 0:
            values = []
        else:
            values = _split_returns(spec.name, result, n)
        returns = []
        for i, value in enumerate(values):
            plain = pickle_plain(value, INLINE_THRESHOLD)
            returns.append(plain if plain is not None
                           else self._package_value(spec, i + 1, value))
        return [STATUS_OK, returns, None]

    def _package_value(self, spec: TaskSpec, index: int, value: Any) -> list:
        data = serialize(value, f"the return value of {spec.name}()")
        contained = [[r._id, r._owner] for r in data.contained]
        if data.data_size() <= INLINE_THRESHOLD:
            wire = [VALUE_INLINE, data.to_inline()]
        else:
            oid = ids.object_id(spec.task_id, index)
            size = self.worker.write_plasma(oid, data, spec.owner)
            wire = [VALUE_PLASMA, self.worker.node_id, size]
        if contained:
            self._register_for_caller(spec.owner, contained)
        return [index, wire, contained]

    def _stream(self, spec: TaskSpec, result: Any, conn) -> list:
        if not hasattr(result, "__iter__"):
            raise TypeError(f"{spec.name}() has num_returns={spec.num_returns!r} "
                            "but did not return a generator")
        count = 0
        error = None
        try:
            for item in result:
                count += 1
                entry = self._package_value(spec, count, item)
                conn.notify_from_thread(Method.GENERATOR_ITEM, [spec.task_id] + entry)
        except (SerializationError, _Cancelled, *_PROCESS_EXITS):
            raise
        except BaseException as exc:
            error = self._error_reply(spec, exc)[2]["error"]
        info = {"count": count}
        if error is not None:
            count += 1
            info["count"] = count
            conn.notify_from_thread(Method.GENERATOR_ITEM,
                                   [spec.task_id, count, error, []])
        return [STATUS_OK, [], info]

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

    def _finish(self, spec: TaskSpec, ctx: TaskContext, fut, reply: list,
                started: float) -> None:
        reply.append([started, time.time()])  # ``ran``: this worker's clock
        rebuilt = [r._id for r in ctx.rebuilt if r._owner != self.worker.address]
        ctx.rebuilt = None
        self._reply_after_registrations(fut, reply, rebuilt)

    def _reply_after_registrations(self, fut, reply, rebuilt: list) -> None:
        """Reply once we are registered as borrower of the foreign refs we got
        in this task's arguments and still hold (the caller keeps them alive
        until then)."""
        worker = self.worker
        if not rebuilt:
            self._post_reply(fut, reply)
            return

        def start() -> None:
            async def run() -> None:
                try:
                    await worker.register_borrows(None, rebuilt)
                finally:
                    fut.send(reply)

            worker.loop.create_task(run())

        worker.post(start)

    def _post_reply(self, fut: DeferredReply, reply) -> None:
        """Answer from this (task) thread: straight to the caller's socket."""
        fut.send(reply)


def _split_returns(name: str, result: Any, n: int) -> list:
    """The ``n`` values a task declared with ``num_returns=n`` (n > 1) returned,
    or an error that names the task and says what it must return."""
    what = type(result).__name__
    if not isinstance(result, (str, bytes, bytearray, dict)):
        try:
            values = list(result)
        except TypeError:
            pass
        else:
            if len(values) == n:
                return values
            what = f"{what} of {len(values)} value{'s' if len(values) != 1 else ''}"
            raise ValueError(f"task {name} declared num_returns={n} but returned a {what}; "
                             f"it must return an iterable of {n} values")
    raise TypeError(f"task {name} declared num_returns={n} but returned {what}; it must "
                    f"return an iterable of {n} values (a tuple or a list)")
