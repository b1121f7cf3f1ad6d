"""The node agent: worker leases and the worker pool; it serves the node's object
store (:mod:`shoal.node.object_store`) and object transfer.

Lease protocol (owner = the core worker that wants to run tasks)::

    owner                      node agent                        worker
      | REQUEST_LEASE(shape) ->  |  queue until the shape fits       |
      |                          |  reserve resources, pick/spawn -> | (REGISTER_WORKER)
      | <- [lease, worker addr]  |                                   |
      | PUSH_TASK ... (direct, many, pipelined) ------------------->  |
      | RETURN_LEASE(lease) ---> |  resources back, worker idle      |

A worker blocked in ``get`` sends WORKER_BLOCKED: its CPUs go back to the
pool (so nested tasks can run) and are taken again, even oversubscribing,
on WORKER_UNBLOCKED.  A request no node could ever satisfy stays queued and
its requester is warned (LEASE_INFEASIBLE).

Spillback: a request that does not fit here, or that carries a scheduling
strategy, is placed by :mod:`shoal.node.cluster_view`; the reply may then be
a ``LeaseSpill`` (that node's id and address) instead of a ``LeaseGrant``, and the requester asks
that node's agent directly (marked *spilled*: it is never redirected again).
Object transfer between nodes is :mod:`shoal.node.object_transfer`.

Placement groups: bundles reserved here (:mod:`shoal.node.bundles`) are pools of
their own; a request with a ``["PG", ...]`` strategy is served only from its
group's bundles.  A grant carries the GPU ids it got (``{"GPU": [ids]}``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

from shoal.core.cluster_warnings import PoolSizeWarning, WarningType, warning
from shoal.exceptions import RuntimeEnvSetupError, TaskUnschedulableError
from shoal.node.accelerators import ids_of
from shoal.node.bundles import BundleService, bundle_of
from shoal.node.cluster_view import SPREAD, ClusterView, Decision
from shoal.node.leases import GrantStep, Lease, LeaseRequest, LeaseTable
from shoal.node.node_metrics import NodeMetrics
from shoal.node.object_store import ObjectStore, StoreConfig
from shoal.node.object_transfer import ObjectTransfer
from shoal.node.owner_watch import OwnerWatch
from shoal.node.resources import NodeResources, from_units, to_units
from shoal.node.state_service import StateService
from shoal.node.store_pressure_gc import StorePressureGc
from shoal.node.worker_logs import WorkerLogs, rotation_from_env
from shoal.node.worker_pool import ANY_TASK, FAILED_STARTS_LIMIT, Worker, WorkerPool, WorkerUse
from shoal.rpc.actor_messages import ActorInstanceBody, WorkerDiedBody
from shoal.rpc.lease_messages import (
    ActorLeaseBody,
    KillWorkerBody,
    LeaseGrant,
    LeaseRequestBody,
    LeaseSpill,
    ReturnLeaseBody,
)
from shoal.rpc.messages import Method
from shoal.rpc.node_messages import NodeHeartbeatBody
from shoal.rpc.transport import Router
from shoal.runtime_env.packaging import KV_NAMESPACE
from shoal.runtime_env.setup import RuntimeEnvSetup, default_root
from shoal.runtime_env.spec import env_hash

log = logging.getLogger("shoal.node")


@dataclass
class NodeConfig:
    node_id: str
    session: str
    address: str  # host:port other processes use to reach this agent
    resources: dict[str, float]
    object_store_memory: int
    prestart_workers: int
    worker_env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    spill_dirs: list[str] = field(default_factory=list)  # roots; the node's folder goes in each
    spill_high_water: float = 0.8  # spill when this fraction of the store is in use
    min_spill_bytes: int = 100 << 20  # fuse small objects into spill files of this size
    gpu_ids: list[str] = field(default_factory=list)  # ids of resources["GPU"] GPUs
    log_dir: str = ""  # the node's log folder: worker log files go there ("": none)


class NodeAgent:
    def __init__(self, config: NodeConfig, router: Router, control: object) -> None:
        self.config = config
        self.node_id = config.node_id
        self.control = control  # connection (socket or loopback) to the control store
        self.router = router
        self.cluster = ClusterView(config.node_id)
        self.resources = NodeResources(config.resources, config.gpu_ids or None)
        # settings that may be refused, before the store makes its arena and spill folders
        rotation = rotation_from_env() if config.log_dir else None
        self.store = ObjectStore(StoreConfig(
            capacity=config.object_store_memory, session=config.session,
            node_id=config.node_id, spill_dirs=config.spill_dirs,
            high_water=config.spill_high_water, min_spill_bytes=config.min_spill_bytes))
        self.store.hooks.changed = self._report_soon
        env = dict(config.worker_env)
        env.update(
            SHOAL_NODE_ID=config.node_id,
            SHOAL_NODE_ADDRESS=config.address,
            # the node process that started the worker (a worker may watch it); also
            # under Ray's name, so programs written for Ray that read it keep working
            SHOAL_NODE_PID=str(os.getpid()),
            RAY_RAYLET_PID=str(os.getpid()),
            SHOAL_STORE_PATH=self.store.path,
        )
        self.worker_logs = (WorkerLogs(config.log_dir, config.node_id, *rotation)
                            if rotation is not None else None)
        self.pool = WorkerPool(env, self._on_worker_output, self._on_worker_exit,
                               self.worker_logs, self._on_pool_size)
        self.pool_warning = PoolSizeWarning(config.resources.get("CPU", 0))
        self.runtime_envs = RuntimeEnvSetup(default_root(), self._kv_package, self.pool.env)
        self.actor_leases_seen = 0  # the highest actor lease number received (heartbeats)
        self.bundles = BundleService(self)  # placement-group bundles reserved here
        self.lease_table = LeaseTable(self.resources, self._bundle_pool)
        self.queue = self.lease_table.queue  # REQUESTED leases (leases.py)
        self.leases = self.lease_table.leases  # GRANTED and RETIRING, by id
        # lease grants waiting for a worker: (future, what the worker is for)
        self.worker_waiters: list[tuple[asyncio.Future, WorkerUse]] = []
        self._log_buffer: dict[str, list] = {}
        self._log_flush_scheduled = False
        self._report_scheduled = False
        self.jobs: dict[str, dict] = {}
        self.closing = False
        # Set from the control store's reply to REGISTER_NODE (control/membership.py).
        self.heartbeat_s = 1.0
        self.metrics = NodeMetrics()  # sent with each heartbeat, for /metrics
        self.transfer = ObjectTransfer(self, config.token)
        self.owner_watch = OwnerWatch(self)
        self.data_address = ""
        self._register(router)
        self.state_service = StateService(self)  # the state API's NODE_STATE
        self.store.hooks.sealed = StorePressureGc(self.state_service.clients).sealed

    def _register(self, router: Router) -> None:
        self.store.register(router)
        for method, handler in {
            Method.REGISTER_WORKER: self.handle_register_worker,
            Method.REQUEST_LEASE: self.handle_request_lease,
            Method.RETURN_LEASE: self.handle_return_lease,
            Method.CANCEL_LEASE_REQUESTS: self.handle_cancel_lease_requests,
            Method.WORKER_BLOCKED: self.handle_worker_blocked,
            Method.WORKER_UNBLOCKED: self.handle_worker_unblocked,
            Method.STORE_FREE: self.handle_store_free,
            Method.STORE_STATS: self.handle_store_stats,
            Method.KILL_WORKER: self.handle_kill_worker,
            Method.LEASE_ACTOR_WORKER: self.handle_lease_actor_worker,
            Method.NODE_INFO: self.handle_node_info,
            Method.STORE_PULL: self.handle_store_pull,
        }.items():
            router.add(method, handler)
        router.on_close.append(self._on_connection_closed)

    async def listen_data(self, host: str) -> None:
        """Open the port that serves object chunks to other nodes (before
        registering: the node table announces it)."""
        self.data_address = await self.transfer.start(host)

    async def start(self) -> None:
        """Start the fork server and, without waiting for them, the prestarted
        workers (the node is usable before they are)."""
        await self.pool.start()
        loop = asyncio.get_running_loop()
        for _ in range(self.config.prestart_workers):
            loop.create_task(self._prestart())
        loop.create_task(self._heartbeat_loop())

    async def _prestart(self) -> None:
        try:
            await self.pool.start_worker()
        except Exception as exc:
            if not self.closing:
                log.warning("could not prestart a worker: %s", exc)

    def info(self) -> dict:
        return {
            "node_id": self.node_id,
            "address": self.config.address,
            "data_address": self.data_address,
            "store_path": self.store.path,
            "resources_total": self.resources.total_floats(),
            "resources_available": self.available_with_store(),
            "store_capacity": self.store.table.capacity,
            "store_used": self.store.table.used,
            "num_workers": len(self.pool.workers),
        }

    def available_with_store(self) -> dict:
        available = self.resources.available_floats()
        table = self.store.table
        available["object_store_memory"] = float(table.capacity - table.used)
        return available

    # ---- workers -----------------------------------------------------------------
    def handle_register_worker(self, conn, body):
        worker_id, pid, address = body
        worker = self.pool.workers.get(worker_id)
        if worker is None:
            raise LookupError(f"unknown worker {worker_id}")
        worker.conn = conn
        worker.address = address
        conn.state["worker"] = worker
        conn.peer_info.setdefault("name", f"worker pid={pid}")
        self.pool.settle_registration(worker)
        self._make_idle(worker)
        return {"node_id": self.node_id}

    def _fail_worker_waiters(self, why: str) -> None:
        """Workers keep dying before they register (a broken install, an import error):
        the lease requests waiting for one fail with the reason instead of waiting for
        ever; the next request tries again."""
        self.pool.failed_starts = 0
        error = RuntimeError(f"{FAILED_STARTS_LIMIT} workers in a row on node "
                             f"{self.node_id} died while starting; the last: {why}")
        waiters, self.worker_waiters = self.worker_waiters, []
        for fut, _ in waiters:
            if not fut.done():
                fut.set_exception(error)

    def _make_idle(self, worker: Worker) -> None:
        worker.lease_id = None
        if worker.kill_signal:  # killed (a placement group's removal) but not yet exited:
            return              # handing it out would fail the next task or actor with it
        if worker.env_hash:  # serves only its env's requests (_obtain_env_worker)
            if not worker.reserved:
                self.pool.idle.append(worker)
                self._schedule()
            return
        fut = self._waiter_for(worker)
        if fut is not None:
            fut.set_result(worker)
            return
        self.pool.idle.append(worker)
        self._schedule()

    def _waiter_for(self, worker: Worker) -> asyncio.Future | None:
        """The waiting grant to hand ``worker`` to (Worker.can_serve): an actor never
        gets a worker that ran tasks (Ray's: what a task left behind, objects it owns
        included, must not die with the actor), so a fresh worker goes to the first
        actor waiting, and a used one to the first task it can serve."""
        waiters = self.worker_waiters
        waiters[:] = [w for w in waiters if not w[0].done()]
        picks = [i for i, (_, use) in enumerate(waiters) if worker.can_serve(use)]
        if not worker.ran_tasks:  # only a fresh worker can serve an actor: one first
            picks = [i for i in picks if waiters[i][1].for_actor] or picks
        return waiters.pop(picks[0])[0] if picks else None

    def _on_worker_output(self, worker: Worker, stream: str, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip("\n")
        if worker.job_id is None:
            log.info("worker %s %s: %s", worker.pid, stream, text)
            return
        self._log_buffer.setdefault(worker.job_id, []).append(
            [worker.pid, worker.label, stream, text]
        )
        if not self._log_flush_scheduled:
            self._log_flush_scheduled = True
            asyncio.get_running_loop().call_later(0.01, self._flush_logs)

    def _flush_logs(self) -> None:
        self._log_flush_scheduled = False
        buffers, self._log_buffer = self._log_buffer, {}
        for job_id, lines in buffers.items():
            self.control.notify(Method.PUBLISH_LOGS, [job_id, self.node_id, lines])

    def _on_pool_size(self, workers: int) -> None:
        """Many worker processes here: tell every driver (Ray's worker_pool_large)."""
        text = self.pool_warning.check(workers, self.node_id, self.config.address)
        if text is not None:
            log.warning("%s", text)
            self.control.notify(Method.PUBLISH_WARNING,
                                warning(WarningType.WORKER_POOL_LARGE, text).wire())

    def _on_worker_exit(self, worker: Worker) -> None:
        if self._log_buffer:
            self._flush_logs()
        if worker.lease_id is not None:
            self.lease_table.revoke(worker.lease_id)
            worker.lease_id = None
        if self.pool.failed_starts >= FAILED_STARTS_LIMIT:
            self._fail_worker_waiters(self.pool.last_start_failure)
        elif not self.closing and len(self.worker_waiters) > self.pool.starting:
            asyncio.get_running_loop().create_task(self.pool.start_worker())
        self.owner_watch.owner_died(worker.address)
        if not self.closing:
            self.control.notify(Method.WORKER_DIED, WorkerDiedBody(
                worker.worker_id, self.node_id, worker.actor_id, worker.returncode,
                worker.address or None).to_wire())
            self._schedule()

    def handle_kill_worker(self, conn, body):
        """A ``KillWorkerBody``: that worker, or the worker running that actor (its
        constructor may still run: the control store does not know the worker yet)."""
        kill = KillWorkerBody.from_wire(body)
        worker = self.pool.workers.get(kill.worker_id) if kill.worker_id is not None else None
        if worker is None and kill.actor_id is not None:
            worker = next((w for w in self.pool.workers.values()
                           if w.actor_id == kill.actor_id), None)
        if worker is not None:
            self.pool.kill(worker)
        return None

    def kill_job_workers(self, job_id: str) -> None:
        """The job's driver is gone: its task workers go too (actors are the
        control store's decision)."""
        for worker in list(self.pool.workers.values()):
            if worker.job_id == job_id and worker.actor_id is None:
                self.pool.kill(worker)

    # ---- leases ------------------------------------------------------------------
    def handle_request_lease(self, conn, body):
        """A ``LeaseRequestBody`` -> a ``LeaseGrant`` (see ``_grant``), a
        ``LeaseSpill``, or None if cancelled (each in wire form)."""
        request = LeaseRequestBody.from_wire(body)
        job_id, label, strategy = request.job_id, request.label, request.strategy
        spilled, env = request.spilled, request.runtime_env
        units = to_units(request.shape)
        bundle = bundle_of(strategy)
        if bundle is not None:
            self.bundles.table.check(bundle[0], bundle[1], units)
            return self._enqueue(LeaseRequest(units, job_id, label, conn, None,
                                              strategy=strategy, bundle=bundle,
                                              runtime_env=env))
        if not spilled and strategy and strategy[0] == SPREAD:
            return self._spread_lease(units, job_id, label, conn, strategy, env)
        return self._place_or_queue(units, job_id, label, conn, strategy, spilled, env)

    async def _spread_lease(self, units, job_id, label, conn, strategy, env=None):
        """SPREAD picks among the nodes with room *now*: the node table is read
        afresh first.  (The periodic copy is up to a heartbeat old: a node that
        had just finished some work still looked full, and every SPREAD request of
        a burst went to the other nodes.)"""
        if self.cluster.has_peers():
            await self.refresh_cluster()
            if not conn.is_open():
                return None  # the requester left meanwhile: nothing to queue
        reply = self._place_or_queue(units, job_id, label, conn, strategy, False, env)
        return await reply if isinstance(reply, asyncio.Future) else reply

    def _place_or_queue(self, units, job_id, label, conn, strategy, spilled, env=None):
        """A spill redirect, or the future of the request queued here."""
        if not spilled and (strategy or (not self.resources.fits(units)
                                         and self.cluster.has_peers())):
            placement = self.cluster.place(self.resources, units, strategy, False)
            if placement.decision is Decision.SPILL:
                return LeaseSpill(placement.node.node_id, placement.node.address).to_wire()
            if placement.decision is Decision.FAIL:
                raise TaskUnschedulableError(placement.reason)
        return self._enqueue(LeaseRequest(units, job_id, label, conn, None, strategy=strategy,
                                          spillable=not spilled, runtime_env=env))

    def _enqueue(self, request: LeaseRequest) -> asyncio.Future:
        request.future = asyncio.get_running_loop().create_future()
        self.lease_table.add(request)
        self._schedule()
        return request.future

    def _move_waiting(self) -> None:
        """Task lease requests queued here for a heartbeat period that still do not
        fit, while another node reports room for them now, go there (cluster_view.py):
        a request that came when this node looked free waited for as long as the
        actor that took the room lived."""
        now = time.monotonic()
        for request in list(self.queue):
            if (request.strategy or request.bundle or request.makes_actor
                    or request.for_actor or request.future is None or request.future.done()
                    or now - request.queued_at < self.heartbeat_s
                    or self.resources.fits(request.shape)):
                continue
            node = self.cluster.claim_room_elsewhere(request.shape)
            if node is None:
                return
            self.lease_table.drop(request)
            request.future.set_result(LeaseSpill(node.node_id, node.address).to_wire())

    def _respill(self) -> None:
        """A node joined: requests queued here that this node can never serve
        may go there now."""
        for request in list(self.queue):
            if not request.spillable or self.resources.feasible(request.shape):
                continue
            placement = self.cluster.place(self.resources, request.shape, request.strategy,
                                           False)
            if placement.decision is Decision.SPILL and not request.future.done():
                self.lease_table.drop(request)
                request.future.set_result(
                    LeaseSpill(placement.node.node_id, placement.node.address).to_wire())
        self._report_soon()

    async def refresh_cluster(self) -> None:
        """Re-read the node table from the control store."""
        try:
            nodes = await self.control.call(Method.GET_NODES)
        except Exception as exc:
            log.debug("could not refresh the node table: %s", exc)
            return
        if self.cluster.update(nodes):
            self._respill()

    def on_node_event(self, message: dict) -> None:
        """The ``node`` pubsub channel."""
        if not message.get("alive"):
            self.transfer.node_died(message.get("node_id", ""))
            asyncio.get_running_loop().create_task(self.owner_watch.probe_owners())
        if self.cluster.on_node_event(message):
            self._respill()

    def handle_cancel_lease_requests(self, conn, body):
        for request in self.lease_table.cancel_requests(conn):
            if not request.future.done():
                request.future.set_result(None)
        return None

    def schedule(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        """Perform the lease table's grant decisions."""
        if self.closing:
            return
        for step, request in self.lease_table.schedule():
            if step is GrantStep.WARN_INFEASIBLE:
                self._warn_infeasible(request)
            else:
                asyncio.get_running_loop().create_task(self._grant(request))
        self._report_soon()

    def _bundle_pool(self, request: LeaseRequest) -> NodeResources | None:
        picked = self.bundles.pick(request)
        return None if picked is None else picked[1]

    def _warn_infeasible(self, request: LeaseRequest) -> None:
        message = (
            f"a task or actor requires {from_units(request.shape)} but no node in the "
            f"cluster has these resources (this node has {self.resources.total_floats()}); "
            "it stays pending until a node that fits joins"
        )
        log.warning(message)
        if hasattr(request.requester, "notify"):
            request.requester.notify(Method.LEASE_INFEASIBLE, [message])

    async def _grant(self, request: LeaseRequest) -> None:
        use = _use_of(request)
        try:
            if request.runtime_env:
                worker = await self._obtain_env_worker(request.job_id, request.runtime_env,
                                                       use)
            else:
                worker = await self._obtain_worker(request.job_id, use)
        except Exception as exc:
            self.lease_table.grant_failed(request)
            if not request.future.done():
                request.future.set_exception(exc)
            self._schedule()
            return
        closed = getattr(request.requester, "closed", None)
        if request.future.done() or (closed is not None and closed.done()):
            # the requester gave up or disconnected meanwhile: nobody would return it
            self.lease_table.grant_failed(request)
            self._make_idle(worker)
            self._schedule()
            return
        lease = self.lease_table.granted(request, worker)
        worker.lease_id = lease.lease_id
        worker.leased_for(use)
        worker.label = request.label
        leases = getattr(request.requester, "state", {}).setdefault("leases", set())
        leases.add(lease.lease_id)
        self.metrics.lease_latency.observe(time.monotonic() - request.queued_at)
        request.future.set_result(LeaseGrant(
            lease.lease_id, worker.worker_id, worker.address, self.node_id,
            from_units(request.shape), {"GPU": ids_of(lease.gpus)} if lease.gpus else None,
        ).to_wire())

    async def _obtain_worker(self, job_id: str, use: WorkerUse = ANY_TASK) -> Worker:
        """An idle worker for the job that can serve ``use``; otherwise wait for one
        that is starting, and start another only if every starting worker is already
        spoken for."""
        worker = self.pool.pop_idle(job_id, use=use)
        if worker is None:
            fut = asyncio.get_running_loop().create_future()
            self.worker_waiters.append((fut, use))
            if len(self.worker_waiters) > self.pool.starting:
                try:
                    await self.pool.start_worker()
                except BaseException:
                    if not fut.done():
                        self.worker_waiters.remove((fut, use))
                        raise
                    # another worker came to us meanwhile: use it
            worker = await fut
        if worker.job_id != job_id:
            await self._assign_job(worker, job_id)
        return worker

    async def _obtain_env_worker(self, job_id: str, env: dict,
                                 use: WorkerUse = ANY_TASK) -> Worker:
        """An idle worker of the runtime env, or a new one started in it (the env is
        set up first, once per node: RuntimeEnvSetupError if it cannot be)."""
        worker = self.pool.pop_idle(job_id, env_hash(env), use=use)
        if worker is None:
            worker_env = await self.runtime_envs.setup(env)
            worker = await self.pool.start_worker(worker_env)
            try:
                await worker.registered
            except Exception:
                raise RuntimeEnvSetupError(
                    f"a worker started in runtime_env {sorted(env)} died before it "
                    f"registered: {self.pool.last_start_failure}") from None
            finally:
                worker.reserved = False
            if worker in self.pool.idle:
                self.pool.idle.remove(worker)
        if worker.job_id != job_id:
            await self._assign_job(worker, job_id)
        return worker

    async def _kv_package(self, key: str) -> bytes | None:
        return await self.control.call(Method.KV_GET, [KV_NAMESPACE, key])

    async def _assign_job(self, worker: Worker, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            job = await self.control.call(Method.KV_GET, ["job", job_id]) or {}
            self.jobs[job_id] = job
        await worker.conn.call(Method.ASSIGN_JOB, [job_id, job])
        worker.job_id = job_id

    def handle_return_lease(self, conn, body):
        """A ``ReturnLeaseBody``; ``retire``: its worker ran its max_calls; it exits
        by itself once it owns nothing in scope (retire.py), never idle again."""
        returned = ReturnLeaseBody.from_wire(body)
        lease_id, kill, retire = returned.lease_id, returned.kill, returned.retire
        if retire:
            self.lease_table.retire(lease_id)
        lease = self.lease_table.give_back(lease_id)
        if lease is None:
            return None
        conn.state.get("leases", set()).discard(lease_id)
        lease.worker.lease_id = None
        worker = lease.worker
        if retire and not kill:
            if worker.conn is not None:  # (else it is exiting already)
                worker.conn.notify(Method.RETIRE_WORKER, None)
        elif kill or worker.actor_id is not None:
            self.pool.kill(worker)
        elif worker.worker_id in self.pool.workers:
            self._make_idle(worker)
        self._schedule()
        return None

    def _lease_of(self, conn) -> Lease | None:
        worker = conn.state.get("worker")
        if worker is None or worker.lease_id is None:
            return None
        return self.leases.get(worker.lease_id)

    def handle_worker_blocked(self, conn, body):
        # an actor keeps its CPUs for its lifetime, blocked or not (as in Ray): only a
        # task's worker lends its CPU while it waits
        lease = self._lease_of(conn)
        if lease is not None and self.lease_table.worker_blocked(
                lease, lease.worker.actor_id is not None):
            self._schedule()
        return None

    def handle_worker_unblocked(self, conn, body):
        lease = self._lease_of(conn)
        if lease is not None and self.lease_table.worker_unblocked(lease):
            self._report_soon()
        return None

    # ---- actors --------------------------------------------------------------------
    async def handle_lease_actor_worker(self, conn, body):
        """From the control store (an ``ActorLeaseBody``): lease a dedicated worker
        and run __init__ there (``num_restarts`` > 0: a restart, which the actor can
        see in its runtime context)."""
        request = ActorLeaseBody.from_wire(body)
        actor_id, job_id, label, strategy = (request.actor_id, request.job_id, request.label,
                                             request.strategy)
        env = request.runtime_env
        # the control store's number for this lease: heartbeats say which it has seen
        self.actor_leases_seen = max(self.actor_leases_seen, request.lease_number)
        units = to_units(request.shape)
        bundle = bundle_of(strategy)
        if bundle is not None:
            self.bundles.table.check(bundle[0], bundle[1], units)
        grant = await self._enqueue(LeaseRequest(units, job_id, label, conn, None,
                                                 bundle=bundle, runtime_env=env,
                                                 for_actor=bundle is None, makes_actor=True))
        if grant is None:
            raise RuntimeError("actor lease cancelled")
        grant = LeaseGrant.from_wire(grant)
        lease = self.leases[grant.lease_id]
        worker = lease.worker
        worker.actor_id = actor_id
        worker.label = label
        placement = list(strategy[1:4]) if bundle is not None else None
        error = await worker.conn.call(Method.CREATE_ACTOR_INSTANCE, ActorInstanceBody(
            actor_id, request.creation, request.num_restarts, grant.accelerators,
            placement).to_wire())
        return [worker.worker_id, worker.address, self.node_id, error]

    # ---- object store (:mod:`shoal.node.object_store`) ---------------------------------
    def handle_store_pull(self, conn, body):
        """Like STORE_GET, for ``[[oid, owner, size, [node ids]], ...]``: objects
        that are not here are pulled from those nodes first."""
        return self.transfer.pull_and_pin(conn, body)

    def handle_store_free(self, conn, body):
        self.store.free(self.transfer.free_requested(body))
        return None

    def handle_store_stats(self, conn, body):
        return {**self.store.stats(), **self.transfer.stats()}

    def report_soon(self) -> None:
        self._report_soon()

    def handle_node_info(self, conn, body):
        self.state_service.client_attached(conn)  # every core worker asks this once
        return self.info()

    # ---- connections and reporting ------------------------------------------------------
    def _on_connection_closed(self, conn) -> None:
        self.store.client_gone(conn)
        self.transfer.connection_closed(conn)
        self.lease_table.cancel_requests(conn)
        for lease_id in conn.state.get("leases", ()):
            lease = self.lease_table.revoke(lease_id)
            if lease is not None:
                # its owner is gone; the worker may be running the owner's task
                lease.worker.lease_id = None
                self.pool.kill(lease.worker)
        worker = conn.state.get("worker")
        if worker is not None:
            self.pool.kill(worker, intended=False)
        self._schedule()

    def _report_soon(self) -> None:
        if not self._report_scheduled and not self.closing:
            self._report_scheduled = True
            asyncio.get_running_loop().call_later(0.02, self._report)

    def _report(self) -> None:
        """The heartbeat: free resources, the demand waiting in our queue, the
        object store's usage and spilling totals (for ``shoal status``) and the
        node's counters for ``/metrics`` (:mod:`shoal.node.node_metrics`)."""
        self._report_scheduled = False
        self.control.notify(Method.NODE_HEARTBEAT, NodeHeartbeatBody(
            self.node_id, self.available_with_store(), len(self.queue), self._demand(),
            self.store.summary(), self.metrics.wire(), self._actor_leases()).to_wire())

    def _actor_leases(self) -> list:
        """``[the last actor lease seen, what the queued ones will take]``: with it
        the control store counts every actor it sent here exactly once (in flight,
        queued here, or granted and so out of the free resources)."""
        queued: dict[str, int] = {}
        for request in self.queue:
            if request.for_actor:
                for key, amount in request.shape.items():
                    queued[key] = queued.get(key, 0) + amount
        return [self.actor_leases_seen, from_units(queued)]

    def _demand(self) -> list:
        """``[shape, count, infeasible]`` per shape of the queued lease requests
        (after ``_schedule`` every queued request is one that does not fit now)."""
        if not self.queue:
            return []
        counts: dict[tuple, int] = {}
        for request in self.queue:
            key = tuple(sorted(request.shape.items()))
            counts[key] = counts.get(key, 0) + 1
        return [[from_units(dict(key)), n, not self.resources.feasible(dict(key))]
                for key, n in counts.items()]

    async def _heartbeat_loop(self) -> None:
        while not self.closing:
            self._report()
            await self.refresh_cluster()
            self._move_waiting()
            await asyncio.sleep(self.heartbeat_s)

    async def shutdown(self) -> None:
        self.closing = True
        self.transfer.close()
        await self.pool.shutdown()
        if self.worker_logs is not None:
            self.worker_logs.close_all()
        self.store.close()


def _use_of(request: LeaseRequest) -> WorkerUse:
    return WorkerUse(for_actor=request.makes_actor, gpu=request.shape.get("GPU", 0) > 0)
