"""The core worker: the library inside the driver and inside every worker.

Threads
-------
User code runs on its own threads (the driver's main thread; a worker's main
thread executing tasks).  All shared state - the reference table, pending
tasks, leases, connections - belongs to one asyncio loop on a background
``shoal-io`` thread.  User threads reach it in two ways:

* ``post(fn, *args)`` appends to a command deque and wakes the loop once per
  batch; it preserves order (a ref's creation is always counted before its
  deletion) and costs ~1 us, so ``ObjectRef.__del__`` and ``f.remote()`` can
  use it freely.
* ``call(coroutine_fn, ...)`` runs something on the loop and waits for it.

The in-process :class:`ValueTable` is readable from any thread, so ``get`` of
a ready small value never touches the loop.

What this module holds: lifecycle, connections, the command queue, and the
object API (put/get/wait/free, borrower registration, GET_OBJECT).  Task
submission lives in :mod:`task_manager`, leases in :mod:`lease_submitter`,
actors in :mod:`actor_manager`, execution in :mod:`executor`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import enum
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from shoal import exceptions
from shoal.api.object_ref import ObjectRef
from shoal.core import adopt, context, ids
from shoal.core.actor_manager import ActorManager
from shoal.core.cluster_warnings import DriverWarnings
from shoal.core.cpu_lending import BlockedThreads, wait_before_lending
from shoal.core.import_path import driver_import_path
from shoal.core.links import Links
from shoal.core.object_locations import ObjectLocations
from shoal.core.owner_service import OwnerService
from shoal.core.placement_client import BundleLocator
from shoal.core.recovery import ObjectRecovery
from shoal.core.reference_table import Action, ActionKind, ReferenceTable
from shoal.core.serialization import Serialized, deserialize_values, serialize
from shoal.core.shm_window import ShmWindow
from shoal.core.state_records import StateReporter
from shoal.core.task_manager import TaskManager
from shoal.core.unhandled_errors import UnhandledErrors
from shoal.core.value_table import (
    StoredValue,
    ValuesWaiter,
    ValueTable,
    first_error,
    set_result_once,
)
from shoal.core.value_wire import (
    INLINE_THRESHOLD,
    VALUE_UNKNOWN,
    detach,
    error_value,
    value_from_wire,
)
from shoal.core.worker_output import CLOSE_WAIT_S, WorkerOutput
from shoal.rpc.messages import Channel, Method
from shoal.rpc.peers import PeerCache
from shoal.rpc.store_messages import AlreadyStored, StoreCreateBody
from shoal.rpc.transport import (
    Connection,
    RemoteError,
    Router,
    connect,
    serve,
    split_address,
    write_batch,
)

log = logging.getLogger("shoal.core")

LAZY_COMMANDS_S = 0.05  # reference-count changes wait at most this long for the loop
LAZY_COMMANDS_MAX = 256  # ... or until this many are queued
IDLE_TICKS = 20  # the tick stops after this many in a row found nothing to do

class Mode(enum.Enum):
    DRIVER = "driver"
    WORKER = "worker"


@dataclass
class WorkerConfig:
    mode: Mode
    control_address: str
    node_address: str
    token: str
    host: str = "127.0.0.1"
    worker_id: str = ""
    job_id: str = ""
    namespace: str = "default"
    node_id: str = ""
    default_actor_lifetime: str = "non_detached"  # the job's (JobConfig), for its actors


@dataclass
class TaskContext:
    task_id: bytes | None = None
    task_name: str = ""
    actor_id: str | None = None
    resources: dict | None = None
    rebuilt: list | None = None  # refs deserialized while running this task
    placement: list | None = None  # [pg_id, bundle index, capture]: its placement group
    accelerators: dict | None = None  # {"GPU": [ids]} assigned to it
    function: Any = None  # what it runs (get_runtime_context().get_task_function_name())


current_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "shoal_task", default=None
)


class CoreWorker:
    # what start() opens (core/links.py), read here as plain attributes
    loop = property(lambda self: self.links.loop)
    node = property(lambda self: self.links.node)
    control = property(lambda self: self.links.control)
    shm = property(lambda self: self.links.shm)
    peers = property(lambda self: self.links.peers)

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.mode = config.mode
        self.worker_id = config.worker_id or ids.random_hex(8)
        self.job_id = config.job_id
        self.namespace = config.namespace
        self.node_id = config.node_id
        self.ids = ids.IdGenerator(self.job_id)
        self.value_table = ValueTable()
        self.references = ReferenceTable()
        self.unhandled = UnhandledErrors()  # task errors dropped unread are logged
        self.address = ""
        self.router = Router()
        # loop, node, control, shm: opened by start(); peers' info gets our address then
        self.links = Links(PeerCache(self.router, config.token, {
            "name": f"{self.mode.value} {self.worker_id[:8]}", "address": ""}))
        self.runtime_envs: Any = None  # runtime_env.client.RuntimeEnvClient, set once started
        self._commands: collections.deque = collections.deque()
        self._tick_armed = False  # see _tick
        self._idle_ticks = 0  # ticks since the queue was last drained
        self._wakeup_pending = False
        self._thread: threading.Thread | None = None
        self._server = None
        self._fetching: dict[bytes, asyncio.Future] = {}
        self._registrations: dict[bytes, asyncio.Future] = {}  # our ADD_BORROWERs in flight
        self._blocked = BlockedThreads(lambda method: self.post(self.node.notify, method, None))
        self.shutting_down = False
        self.task_context = current_task
        self.warnings: DriverWarnings | None = None  # driver: the cluster's warnings to it
        self.output = WorkerOutput()  # driver: prints (and draws bars of) its workers' output
        links = self.links
        self.locations = ObjectLocations(self, links, self.value_table, self.references)
        self.recovery = ObjectRecovery(self, links, self.value_table, self.references,
                                       self.locations)
        self.placement = BundleLocator(self, links)  # where placement groups' bundles are
        self.tasks = TaskManager(self, links, self.locations, self.placement)
        self.actors = ActorManager(self, links)
        self.tasks.actors = self.actors  # (they call each other: one is given the other late)
        self.executor = None  # set by the worker entry point
        self.state_reporter = StateReporter(self, self.tasks, self.actors)  # WORKER_STATE
        self._register_handlers()

    # ---- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        ready = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="shoal-io", daemon=True
        )
        self._thread.start()
        ready.result(timeout)
        context.set_current_worker(self)

    def _run_loop(self, ready: concurrent.futures.Future) -> None:
        loop = context.new_event_loop()
        self.links.loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await self._connect()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)

        loop.create_task(boot())
        self._arm_tick()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:
                pass
            loop.close()

    async def _connect(self) -> None:
        cfg = self.config
        self._server = await serve(self.router, cfg.token, cfg.host, 0,
                                   server_info={"worker_id": self.worker_id})
        port = self._server.sockets[0].getsockname()[1]
        self.address = self.peers.info["address"] = f"{cfg.host}:{port}"
        name = f"{self.mode.value} {self.worker_id[:8]} pid={os.getpid()}"
        host, port = split_address(cfg.node_address)
        self.links.node = await connect(self.router, cfg.token, host, port, info={"name": name})
        host, port = split_address(cfg.control_address)
        if cfg.control_address == cfg.node_address:
            self.links.control = self.node
        else:
            self.links.control = await connect(self.router, cfg.token, host, port,
                                               info={"name": name})
        self.locations.lend_node_reads()
        info = await self.node.call(Method.NODE_INFO)
        self.node_id = info["node_id"]
        self.links.shm = ShmWindow(info["store_path"], self._on_view_released,
                                   lambda *delay_fn_args: self.post(self.loop.call_later,
                                                                    *delay_fn_args))
        if self.mode is Mode.DRIVER:
            reply = await self.control.call(Method.REGISTER_DRIVER, {
                "worker_id": self.worker_id,
                "address": self.address,
                "sys_path": driver_import_path(),
                "cwd": os.getcwd(),
                "namespace": self.namespace, "default_actor_lifetime": cfg.default_actor_lifetime,
                "pid": os.getpid(),
            })
            self.job_id = reply["job_id"]
            self.ids.set_job(self.job_id)
            self.warnings = DriverWarnings(self.job_id)
            await self.control.call(Method.SUBSCRIBE, [Channel.logs(self.job_id), Channel.NODE,
                                                       Channel.WARNINGS])
        else:
            self.control.notify(Method.SUBSCRIBE, [Channel.NODE])
            self.node.closed.add_done_callback(lambda _: self._node_lost())
            await self.node.call(Method.REGISTER_WORKER, [self.worker_id, os.getpid(),
                                                          self.address])

    def _node_lost(self) -> None:
        """The agent is gone: end our child processes (nobody else will), then exit."""
        if not self.shutting_down:
            log.info("node agent connection lost; worker exiting")
            from shoal.core.child_processes import kill_children

            kill_children(os.getpid(), signal.SIGKILL)
            os._exit(1)

    def shutdown(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        context.clear_current_worker(self)
        on_loop = threading.current_thread() is self._thread  # its output arrives there
        self.output.close(0 if on_loop else CLOSE_WAIT_S)
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        async def close() -> None:
            self.tasks.shutdown()
            self.actors.shutdown()
            self.locations.close()
            self.peers.close_all()
            for conn in {self.control, self.node}:
                if conn is not None:
                    conn.close()
            if self._server is not None:
                self._server.close()
            # tasks still waiting (a lease request, a fetch) end now, not when the
            # closed loop's garbage is collected ("Task was destroyed but it is pending")
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.2)
            loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop)
        except RuntimeError:
            return
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    # ---- talking to the loop ------------------------------------------------------------
    def post(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the loop, after everything posted before it."""
        self._commands.append((fn, args))
        if not self._wakeup_pending:
            self._wakeup_pending = True
            loop = self.loop
            if loop is None:
                return
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed during shutdown
                pass

    def _drain(self) -> None:
        """Run the posted commands, then count the dropped refs among them: their
        frees can wait (a late decrement never frees early), the messages the
        commands wrote (a task pushed) should not.  A task with 3000 returns
        waited ~10 ms for the frees of the previous one's refs."""
        self._wakeup_pending = False
        self._idle_ticks = 0
        commands = self._commands
        dropped = []
        with write_batch():
            while commands:
                item = commands.popleft()
                if item.__class__ is bytes:  # a dropped ref (ref_deleted)
                    dropped.append(item)
                    continue
                fn, args = item
                try:
                    fn(*args)
                except Exception:
                    log.exception("command %s failed", getattr(fn, "__name__", fn))
            if not dropped:
                self.perform_actions()
        if dropped:
            with write_batch():
                self.references.dec_local_many(dropped)
                self.perform_actions()

    def in_loop(self) -> bool:
        return self._thread is threading.current_thread()

    def call(self, fn, *args, timeout: float | None = None) -> Any:
        """Run coroutine function ``fn(*args)`` on the loop; wait for its result."""
        if self.in_loop():
            raise RuntimeError("blocking shoal call made from the event loop thread")
        fut = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()  # the coroutine stops too: nothing outlives the caller's timeout
            raise

    # Reference counting changes do not wake the loop: they ride along with the next
    # posted command, or the loop's tick picks them up within LAZY_COMMANDS_S.  Waking
    # the loop costs a syscall and a thread switch; for a sync call loop that was one
    # extra wake-up per call (the previous result's ref being dropped).
    def ref_created(self, oid: bytes, owner: str) -> None:
        self.post_lazy(self._inc_local, oid, owner)

    def ref_deleted(self, oid: bytes) -> None:
        # post_lazy inlined, and the command is the bare id (_drain counts a run of
        # them in one call): this runs once per dropped ref (10k for a get of an object
        # holding 10k refs), so each call level and allocation shows in the profile.
        if not self.shutting_down:
            commands = self._commands
            commands.append(oid)
            if not self._wakeup_pending and (not self._tick_armed
                                             or len(commands) > LAZY_COMMANDS_MAX):
                self.post(self._arm_tick)

    def count_rebuilt(self, container: bytes | None, refs: list) -> None:
        """Count refs rebuilt uncounted while unpickling one value; the value of
        ``container`` (a get) stays in scope until the new borrows are registered."""
        unregistered = self.references.count_rebuilt(refs, self.address)
        if container is not None and unregistered:
            self.loop.create_task(self.register_borrows(container, unregistered))

    def post_lazy(self, fn, *args) -> None:
        """Queue ``fn(*args)`` for the loop without waking it: it runs before the loop
        handles its next received message, at the next tick, or once
        LAZY_COMMANDS_MAX commands wait."""
        commands = self._commands
        commands.append((fn, args))
        if not self._wakeup_pending and (not self._tick_armed
                                         or len(commands) > LAZY_COMMANDS_MAX):
            self.post(self._arm_tick)

    def queued_commands(self) -> list[tuple]:
        """The ``(fn, args)`` commands posted and not run yet (a copy, from any thread;
        RuntimeError if another thread posts meanwhile: copy again)."""
        return [item for item in list(self._commands) if item.__class__ is tuple]

    def drain_queued(self) -> None:
        if self._commands:
            self._drain()

    def _arm_tick(self) -> None:
        if not self._tick_armed:
            self._tick_armed = True
            self.loop.call_later(LAZY_COMMANDS_S, self._tick)

    def _tick(self) -> None:
        """The tick stops after IDLE_TICKS with nothing queued, so an idle worker
        sleeps (1000 idle actors ticking every 50 ms took a whole CPU).  A poster
        that finds it stopped wakes the loop to restart it.  (Stopping at the first
        empty tick cost busy sync-call loops ~30%: it kept being restarted.)
        Clearing the flag before looking at the queue means a command appended
        meanwhile is seen here or by its poster."""
        self.drain_queued()
        self._idle_ticks += 1
        self._tick_armed = False
        if self._commands or self._idle_ticks < IDLE_TICKS:
            self._arm_tick()

    def _inc_local(self, oid: bytes, owner: str) -> None:
        self.references.inc_local(oid, "" if owner == self.address else owner)

    # ---- connections -----------------------------------------------------------------------
    async def peer(self, address: str) -> Connection:
        """A (cached) authenticated connection to another core worker or agent."""
        return await self.peers.get(address)

    # ---- reference actions ------------------------------------------------------------------
    def perform_actions(self) -> None:
        frees: list[bytes] = []
        while actions := self.references.take_actions():
            self._perform(actions, frees)
        if frees and self.node is not None:
            self.shm.forget(frees)
            self.node.notify(Method.STORE_FREE, frees)

    def _perform(self, actions: list[Action], frees: list[bytes]) -> None:
        freed, dropped = [], []  # values to delete: owned ones (free their copies), cached
        forgotten = self.recovery.lineage.object_forgotten
        FREE, FREE_VALUE = ActionKind.FREE, ActionKind.FREE_VALUE  # noqa: N806
        tokens = self.actors.scopes.by_token  # actors' scope tokens (actor_scope.py)
        dead = self.actors.scopes.dead_tokens  # ... of actors that died meanwhile
        for action in actions:
            kind = action.kind
            if kind is FREE:
                if (tokens or dead) and (action.object_id in tokens or action.object_id in dead):
                    self.actors.token_freed(action.object_id)
                held = forgotten(action.object_id)
                if held:  # its task's lineage is not needed any more: nor its args'
                    self.references.dec_lineage(held)
                freed.append(action.object_id)
            elif kind is FREE_VALUE:
                freed.append(action.object_id)
            elif kind is ActionKind.REMOVE_BORROWER:
                dropped.append(action.object_id)
                if action.count:
                    self.loop.create_task(self._send_remove_borrower(action))
            elif kind is ActionKind.REGISTER_BORROW:
                self._start_registration(action)
        store = self.value_table
        store.delete_many(dropped)
        for oid, value in store.delete_many(freed):
            self.unhandled.freed(oid, value)  # an error nobody read is reported
            if value.inline is None:
                if value.locations == {self.node_id}:
                    frees.append(oid)
                else:  # copies on other nodes too
                    self.locations.free([(oid, value)])
        self.unhandled.forget(dropped)

    async def _send_remove_borrower(self, action: Action) -> None:
        try:
            conn = await self.peer(action.owner)
            conn.notify(Method.REMOVE_BORROWER, [action.object_id, self.address, action.count])
        except Exception:
            pass  # owner gone: nothing left to release

    def _start_registration(self, action: Action) -> None:
        """Register ourselves as a borrower at the owner (REGISTER_BORROW action)."""
        if action.object_id not in self._registrations:
            self._registrations[action.object_id] = self.loop.create_future()
            self.loop.create_task(self._register_own(action))

    async def _register_own(self, action: Action) -> None:
        ok = await self.register_at_owner(action.owner, action.object_id, self.address)
        self.references.registration_done(action.object_id, ok)
        self.perform_actions()
        self._registrations.pop(action.object_id).set_result(ok)

    async def register_at_owner(self, owner: str, oid: bytes, borrower: str) -> bool:
        """ADD_BORROWER(oid, borrower) at ``owner``; True once acknowledged."""
        try:
            conn = await self.peer(owner)
            return bool(await conn.call(Method.ADD_BORROWER, [oid, borrower]))
        except Exception:
            return False

    async def register_borrows(self, container: bytes | None, oids: list[bytes]) -> None:
        """Register ourselves as borrower of newly seen refs; returns when every
        registration (ours, or one already in flight) is acknowledged."""
        for action in self.references.hold_until_registered(container, oids):
            self._start_registration(action)
        waits = [self._registrations[o] for o in set(oids) if o in self._registrations]
        if waits:
            await asyncio.gather(*waits)

    # ---- handlers ---------------------------------------------------------------------------
    def _register_handlers(self) -> None:
        r = self.router
        owner = OwnerService(self.value_table, self.references, self.recovery,
                             self.perform_actions)
        r.add(Method.GET_OBJECT, owner.handle_get_object)
        r.add(Method.ADD_BORROWER, owner.handle_add_borrower)
        r.add(Method.ADOPT_OBJECT, lambda conn, body: adopt.handle_adopt_object(self, conn, body))
        r.add(Method.REMOVE_BORROWER, owner.handle_remove_borrower)
        r.add(Method.PUBSUB_MESSAGE, self.handle_pubsub)
        r.add(Method.LEASE_INFEASIBLE, self.handle_lease_infeasible)
        r.on_close.append(self._on_connection_closed)
        r.before_receive = self.drain_queued

    def handle_pubsub(self, conn, body):
        channel, message = body
        if channel.startswith(Channel.LOGS):
            self.output.on_lines(message, self.node_id)
        elif channel == Channel.ACTOR:
            self.actors.on_actor_update(message)
        elif channel == Channel.WARNINGS and self.warnings is not None:
            self.warnings.received(message)
        elif channel == Channel.NODE and not message.get("alive"):
            self.tasks.submitter.node_died(message["node_id"], message.get("address", ""),
                                           message.get("cause", ""))
        return None

    def handle_lease_infeasible(self, conn, body):
        print(f"shoal: warning: {body[0]}", file=sys.stderr, flush=True)
        return None

    def _on_connection_closed(self, conn) -> None:
        address = conn.peer_info.get("address") if conn.peer_info else None
        if address:
            self.references.borrower_died(address)
            self.perform_actions()
        self.tasks.connection_lost(conn)
        self.actors.connection_lost(conn)

    # ---- objects: put ---------------------------------------------------------------------------
    def put(self, value: Any, owner: str | None = None) -> ObjectRef:
        """``owner``: the id of an actor that is to own the value (put(_owner=))."""
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling put on an ObjectRef is not allowed; put the value instead, "
                "or put a container holding the ref (e.g. [ref])"
            )
        if owner is not None:
            return adopt.put_owned_by(self, value, owner)
        data = serialize(value, "the value passed to put")
        oid = ids.object_id(self.ids.task_id(), 0)
        self.store_owned(oid, data)
        self.post(self.references.add_owned, oid, [r.object_id for r in data.contained])
        return ObjectRef(oid, self.address, self)

    def store_owned(self, oid: bytes, data: Serialized) -> StoredValue:
        """Store a value we own: inline if small, else in the node's store."""
        if data.data_size() <= INLINE_THRESHOLD or self.shm is None:
            value = StoredValue(inline=detach(data))
        else:
            size = self.write_plasma(oid, data)
            value = StoredValue(node_id=self.node_id, size=size, locations={self.node_id})
        self.value_table.put(oid, value)
        return value

    def write_plasma(self, oid: bytes, data: Serialized, owner: str = "",
                     cold: bool = False) -> int:
        """Copy into the local store (from any non-loop thread); returns size.  The
        agent frees the copy if ``owner`` (default: us) dies before freeing it.
        ``cold``: no reader wants it soon, so it is the first to spill (a task's
        ``_cold_returns`` option)."""
        size = data.store_size()
        body = StoreCreateBody(oid, size, owner or self.address, cold).to_wire()
        try:
            offset = self.call(_async_call, self.node, Method.STORE_CREATE, body)
            stored = AlreadyStored.from_reply(offset)
            if stored is not None:
                return stored.size  # an earlier run's copy stays
        except RemoteError as exc:
            if exc.error_type == "ObjectStoreFullError":
                raise exceptions.ObjectStoreFullError(exc.message) from None
            raise
        self.shm.write(offset, data)
        if owner:  # sealed before its owner hears of it: our death must not drop it (§17)
            self.call(_async_call, self.node, Method.STORE_SEAL, [oid])
        else:
            self.post(self.node.notify, Method.STORE_SEAL, [oid])
        return size

    def drop_written(self, oids: list[bytes]) -> None:
        """Free copies ``write_plasma`` made for a task's returns that its reply will
        not name (the task failed after writing them): nobody else knows of them."""
        if self.node is not None:
            self.post(self.node.notify, Method.STORE_FREE, oids)

    def _on_view_released(self, oid: bytes) -> None:
        if self.shutting_down or self.node is None:
            return
        self.post(self.node.notify, Method.STORE_RELEASE, [oid])

    # ---- objects: get / wait ---------------------------------------------------------------
    def get(self, refs: list[ObjectRef], timeout: float | None,
            in_place: bool = False) -> list[Any]:
        """``in_place``: a spilled object is read from its spill file, not restored."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = self._wait_values(refs, len(refs), deadline, True, fail_fast=True)
        if len(refs) > 1 and (failed := first_error(refs, values)) is not None:
            self.unhandled.read(r.object_id for r in refs)  # the caller saw the batch fail
            return deserialize_values([(failed.object_id, values[failed.object_id].inline)], self)
        views = self.recovery.pin_with_recovery(refs, values, deadline, in_place)
        items = []
        for ref in refs:
            oid = ref.object_id
            inline = values[oid].inline
            items.append((oid, views[oid] if inline is None else inline))
        try:  # (not a context manager: ~25% of a small get's time)
            return deserialize_values(items, self)
        except BaseException:
            self.unhandled.read(r.object_id for r in refs)  # an error raised here was read
            raise

    async def pin_on_loop(self, oids: list[bytes], in_place: bool = False) -> list:
        method = Method.STORE_GET_IN_PLACE if in_place else Method.STORE_GET
        return await self.node.call(method, oids)

    def ask_for_values(self, refs: list[ObjectRef]) -> bool:
        """Refs with no value here yet: fetch the borrowed ones from their owners,
        make ours that lineage freed again.  True if some are borrowed."""
        foreign = [(r.object_id, r.owner_address) for r in refs if r.owner_address != self.address]
        if foreign:
            self.post(self._start_fetches, foreign)
        if freed := self.references.values_freed:
            if ours := list(dict.fromkeys(r.object_id for r in refs if r.object_id in freed)):
                self.post(self.recovery.rebuild_if_freed, ours)
        return bool(foreign)

    def _wait_values(
        self, refs: list[ObjectRef], num: int, deadline: float | None, raise_timeout: bool,
        fail_fast: bool = False,
    ) -> dict[bytes, StoredValue]:
        """Block until ``num`` of ``refs`` have values (or, ``fail_fast``, one is an
        error); returns those ready (in the order of ``refs`` when no blocking)."""
        values = self.value_table.values
        ready: dict[bytes, StoredValue] = {}
        missing = []
        for ref in refs:
            value = values.get(ref.object_id)
            if value is None:
                missing.append(ref)
            else:
                ready[ref.object_id] = value
                if len(ready) >= num or (fail_fast and value.is_error):
                    return ready  # wait(num_returns=1) on a long list stops here
        if not missing:
            return ready
        oids = list(dict.fromkeys(ref.object_id for ref in missing))
        num = min(num, len(ready) + len(oids))  # get([r, r]): a duplicate counts once
        waiter = ValuesWaiter(ready, num, fail_fast)
        present = self.value_table.add_waiters(oids, waiter)
        for oid, value in present.items():
            waiter(oid, value)
        foreign = self.ask_for_values([r for r in missing if r.object_id not in present])
        try:
            if not waiter.done and not (foreign and self.mode is Mode.WORKER
                                        and wait_before_lending(waiter, deadline)):
                self.set_blocked(True)
                try:
                    if len(oids) == 1:
                        self.actors.read_reply(oids[0], lambda: waiter.done, deadline)
                    remaining = (None if deadline is None
                                 else max(0.0, deadline - time.monotonic()))
                    if not waiter.wait(remaining) and raise_timeout:
                        raise exceptions.GetTimeoutError(
                            f"get timed out: {len(ready)} of {num} objects ready after "
                            f"the timeout"
                        )
                finally:
                    self.set_blocked(False)
        finally:
            self.value_table.remove_waiters(oids, waiter)
        with waiter.lock:
            return dict(ready)

    def set_blocked(self, blocked: bool) -> None:
        """Lend the task's CPU to the node while it waits (cpu_lending.py)."""
        if self.mode is Mode.WORKER and self.node is not None:
            self._blocked.set(blocked)

    def _start_fetches(self, wanted: list[tuple[bytes, str]]) -> None:
        for oid, owner in wanted:
            self._start_fetch(oid, owner)

    def _start_fetch(self, oid: bytes, owner: str) -> None:
        if oid in self._fetching or self.value_table.contains(oid):
            return
        fut = self.loop.create_future()
        self._fetching[oid] = fut
        self.loop.create_task(self._fetch_from_owner(oid, owner, fut))

    async def _fetch_from_owner(self, oid: bytes, owner: str, fut: asyncio.Future) -> None:
        try:
            conn = await self.peer(owner)
            wire = await conn.call(Method.GET_OBJECT, oid)
            if wire[0] == VALUE_UNKNOWN:
                value = error_value(exceptions.ObjectFreedError(
                    oid.hex(), f"object {oid.hex()} was already freed by its owner {owner}"))
            else:
                value = value_from_wire(wire)
        except Exception as exc:
            value = error_value(exceptions.OwnerDiedError(
                oid.hex(),
                f"the owner of object {oid.hex()} ({owner}) died or is unreachable "
                f"({type(exc).__name__}: {exc}); its value cannot be read",
            ))
        finally:
            self._fetching.pop(oid, None)
        # Cache only while someone here still holds the ref.
        self.value_table.put(oid, value)
        if oid not in self.references.refs:
            self.value_table.delete(oid)
        if not fut.done():
            fut.set_result(value)

    async def resolve(self, oid: bytes, owner: str) -> StoredValue:
        """Loop side: wait for the value/location of any ref (owned or not)."""
        value = self.value_table.get(oid)
        if value is not None:
            return value
        fut = self.loop.create_future()
        loop = self.loop

        def ready(_oid, v):
            loop.call_soon_threadsafe(set_result_once, fut, v)

        value = self.value_table.add_waiter(oid, ready)
        if value is not None:
            self.value_table.remove_waiter(oid, ready)
            return value
        if owner != self.address:
            self._start_fetch(oid, owner)
        self.recovery.rebuild_if_freed([oid])  # ours, and lineage freed it: made again
        try:
            return await fut
        finally:
            if not fut.done():  # the caller gave up (its timeout): drop our waiter
                self.value_table.remove_waiter(oid, ready)

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None,
             ids: set[bytes] | None = None) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """``ids``: the set of ``refs``' ids, if the caller has it (no duplicates)."""
        if ids is not None and not ids.difference(self.value_table.values):
            return refs[:num_returns], refs[num_returns:]  # all ready: C-speed check
        deadline = None if timeout is None else time.monotonic() + timeout
        ready = self._wait_values(refs, num_returns, deadline, raise_timeout=False)
        ready_refs, not_ready = [], []
        for i, ref in enumerate(refs):
            if ref.object_id in ready:
                ready_refs.append(ref)
                if len(ready_refs) == num_returns:
                    return ready_refs, not_ready + refs[i + 1:]
            else:
                not_ready.append(ref)
        return ready_refs, not_ready

    # ---- small synchronous helpers for the API ---------------------------------------------------
    def control_call(self, method: Method, body: Any = None, timeout: float | None = 30) -> Any:
        """A control-store request; its ValueError/TypeError/LookupError come back as such."""
        try:
            return self._request(self.control, "the control store", method, body, timeout)
        except RemoteError as exc:
            builtin = _REMOTE_BUILTINS.get(exc.error_type)
            if builtin is not None:
                raise builtin(exc.message) from None
            raise

    def node_call(self, method: Method, body: Any = None, timeout: float | None = 30) -> Any:
        return self._request(self.node, "the node agent", method, body, timeout)

    def _request(self, conn: Connection, who: str, method: Method, body: Any,
                 timeout: float | None) -> Any:
        try:
            return self.call(_async_call, conn, method, body, timeout=timeout)
        except TimeoutError:
            raise exceptions.GetTimeoutError(
                f"{who} did not answer {method.name} within {timeout:g} s") from None


async def _async_call(conn: Connection, method: Method, body: Any) -> Any:
    return await conn.call(method, body)


_REMOTE_BUILTINS = {"ValueError": ValueError, "TypeError": TypeError,
                    "LookupError": LookupError, "KeyError": KeyError}
