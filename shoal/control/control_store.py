"""The control store: cluster membership, actors, named actors, jobs, kv, pubsub.

It is never on the per-task path: owners submit tasks to leased workers
directly.  What lives here is what must outlive any one owner or must be
found by name.

Actor life is the table in :mod:`shoal.control.actor_lifecycle`: PENDING ->
ALIVE, and on a process or node death RESTARTING (the constructor runs again
on a new worker, on any live node that fits) while ``max_restarts`` allows,
else DEAD.  Every change is published on the ``actor`` channel.  Callers ask
GET_ACTOR, which answers once there is something to act on (see
``handle_get_actor``).

Nodes register and heartbeat; the node table and the failure detector are
:mod:`shoal.control.membership`.  When a node dies, the ``node`` channel hears
of it, its ALIVE actors restart elsewhere or die, and its connection is closed
(fencing).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from shoal._version import __version__
from shoal.control import user_kv
from shoal.control.actor_counts import ActorCounts, DeadActorLog, max_dead_actors_from_env
from shoal.control.actor_lifecycle import ActorEvent, ActorState, next_state
from shoal.control.membership import DEFAULT_NODE_TIMEOUT_S, Membership, NodeRecord
from shoal.control.placement_groups import PlacementGroupService
from shoal.control.state_query import handle_list_state, handle_read_node_log
from shoal.rpc.actor_messages import GetActorBody, KillActorBody, WorkerDiedBody
from shoal.rpc.lease_messages import ActorLeaseBody, KillWorkerBody
from shoal.rpc.loopback import LoopbackConnection
from shoal.rpc.messages import Channel, Method
from shoal.rpc.node_messages import NodeHeartbeatBody
from shoal.rpc.protocol import check_version
from shoal.rpc.transport import RemoteError, Router

log = logging.getLogger("shoal.control")


@dataclass
class ActorRecord:
    actor_id: str
    job_id: str
    owner_worker_id: str
    class_name: str
    name: str | None
    namespace: str
    detached: bool
    shape: dict
    creation: bytes
    handle_meta: bytes = b""
    strategy: list | None = None  # task_spec.strategy_to_wire: SPREAD / NODE_AFFINITY
    owner_node_id: str = ""  # the actor fate-shares with its owner, also if that node dies
    state: ActorState = ActorState.PENDING
    address: str = ""
    worker_id: str = ""
    node_id: str = ""
    death_cause: str = ""  # the last failure's cause (kept while it restarts and after)
    max_restarts: int = 0  # -1: no bound
    num_restarts: int = 0
    waiters: list = field(default_factory=list)  # GET_ACTOR: (fut, GetActorBody) waiting
    placing: bool = False  # a _place_actor coroutine runs for it
    creating_on: str = ""  # the node asked to lease a worker and run __init__ (in flight)
    lost_workers: set = field(default_factory=set)  # died while it was being placed
    pid: int = 0
    runtime_env: dict | None = None  # resolved (shoal.runtime_env.spec); its worker's env
    # Ray's default for an actor that names no resources: it holds 0 CPUs while it
    # runs, but is only placed on a node with a CPU (never on a 0-CPU node)
    placement_cpus: float = 0.0
    # a named non-detached actor that crashed keeps its name while handles to it
    # exist (Ray): freed by its owner's RELEASE_ACTOR_NAME, a kill, or its owner's death
    name_held: bool = False

    def public(self) -> dict:
        return {
            "actor_id": self.actor_id,
            "state": self.state.value,
            "address": self.address,
            "worker_id": self.worker_id,
            "node_id": self.node_id,
            "death_cause": self.death_cause,
            "num_restarts": self.num_restarts,
            "max_restarts": self.max_restarts,
            "class_name": self.class_name,
            "name": self.name or "",
            "namespace": self.namespace,
            "job_id": self.job_id,
        }


class ControlStore:
    def __init__(self, router: Router, node_timeout_s: float = DEFAULT_NODE_TIMEOUT_S) -> None:
        self.membership = Membership(node_timeout_s)
        self.nodes: dict[str, NodeRecord] = self.membership.nodes
        self._detector: asyncio.Task | None = None
        self.actors: dict[str, ActorRecord] = {}
        self.actor_counts = ActorCounts()  # for /metrics; outlives dropped dead records
        self.dead_actors = DeadActorLog(max_dead_actors_from_env())
        self.named_actors: dict[tuple[str, str], str] = {}
        self.kv: dict[tuple[str, str], Any] = {}
        self.subscribers: dict[str, set] = {}
        self.local_subscribers: dict[str, list] = {}
        self._job_counter = 0
        self._spread_next = 0  # SPREAD actors: round-robin cursor over the nodes
        self.jobs: dict[str, dict] = {}
        for method, handler in {
            Method.REGISTER_NODE: self.handle_register_node,
            Method.NODE_HEARTBEAT: self.handle_node_heartbeat,
            Method.GET_NODES: self.handle_get_nodes,
            Method.REGISTER_DRIVER: self.handle_register_driver,
            Method.CREATE_ACTOR: self.handle_create_actor,
            Method.GET_ACTOR: self.handle_get_actor,
            Method.GET_NAMED_ACTOR: self.handle_get_named_actor,
            Method.KILL_ACTOR: self.handle_kill_actor,
            Method.RELEASE_ACTOR_NAME: self.handle_release_actor_name,
            Method.ACTOR_DEPENDENCIES_READY: self.handle_actor_dependencies_ready,
            Method.WORKER_DIED: self.handle_worker_died,
            Method.KV_PUT: self.handle_kv_put,
            Method.KV_GET: self.handle_kv_get,
            Method.KV_DELETE: self.handle_kv_delete,
            Method.KV_USER: lambda conn, body: user_kv.apply(self.kv, body),
            Method.SUBSCRIBE: self.handle_subscribe,
            Method.CLUSTER_RESOURCES: self.handle_cluster_resources,
            Method.PUBLISH_LOGS: self.handle_publish_logs,
            Method.PUBLISH_WARNING: lambda conn, body: self.publish(Channel.WARNINGS, body),
            Method.LIST_ACTORS: self.handle_list_actors,
            Method.CLUSTER_STATUS: self.handle_cluster_status,
        }.items():
            router.add(method, handler)
        router.add(Method.LIST_STATE, lambda conn, body: handle_list_state(self, conn, body))
        router.add(Method.READ_NODE_LOG,
                   lambda conn, body: handle_read_node_log(self, conn, body))
        self.placement = PlacementGroupService(self, router)
        router.on_close.append(self._on_connection_closed)

    # ---- pubsub ------------------------------------------------------------------
    def publish(self, channel: str, message: Any) -> None:
        for conn in list(self.subscribers.get(channel, ())):
            conn.notify(Method.PUBSUB_MESSAGE, [channel, message])
        for callback in self.local_subscribers.get(channel, ()):
            callback(message)

    def subscribe_local(self, channel: str, callback) -> None:
        self.local_subscribers.setdefault(channel, []).append(callback)

    def handle_subscribe(self, conn, body):
        for channel in body:
            self.subscribers.setdefault(channel, set()).add(conn)
            conn.state.setdefault("channels", set()).add(channel)
        return None

    def handle_publish_logs(self, conn, body):
        job_id, node_id, lines = body
        self.publish(Channel.logs(job_id), [node_id, lines])
        return None

    # ---- nodes (membership and failure detection: see control/membership.py) ------
    def start(self) -> None:
        """Start the failure detector (on the running loop)."""
        if self._detector is None:
            self._detector = asyncio.get_running_loop().create_task(self._detect_failures())

    async def _detect_failures(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.membership.check_interval_s)
            for record in self.membership.check(loop.time()):
                try:
                    self._node_died(record)
                except Exception:
                    log.exception("handling the death of node %s failed", record.node_id)

    def handle_register_node(self, conn, body):
        info = body
        try:
            check_version(info.get("version"), f"node {info.get('address', '?')}")
            record = self.membership.register(info, conn, asyncio.get_running_loop().time(),
                                              monitored=not isinstance(conn, LoopbackConnection))
        except ValueError as exc:
            log.warning("refused node %s: %s", info.get("node_id", "?"), exc)
            raise
        conn.state["node_id"] = record.node_id
        log.info("node %s joined from %s with %s", record.node_id, record.address,
                 record.resources_total)
        self.publish(Channel.NODE, {"node_id": record.node_id, "alive": True,
                              "address": record.address,
                              "data_address": record.data_address,
                              "resources_total": record.resources_total})
        self.placement.node_joined()
        return {"ok": True, "heartbeat_s": self.membership.heartbeat_s,
                "node_timeout_s": self.membership.timeout_s, "version": __version__}

    def handle_node_heartbeat(self, conn, body):
        beat = NodeHeartbeatBody.from_wire(body)
        self.membership.heartbeat(beat.node_id, beat.available, beat.pending, beat.demand,
                                  asyncio.get_running_loop().time(), beat.store,
                                  beat.metrics, beat.actor_leases)
        return None

    def _node_died(self, record: NodeRecord) -> None:
        """Tell everyone; fail the node's actors; cut the node off (fencing)."""
        log.warning("node %s at %s is dead: %s", record.node_id, record.address,
                    record.death_cause)
        self.publish(Channel.NODE, {"node_id": record.node_id, "alive": False,
                              "address": record.address, "cause": record.death_cause})
        # Their owners' processes died with the node; nobody will report them.  First,
        # so that an actor both owned and hosted there is not restarted in vain.
        for actor in list(self.actors.values()):
            if actor.owner_node_id == record.node_id and not actor.detached:
                self._actor_event(actor, ActorEvent.OWNER_DIED,
                                  f"the actor died because its owner's node "
                                  f"{record.node_id} died ({record.death_cause})")
        cause = (f"The actor died because its node has died. The node {record.node_id} "
                 f"it ran on died ({record.death_cause})")
        for actor in list(self.actors.values()):
            if actor.node_id == record.node_id and actor.state is ActorState.ALIVE:
                self._actor_event(actor, ActorEvent.PROCESS_DIED, cause)
        if record.conn is not None and record.conn.is_open():
            record.conn.close()
        self.placement.node_died(record.node_id)  # its bundles are placed again

    def handle_get_nodes(self, conn, body):
        return [n.public() for n in self.nodes.values()]

    def handle_cluster_resources(self, conn, body):
        total, available = self.membership.resources()
        return {"total": total, "available": available}

    def handle_cluster_status(self, conn, body):
        """What ``shoal status`` prints: nodes, and demand nothing serves yet."""
        pending_actors = [
            {"class_name": a.class_name, "resources": a.shape, "name": a.name or ""}
            for a in self.actors.values()
            if a.state in (ActorState.PENDING, ActorState.RESTARTING) and not a.node_id
        ]
        return {
            "version": __version__,
            "node_timeout_s": self.membership.timeout_s,
            # with each node's counters for /metrics (GET_NODES, which every agent
            # asks each heartbeat, leaves them out)
            "nodes": [dict(n.public(), metrics=n.metrics) for n in self.nodes.values()],
            "pending_actors": pending_actors,
            # [state, class name, count]: every state of every class seen (Ray's
            # ray_actors); DEAD counts actors whose records were dropped too
            "actor_counts": self.actor_counts.rows(),
        }

    # ---- jobs ------------------------------------------------------------------------
    def handle_register_driver(self, conn, body):
        self._job_counter += 1
        job_id = f"{self._job_counter:08x}"
        config = dict(body or {})
        self.jobs[job_id] = config
        self.kv[("job", job_id)] = config
        conn.state["job_id"] = job_id
        conn.state["driver_worker_id"] = config.get("worker_id", "")
        conn.state["driver_address"] = config.get("address", "")
        return {"job_id": job_id}

    def _on_connection_closed(self, conn) -> None:
        for channel in conn.state.get("channels", ()):
            self.subscribers.get(channel, set()).discard(conn)
        node_id = conn.state.get("node_id")
        if node_id is not None:
            record = self.membership.connection_closed(node_id)
            if record is not None:
                self._node_died(record)
        job_id = conn.state.get("job_id")
        if job_id is not None:
            self._job_finished(job_id, conn.state.get("driver_worker_id", ""))
            if conn.state.get("driver_address"):
                self.publish(Channel.OWNER_DIED, conn.state["driver_address"])

    def _job_finished(self, job_id: str, driver_worker_id: str) -> None:
        self.jobs.pop(job_id, None)
        self._owner_died(driver_worker_id, "the driver that owned it exited")
        self.placement.job_finished(job_id)
        self.publish(Channel.JOB_FINISHED, job_id)

    # ---- actors ----------------------------------------------------------------------
    def handle_create_actor(self, conn, body):
        spec = body
        name = spec.get("name") or None
        namespace = spec.get("namespace") or "default"
        if name is not None:
            existing_id = self.named_actors.get((namespace, name))
            if existing_id is not None:
                existing = self.actors[existing_id]
                if existing.state is not ActorState.DEAD or existing.name_held:
                    if spec.get("get_if_exists") and not existing.name_held:
                        return {"actor_id": existing_id, "existing": True}
                    raise ValueError(
                        f"an actor named {name!r} already exists in namespace {namespace!r}. "
                        f"Please use a different name or namespace"
                    )
        record = ActorRecord(
            actor_id=spec["actor_id"],
            job_id=spec["job_id"],
            owner_worker_id=spec["owner_worker_id"],
            class_name=spec["class_name"],
            name=name,
            namespace=namespace,
            detached=spec.get("detached", False),
            shape=spec["resources"],
            creation=spec["creation"],
            handle_meta=spec.get("handle_meta", b""),
            strategy=spec.get("scheduling_strategy"),
            owner_node_id=spec.get("owner_node_id", ""),
            max_restarts=int(spec.get("max_restarts", 0)),
            runtime_env=spec.get("runtime_env") or None,
            placement_cpus=float(spec.get("placement_cpus") or 0.0),
        )
        if spec.get("dependencies_unready"):  # placed once its owner says they are ready
            record.state = ActorState.DEPENDENCIES_UNREADY
        self.actors[record.actor_id] = record
        self.actor_counts.moved(record.class_name, None, record.state)
        if name is not None:
            self.named_actors[(namespace, name)] = record.actor_id
        if record.state is ActorState.PENDING:
            self._start_placing(record)
        return {"actor_id": record.actor_id, "existing": False}

    def _pick_node(self, shape: dict, strategy: list | None = None,
                   placement_cpus: float = 0.0) -> NodeRecord | None:
        """A live node for an actor of ``shape`` (on a node with ``placement_cpus``
        CPUs at least), or None (wait for one).  Raises ValueError if a hard node
        affinity names a node that is not alive."""
        def feasible(n: NodeRecord) -> bool:
            return (all(n.resources_total.get(k, 0) >= v for k, v in shape.items())
                    and n.resources_total.get("CPU", 0) >= placement_cpus)

        def free(n: NodeRecord) -> float:
            keys = list(shape) or ["CPU"]
            return min(n.free_for_actors(k) - shape.get(k, 0) for k in keys)

        kind = strategy[0] if strategy else None
        if kind == "NODE_AFFINITY":
            node = self.nodes.get(strategy[1])
            alive = node is not None and node.alive
            if alive and feasible(node):
                return node
            if not strategy[2]:  # hard
                if not alive:
                    raise ValueError(f"NodeAffinitySchedulingStrategy(soft=False) names node "
                                     f"{strategy[1]}, which is not alive in this cluster")
                return None
        candidates = [n for n in self.nodes.values() if n.alive and feasible(n)]
        if not candidates:
            return None
        if kind == "SPREAD":  # round-robin, nodes with room first
            with_room = sorted((n for n in candidates if free(n) >= 0),
                               key=lambda n: n.node_id) or sorted(candidates,
                                                                  key=lambda n: n.node_id)
            self._spread_next += 1
            return with_room[(self._spread_next - 1) % len(with_room)]
        # prefer the node with the most of the requested (or CPU) resources free
        return max(candidates, key=free)

    def placement_group_removed(self, pg_id: str) -> None:
        """The actors placed in the group die with it (no restart)."""
        for actor in list(self.actors.values()):
            strategy = actor.strategy
            if strategy and strategy[0] == "PG" and strategy[1] == pg_id:
                self._actor_event(actor, ActorEvent.KILLED,
                                  f"the actor's placement group {pg_id} was removed")

    def _node_in_group(self, record: ActorRecord) -> NodeRecord | None:
        """The node of the actor's bundle, None while the group is not placed;
        ValueError if the group was removed."""
        _, pg_id, index = record.strategy[:3]
        try:
            node_id = self.placement.node_for(pg_id, index, record.shape)
        except LookupError as exc:
            raise ValueError(str(exc)) from None
        node = self.nodes.get(node_id) if node_id else None
        return node if node is not None and node.alive else None

    def _start_placing(self, record: ActorRecord) -> None:
        if not record.placing:
            record.placing = True
            asyncio.get_running_loop().create_task(self._place_actor(record))

    async def _place_actor(self, record: ActorRecord) -> None:
        """Create the actor on a live node that fits: first, and after each restart."""
        try:
            await self._place(record)
        finally:
            record.placing = False

    async def _place(self, record: ActorRecord) -> None:
        warned = False
        waited = 0
        in_group = bool(record.strategy) and record.strategy[0] == "PG"
        while record.state in (ActorState.PENDING, ActorState.RESTARTING):
            try:
                node = (self._node_in_group(record) if in_group
                        else self._pick_node(record.shape, record.strategy,
                                             record.placement_cpus))
            except ValueError as exc:
                self._actor_event(record, ActorEvent.CREATION_FAILED,
                                  f"the actor cannot be scheduled: {exc}")
                return
            if node is None:
                if in_group:  # its placement group is being placed: soon, or not soon
                    waited += 1
                    await asyncio.sleep(0.02 if waited < 50 else 0.2)
                    continue
                if not warned:
                    warned = True
                    log.warning("actor %s requires %s, which no node has; it stays pending",
                                record.class_name, record.shape)
                await asyncio.sleep(0.5)
                continue
            record.creating_on = node.node_id
            try:
                worker_id, address, node_id, error = await node.conn.call(
                    Method.LEASE_ACTOR_WORKER,
                    ActorLeaseBody(record.actor_id, record.job_id, record.shape,
                                   record.class_name, record.creation, record.num_restarts,
                                   record.strategy, record.runtime_env,
                                   node.send_actor({} if in_group else record.shape)).to_wire(),
                )
            except Exception as exc:
                record.creating_on = ""
                if record.state is ActorState.DEAD:
                    return
                if isinstance(exc, RemoteError) and exc.error_type == "RuntimeEnvSetupError":
                    self._actor_event(record, ActorEvent.CREATION_FAILED,
                                      f"its runtime_env could not be set up "
                                      f"(RuntimeEnvSetupError): {exc.message}")
                    return
                if (isinstance(exc, RemoteError) and exc.error_type == "ConnectionLostError"
                        and node.alive):
                    # the agent answered: the worker died while the constructor ran
                    self._actor_event(record, ActorEvent.PROCESS_DIED, (
                        f"the actor's worker process on node {node.node_id} died while "
                        f"running its constructor"))
                else:
                    log.warning("placing actor %s on %s failed: %s", record.actor_id,
                                node.node_id, exc)
                await asyncio.sleep(0.1)
                continue
            record.creating_on = ""
            if record.state is ActorState.DEAD:  # killed while being created
                node.conn.notify(Method.KILL_WORKER, KillWorkerBody(worker_id).to_wire())
                return
            if error is not None:
                node.conn.notify(Method.KILL_WORKER, KillWorkerBody(worker_id).to_wire())
                self._actor_event(record, ActorEvent.CREATION_FAILED, error)
                return
            died = worker_id in record.lost_workers or not node.alive
            record.lost_workers.clear()
            if died:  # its WORKER_DIED (or the node's death) overtook this reply
                self._actor_event(record, ActorEvent.PROCESS_DIED, (
                    f"the actor's worker process on node {node.node_id} died right after "
                    f"its constructor ran"))
                continue
            record.worker_id, record.address, record.node_id = worker_id, address, node_id
            self._actor_event(record, ActorEvent.CREATED)

    def _actor_event(self, record: ActorRecord, event: ActorEvent, cause: str = "",
                     kill_process: bool = True) -> None:
        """Move ``record`` by the lifecycle table, then do what the new state needs:
        kill a still-running process, start a restart, free the name, publish."""
        was = record.state
        new = next_state(was, event, record.max_restarts, record.num_restarts)
        restart = new is ActorState.RESTARTING and event in (
            ActorEvent.PROCESS_DIED, ActorEvent.KILLED_TO_RESTART)
        if new is was and not restart:
            return
        if cause:
            record.death_cause = cause
        if kill_process and was is ActorState.ALIVE and event in (
                ActorEvent.KILLED, ActorEvent.OWNER_DIED, ActorEvent.KILLED_TO_RESTART):
            node = self.nodes.get(record.node_id)
            if node is not None and node.conn is not None:
                node.conn.notify(Method.KILL_WORKER, KillWorkerBody(record.worker_id).to_wire())
        elif kill_process and new is ActorState.DEAD and record.creating_on:
            # its constructor runs (or its worker is being leased): stop that worker
            # now, or it holds the node's resources for as long as __init__ takes
            # (not when the constructor called exit_actor(): its atexit hooks run)
            node = self.nodes.get(record.creating_on)
            if node is not None and node.conn is not None:
                node.conn.notify(Method.KILL_WORKER,
                                 KillWorkerBody(actor_id=record.actor_id).to_wire())
        record.state = new
        if new is not was:
            self.actor_counts.moved(record.class_name, was, new)
        if event is ActorEvent.DEPENDENCIES_READY:
            self._start_placing(record)
        if restart:
            record.num_restarts += 1
            record.worker_id = record.address = record.node_id = ""
            log.warning("actor %s (%s) restarts (%d of %s): %s", record.actor_id,
                        record.class_name, record.num_restarts,
                        "unbounded" if record.max_restarts < 0 else record.max_restarts,
                        record.death_cause)
            self._start_placing(record)
        elif new is ActorState.DEAD and record.name is not None:
            if not record.detached and event in (ActorEvent.PROCESS_DIED,
                                                 ActorEvent.CREATION_FAILED):
                record.name_held = True  # until no handle is left (RELEASE_ACTOR_NAME)
            else:
                self._release_name(record)
        self._notify_actor(record)
        if new is ActorState.DEAD and was is not ActorState.DEAD:
            self._drop_old_dead(record.actor_id)

    def _drop_old_dead(self, actor_id: str) -> None:
        """Keep at most ``max_dead_actors`` dead records (Ray's
        ``maximum_gcs_destroyed_actor_cached_count``); one still holding its name stays."""
        for old_id in self.dead_actors.died(actor_id):
            old = self.actors.get(old_id)
            if old is not None and old.state is ActorState.DEAD and not old.name_held:
                del self.actors[old_id]

    def _release_name(self, record: ActorRecord) -> None:
        record.name_held = False
        key = (record.namespace, record.name)
        if self.named_actors.get(key) == record.actor_id:
            del self.named_actors[key]

    def handle_actor_dependencies_ready(self, conn, body):
        """[actor_id]: its owner has the constructor's refs ready: place it now."""
        record = self.actors.get(body[0])
        if record is not None and record.state is ActorState.DEPENDENCIES_UNREADY:
            self._actor_event(record, ActorEvent.DEPENDENCIES_READY)
        return None

    def handle_release_actor_name(self, conn, body):
        """[actor_id]: its owner holds no handle to it any more; a dead actor's name
        is free again."""
        record = self.actors.get(body[0])
        if record is not None and record.state is ActorState.DEAD:
            self._release_name(record)
        return None

    def _notify_actor(self, record: ActorRecord) -> None:
        waiting = []
        for waiter in record.waiters:
            fut, request = waiter
            if fut.done():
                continue
            if _answerable(record, request):
                fut.set_result(record.public())
            else:
                waiting.append(waiter)
        record.waiters = waiting
        self.publish(Channel.ACTOR, record.public())

    def handle_get_actor(self, conn, body):
        """A ``GetActorBody``: answers once the actor is placed or dead, but not
        with the incarnation the caller saw fail (``stale_address`` with
        ``seen_restarts``), and, with ``wait_restart``, not while it restarts (see
        ``_answerable``)."""
        request = GetActorBody.from_wire(body)
        record = self.actors.get(request.actor_id)
        if record is None:
            raise LookupError(f"unknown actor {request.actor_id}")
        if _answerable(record, request):
            return record.public()
        fut = asyncio.get_running_loop().create_future()
        record.waiters.append((fut, request))
        return fut

    def handle_get_named_actor(self, conn, body):
        name, namespace = body
        actor_id = self.named_actors.get((namespace or "default", name))
        if actor_id is None:
            return None
        record = self.actors[actor_id]
        if record.state is ActorState.DEAD:  # a name held for a dead actor finds nothing
            return None
        return {"actor_id": actor_id, "handle_meta": record.handle_meta}

    def handle_list_actors(self, conn, body):
        return [a.public() for a in self.actors.values()]

    def handle_kill_actor(self, conn, body):
        """A ``KillActorBody``: kill for good, or kill the process and let the actor
        restart (if restarts remain).  ``exiting``: the actor called
        ``exit_actor()`` and ends its own process (so its atexit handlers run)."""
        kill = KillActorBody.from_wire(body)
        no_restart, cause, exiting = kill.no_restart, kill.cause, kill.exiting
        record = self.actors.get(kill.actor_id)
        if record is None:
            raise LookupError(f"unknown actor {kill.actor_id}")
        if record.state is ActorState.DEAD:  # kill releases a dead actor's held name
            self._release_name(record)
            return None
        if no_restart:
            self._actor_event(record, ActorEvent.KILLED,
                              cause or "The actor is dead because it was killed by `ray.kill` "
                              "(shoal.kill())",
                              kill_process=not exiting)
        else:
            self._actor_event(record, ActorEvent.KILLED_TO_RESTART,
                              "the actor was killed by shoal.kill(no_restart=False)")
        return None

    def handle_worker_died(self, conn, body):
        died = WorkerDiedBody.from_wire(body)
        worker_id, actor_id, exit_code, node_id = (died.worker_id, died.actor_id,
                                                   died.exit_code, died.node_id)
        if died.address:
            self.publish(Channel.OWNER_DIED, died.address)  # agents free the objects it owned
        record = self.actors.get(actor_id) if actor_id is not None else None
        if record is not None:
            if record.state is ActorState.ALIVE and record.worker_id == worker_id:
                self._actor_event(record, ActorEvent.PROCESS_DIED, (
                    f"The actor is dead because its worker process has died: the process "
                    f"(exit code {exit_code}) on node {node_id} died unexpectedly"))
            elif record.state in (ActorState.PENDING, ActorState.RESTARTING):
                record.lost_workers.add(worker_id)  # perhaps the one being created
        self._owner_died(worker_id, f"its owner (worker {worker_id}) died")
        return None

    def _owner_died(self, owner_worker_id: str, cause: str) -> None:
        if not owner_worker_id:
            return
        for record in list(self.actors.values()):
            # a detached actor still waiting for its owner's refs will never get them
            if record.owner_worker_id == owner_worker_id and (
                    not record.detached or record.state is ActorState.DEPENDENCIES_UNREADY):
                if record.state is ActorState.DEAD:
                    self._release_name(record)  # its owner's handles are gone with it
                self._actor_event(record, ActorEvent.OWNER_DIED,
                                  f"The actor is dead because its owner has died: {cause}")

    # ---- kv ----------------------------------------------------------------------------
    def handle_kv_put(self, conn, body):
        namespace, key, value, overwrite = body
        if not overwrite and (namespace, key) in self.kv:
            return False
        self.kv[(namespace, key)] = value
        return True

    def handle_kv_get(self, conn, body):
        namespace, key = body
        return self.kv.get((namespace, key))

    def handle_kv_delete(self, conn, body):
        namespace, key = body
        return self.kv.pop((namespace, key), None) is not None


def _answerable(record: ActorRecord, request: GetActorBody) -> bool:
    """May GET_ACTOR answer now?  Not while PENDING; not ALIVE as the incarnation
    the caller saw fail (same address and, if given, same ``num_restarts``); not
    RESTARTING if the caller asked to wait through it."""
    state, stale, seen = record.state, request.stale_address, request.seen_restarts
    if state in (ActorState.PENDING, ActorState.DEPENDENCIES_UNREADY):
        return False
    if state is ActorState.RESTARTING:
        return not request.wait_restart
    if state is ActorState.ALIVE:
        return not (stale is not None and record.address == stale
                    and (seen is None or seen == record.num_restarts))
    return True
