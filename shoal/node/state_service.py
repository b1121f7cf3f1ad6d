"""The node agent's part of the state API (NODE_STATE).

An agent knows the core workers on its node: its workers, and every driver
that attached to it (each core worker asks NODE_INFO once when it connects;
that marks its connection as a core worker's).  For a state query it asks
them all for a snapshot (WORKER_STATE) at once and adds what only the agent
knows: which objects each of them has pinned in the store (zero-copy views
from ``get`` and task arguments: ``PINNED_IN_MEMORY``), its worker processes
(pids, actors), the store's totals, and where each of its objects is (memory
or disk)::

    control store            node agent                      core workers here
      | NODE_STATE(kinds) -->  | WORKER_STATE(kinds) ------->  | (each on its own loop)
      |                        | <--------------- snapshot --  |
      | <-- {store, workers, processes: snapshots + pins, missing}

With ``logs`` among the kinds the reply lists the node's log files
(:mod:`shoal.node.worker_logs`); NODE_LOG_READ reads a chunk of one.  The
control store forwards both (LIST_STATE, READ_NODE_LOG), so the dashboard and
``shoal logs`` reach every node's files through their one connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.rpc.fanout import fan_out
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.node.agent import NodeAgent

CORE_WORKER_KINDS = {"objects", "tasks"}


class StateService:
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.clients: set = set()  # connections of core workers attached here
        agent.router.add(Method.NODE_STATE, self.handle_node_state)
        agent.router.add(Method.NODE_LOG_READ, self.handle_node_log_read)
        agent.router.on_close.append(self.clients.discard)

    def client_attached(self, conn: Any) -> None:
        """A core worker asked NODE_INFO on ``conn``: include it in state queries."""
        if hasattr(conn, "call"):
            self.clients.add(conn)

    def handle_node_state(self, conn, body):
        """``[kinds, timeout]`` -> this node's part of a state query."""
        kinds, timeout = set(body[0]), float(body[1])
        return self._gather(kinds, timeout)

    async def _gather(self, kinds: set, timeout: float) -> dict:
        agent = self.agent
        reply: dict[str, Any] = {
            "node_id": agent.node_id,
            "address": agent.config.address,
            "store": agent.store.stats(),
            "workers": self.workers(),
            "processes": [],
            "missing": [],
        }
        if "logs" in kinds:
            logs = agent.worker_logs
            reply["logs"] = logs.listing() if logs is not None else []
        wanted = sorted(kinds & CORE_WORKER_KINDS)
        if not wanted:
            return reply
        clients = list(self.clients)
        result = await fan_out(((i, c) for i, c in enumerate(clients)), Method.WORKER_STATE,
                               wanted, timeout)
        pins = self.pins_by_client() if "objects" in kinds else {}
        if "objects" in kinds:
            reply["copies"] = agent.store.where()  # in memory or on disk, per object
        for index, snapshot in result.replies:
            snapshot["pinned"] = pins.get(clients[index], {})
            reply["processes"].append(snapshot)
        reply["missing"] = [f"a process on node {agent.node_id[:12]} ({m.split(':', 1)[1]})"
                            for m in result.missing]
        return reply

    def handle_node_log_read(self, conn, body):
        """``[name, offset, max bytes]`` -> a chunk (see ``WorkerLogs.read``)."""
        name, offset, max_bytes = body
        logs = self.agent.worker_logs
        if logs is None:
            raise LookupError(f"node {self.agent.node_id[:12]} keeps no log files (it was "
                              "started without a log folder)")
        return logs.read(str(name), int(offset), int(max_bytes))

    def workers(self) -> list[dict]:
        """The node's live workers, then those that ended lately with why."""
        pool = self.agent.pool
        alive = [{"worker_id": w.worker_id, "pid": w.pid, "actor_id": w.actor_id,
                  "job_id": w.job_id, "address": w.address, "is_alive": True}
                 for w in pool.workers.values()]
        return alive + [{"worker_id": w.worker_id, "pid": w.pid, "actor_id": w.actor_id,
                         "job_id": w.job_id, "address": w.address, "is_alive": False,
                         "exit_type": kind.value, "exit_detail": detail}
                        for w, kind, detail in pool.exited]

    def pins_by_client(self) -> dict[Any, dict[str, int]]:
        """``{connection: {object id hex: size}}`` of the objects each client has mapped."""
        out: dict[Any, dict[str, int]] = {}
        for obj in self.agent.store.table.held():
            for client in obj.pins:
                out.setdefault(client, {})[obj.oid.hex()] = obj.size
        return out
