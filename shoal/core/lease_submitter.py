"""Submitting normal tasks straight to leased workers.

Tasks with the same *scheduling key* (resource shape + strategy) share leases.
For each key we keep a FIFO of ready tasks, the workers leased for it, and the
number of lease requests in flight::

    enqueue(task) -> dispatch(key):
        push tasks to leased workers with < MAX_IN_FLIGHT tasks (pipelining)
        if tasks remain: request more leases (at most one per queued task)
    reply          -> dispatch(key); an idle worker with nothing queued is
                      returned after LEASE_LINGER_S (a sync loop of
                      submit/get reuses it instead of re-leasing every time)
    idle worker, empty queue, another worker with tasks waiting behind its
    running one -> STEAL_TASKS: the newest half of those come back unstarted
                      (STOLEN replies), are queued again and dispatched

Order: a task that had to wait for another task's output (a *dependent*) runs
before the tasks that were ready when submitted, the deepest in the graph
first.  It consumes, and so lets go of, what finished work produced; the
producers behind it would only add more.  This is the depth-first preference
of Dask's task ordering; it keeps a sort's reduce outputs from piling up
behind the other reduces until the store spills them (see
``lease_dispatch.ReadyQueue``; the dispatch decisions are pure, in that module).

Pipelining saves a round trip and two thread wake-ups per task (no-op task
throughput 3.0k/s -> 7k/s on 2 cores), but only short tasks need it, and a task
queued inside a worker can no longer be reordered (a dependent cannot pass it)
or run elsewhere.  So the depth is learned per function
(``lease_dispatch.PipelineDepth``):
MAX_IN_FLIGHT for functions that run in well under PIPELINE_WINDOW_S, one
task at a time for long ones and for functions not yet seen to finish.
Stealing keeps a long task from holding up the short ones queued behind it
while another worker is idle.

The node agent answers a lease request only when the shape fits, so the
number of concurrently running tasks never exceeds the node's resources.

Across nodes (``_request_lease``)::

    owner                        agent X (ours, or the locality node)     agent Y
      | REQUEST_LEASE(shape, strategy) -> | does not fit / strategy says Y
      | <------------- LeaseSpill(Y, address)
      | REQUEST_LEASE(..., spilled=True) ------------------------------->  | queue here
      | <--------------------------------------------------------- grant  |
      | PUSH_TASK ... to Y's worker;  RETURN_LEASE -> Y (the lease's node_conn)

Locality: a task whose shared-memory arguments are mostly on another node gets
its own scheduling key with that node as target, and its lease requests go to
that node's agent first (it spills them on if it has no room).  SPREAD keys run
one task per leased worker at a time, so tasks do not pile up on the first
lease granted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from shoal import exceptions
from shoal.core.lease_dispatch import (
    KeyState,
    LeasedWorker,
    PipelineDepth,
    idle_workers,
    keep_grant,
    leases_wanted,
    locality_node,
    next_worker,
    should_return,
    steal_victim,
    tasks_to_steal,
)
from shoal.core.task_reply import ReplyStatus, TaskReply
from shoal.core.task_state import TaskEvent, TaskState
from shoal.rpc.lease_messages import (
    LeaseRequestBody,
    LeaseSpill,
    ReturnLeaseBody,
    lease_reply_from_wire,
)
from shoal.rpc.messages import Method
from shoal.rpc.transport import RemoteError

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links
    from shoal.core.object_locations import ObjectLocations
    from shoal.core.placement_client import BundleLocator
    from shoal.core.task_manager import PendingTask, TaskManager

log = logging.getLogger("shoal.core")

LEASE_LINGER_S = float(os.environ.get("SHOAL_LEASE_LINGER_S", "0.02"))
MAX_SPILL_HOPS = 3
REMOTE_RETRY_S = 0.1  # a remote agent failed our lease request: ask again after this
NODE_PROBE_S = 2.0  # last failure of a task: its node is dead if its agent is this silent


class LeaseSubmitter:
    def __init__(self, worker: CoreWorker, task_manager: TaskManager, links: Links,
                 locations: ObjectLocations, placement: BundleLocator) -> None:
        self.worker = worker  # its job, node id, connections to peers
        self.tasks = task_manager  # completes, fails and requeues the tasks
        self.links = links  # the io loop, the local node agent, other nodes' agents
        self.locations = locations  # agents' addresses (locality: the node with the args)
        self.placement = placement  # the agents of placement groups' bundles
        self.keys: dict[tuple, KeyState] = {}
        self.by_conn: dict[object, LeasedWorker] = {}
        self.depth = PipelineDepth()

    def enqueue(self, task: PendingTask) -> None:
        target = ""
        if task.arg_locations is not None and task.strategy is None:
            target = locality_node(task.arg_locations, self.worker.node_id)
            task.scheduling_key = task.scheduling_key[:2] + ((target,) if target else ())
        key = task.scheduling_key
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = KeyState(key, task.spec.resources, task.spec.name,
                                               strategy=task.strategy, target_node=target,
                                               runtime_env=task.runtime_env)
            if task.strategy and task.strategy[0] == "SPREAD":
                state.max_in_flight = 1
        state.queue.append(task)
        self.dispatch(state)

    def dispatch(self, state: KeyState) -> None:
        """Perform the key's dispatch decisions (lease_dispatch.py)."""
        depth = self.depth.depth
        while (leased := next_worker(state, depth)) is not None:
            self._push(leased, state.queue.popleft())
        for _ in range(leases_wanted(state)):
            state.requesting += 1
            self.links.loop.create_task(self._request_lease(state))
        for leased in idle_workers(state):
            self._steal_for(state, leased)
            leased.linger = self.links.loop.call_later(
                LEASE_LINGER_S, self._return_if_idle, state, leased)

    def _steal_for(self, state: KeyState, idle: LeasedWorker) -> None:
        """Take back the newest half of the tasks waiting behind the busiest worker's
        running task; they return as STOLEN replies and are dispatched again."""
        victim = steal_victim(state, idle)
        if victim is None:
            return
        victim.stealing = True
        fut = victim.conn.call(Method.STEAL_TASKS, tasks_to_steal(victim))
        fut.add_done_callback(lambda f: self._steal_answered(victim, f))

    @staticmethod
    def _steal_answered(victim: LeasedWorker, fut: asyncio.Future) -> None:
        victim.stealing = False
        if not fut.cancelled():
            fut.exception()  # a worker lost mid-steal is handled by its task replies

    async def _first_agent(self, state: KeyState):
        """Our node's agent, the locality target's, or (placement group) the agent
        of a node holding the group's bundle."""
        if state.strategy and state.strategy[0] == "PG":
            return await self.placement.agent_for(state.strategy, state.resources)
        if state.target_node and state.target_node != self.worker.node_id:
            try:
                address = await self.locations.agent_address(state.target_node)
                if address:
                    return await self.worker.peer(address)
            except Exception as exc:
                log.debug("locality node %s unreachable: %s", state.target_node, exc)
        return self.links.node

    async def _request_lease(self, state: KeyState) -> None:
        in_group = bool(state.strategy) and state.strategy[0] == "PG"
        request = LeaseRequestBody(self.worker.job_id, state.resources,
                                   strategy=state.strategy, spilled=in_group,
                                   runtime_env=state.runtime_env)
        body = request.to_wire()
        node = self.links.node
        remote = in_group  # another node's agent, or a bundle's: its failures are retried
        try:
            node = await self._first_agent(state)
            remote = remote or node is not self.links.node
            grant = lease_reply_from_wire(await node.call(Method.REQUEST_LEASE, body))
            for _ in range(MAX_SPILL_HOPS):
                if not isinstance(grant, LeaseSpill):
                    break
                remote = True
                node = await self.worker.peer(grant.address)
                body["spilled"] = True  # that node queues it, never redirects it again
                grant = lease_reply_from_wire(await node.call(Method.REQUEST_LEASE, body))
        except Exception as exc:
            state.requesting -= 1
            if self.worker.shutting_down:
                return
            if isinstance(exc, RemoteError) and exc.error_type == "TaskUnschedulableError":
                self._fail_queue(state, exceptions.TaskUnschedulableError(exc.message))
            elif isinstance(exc, RemoteError) and exc.error_type == "RuntimeEnvSetupError":
                self._fail_queue(state, exceptions.RuntimeEnvSetupError(exc.message))
            elif in_group and self._group_failed(state, exc):
                pass
            elif remote:
                log.info("lease request to another node failed (%r); asking again", exc)
                self.links.loop.call_later(REMOTE_RETRY_S, self.dispatch, state)
            else:
                log.warning("lease request failed: %s", exc)
                self._fail_queue(state, exc)
            return
        state.requesting -= 1
        if grant is None:
            return
        if isinstance(grant, LeaseSpill):  # still redirected after MAX_SPILL_HOPS
            self.links.loop.call_later(REMOTE_RETRY_S, self.dispatch, state)
            return
        lease_id, address = grant.lease_id, grant.worker_address
        leased = LeasedWorker(lease_id, grant.worker_id, address, grant.node_id, node)
        leased.accelerators = grant.accelerators
        if not keep_grant(state):
            node.notify(Method.RETURN_LEASE, ReturnLeaseBody(lease_id).to_wire())
            return
        try:
            leased.conn = await self.worker.peer(address)
        except Exception as exc:
            log.warning("could not reach leased worker %s: %s", address, exc)
            node.notify(Method.RETURN_LEASE, ReturnLeaseBody(lease_id, kill=True).to_wire())
            self.dispatch(state)
            return
        state.workers.append(leased)
        self.by_conn[leased.conn] = leased
        self.dispatch(state)

    def _group_failed(self, state: KeyState, exc: BaseException) -> bool:
        """A lease request in a placement group failed: True if that ends its tasks
        (the group was removed, or no bundle fits); otherwise the bundle's location
        is forgotten and the request asked again."""
        kind = exc.error_type if isinstance(exc, RemoteError) else type(exc).__name__
        message = exc.message if isinstance(exc, RemoteError) else str(exc)
        if kind in ("PlacementGroupRemovedError", "TaskPlacementGroupRemoved"):
            self._fail_queue(state, exceptions.TaskPlacementGroupRemoved(message))
            return True
        if kind in ("TaskUnschedulableError", "ValueError"):
            self._fail_queue(state, exceptions.TaskUnschedulableError(message))
            return True
        self.placement.forget(state.strategy[1])
        return False

    def _fail_queue(self, state: KeyState, exc: Exception) -> None:
        while state.queue:
            task = state.queue.popleft()
            if isinstance(exc, exceptions.TaskUnschedulableError
                          | exceptions.RuntimeEnvSetupError
                          | exceptions.TaskPlacementGroupRemoved):
                self.tasks.fail_with(task, exc)
            else:
                self.tasks.fail_system(task, exc, retry=False)

    def _push(self, leased: LeasedWorker, task: PendingTask) -> None:
        if leased.linger is not None:
            leased.linger.cancel()
            leased.linger = None
        conn = leased.conn
        sent = conn.state.setdefault("functions", set())
        spec = task.spec
        include = spec.function_id not in sent
        if include:
            sent.add(spec.function_id)
        if not leased.in_flight:
            leased.head_started = time.monotonic()
        leased.in_flight[spec.task_id] = task
        task.advance(TaskEvent.PUSH)
        spec.accelerators = leased.accelerators
        task.running_on = leased
        task.ran_on = (leased.worker_id, leased.node_id)
        task.sent_at = time.time()
        fut = conn.call(Method.PUSH_TASK, spec.to_wire(include))
        fut.add_done_callback(lambda f: self._on_reply(leased, task, f))

    def _on_reply(self, leased: LeasedWorker, task: PendingTask, fut: asyncio.Future) -> None:
        leased.in_flight.pop(task.spec.task_id, None)
        task.running_on = None
        state = self.keys.get(task.scheduling_key)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        reply = TaskReply.from_wire(fut.result()) if exc is None else None
        now = time.monotonic()
        if reply is not None and reply.status is not ReplyStatus.STOLEN:
            self.depth.record(task.spec.function_id, now - leased.head_started)
        leased.head_started = now
        if reply is not None and reply.retire:
            self._retire(leased, state)  # max_calls: it runs nothing more
        if reply is None:
            self._worker_failed(leased, state)
            if leased.node_death:
                exc = self._node_died_error(leased, task, leased.node_death)
            elif task.retries_left == 0 and task.state is not TaskState.CANCELLING:
                # the last failure: tell a dead worker from a dead node (asking its agent)
                self.links.loop.create_task(self._fail_after_probe(leased, task, exc))
                exc = None
            if exc is not None:
                self.tasks.fail_system(task, exc, retry=True)
        elif reply.status is ReplyStatus.STOLEN and state is not None:
            if task.state is TaskState.CANCELLING:
                self.tasks.finish_cancelled(task)
            else:
                task.advance(TaskEvent.STOLEN)
                state.queue.appendleft(task)
        elif reply.status is ReplyStatus.ARGS_LOST:
            self.tasks.arguments_lost(task, reply.lost)
        else:
            self.tasks.complete(task, reply)
        if state is not None:
            self.dispatch(state)

    async def _fail_after_probe(self, leased: LeasedWorker, task: PendingTask,
                                exc: BaseException) -> None:
        try:
            await asyncio.wait_for(leased.node_conn.call(Method.NODE_INFO), NODE_PROBE_S)
        except Exception as probe:
            exc = self._node_died_error(leased, task, f"its agent is unreachable: {probe!r}")
        self.tasks.fail_system(task, exc, retry=True)

    @staticmethod
    def _node_died_error(leased: LeasedWorker, task: PendingTask, why: str) -> BaseException:
        return exceptions.NodeDiedError(
            f"the node {leased.node_id} running {task.spec.name}() died ({why})")

    def _worker_failed(self, leased: LeasedWorker, state: KeyState | None) -> None:
        if leased.dead:
            return
        leased.dead = True
        if state is not None and leased in state.workers:
            state.workers.remove(leased)
        self.by_conn.pop(leased.conn, None)

    def _retire(self, leased: LeasedWorker, state: KeyState | None) -> None:
        """The worker ran its max_calls: give the lease back with ``retire``; the
        tasks pipelined to it come back unstarted (STOLEN) and go elsewhere."""
        self._worker_failed(leased, state)  # no more pushes to it
        if leased.linger is not None:
            leased.linger.cancel()
            leased.linger = None
        leased.node_conn.notify(Method.RETURN_LEASE,
                                ReturnLeaseBody(leased.lease_id, retire=True).to_wire())

    def _return_if_idle(self, state: KeyState, leased: LeasedWorker) -> None:
        leased.linger = None
        if not should_return(state, leased):
            return
        if leased in state.workers:
            state.workers.remove(leased)
        self.by_conn.pop(leased.conn, None)
        leased.node_conn.notify(Method.RETURN_LEASE, ReturnLeaseBody(leased.lease_id).to_wire())

    def remove_queued(self, task: PendingTask) -> bool:
        state = self.keys.get(task.scheduling_key)
        if state is not None and task in state.queue:
            state.queue.remove(task)
            return True
        return False

    def connection_lost(self, conn) -> None:
        leased = self.by_conn.pop(conn, None)
        if leased is not None:
            leased.dead = True

    def node_died(self, node_id: str, agent_address: str, cause: str = "") -> None:
        """A node was declared dead.  Its workers' connections may never close
        by themselves (a cut link), so drop them now: their tasks fail over to
        the retry path, and lease requests waiting at its agent are asked again."""
        for state in self.keys.values():
            for leased in list(state.workers):
                if leased.node_id == node_id and leased.conn is not None:
                    leased.node_death = cause or "declared dead by the control store"
                    leased.conn.abort()
        conn = self.links.peers.cached(agent_address)
        if conn is not None:
            conn.abort()

    def return_all(self) -> None:
        for state in self.keys.values():
            for leased in state.workers:
                if leased.linger is not None:
                    leased.linger.cancel()
                leased.node_conn.notify(Method.RETURN_LEASE,
                                        ReturnLeaseBody(leased.lease_id).to_wire())
            state.workers.clear()
