"""Several node agents on this machine, each with its own object store: a real
multi-node cluster for tests and experiments (Ray: ``ray.cluster_utils``).

::

    from shoal.cluster_utils import Cluster

    with Cluster(initialize_head=True, head_node_args={"num_cpus": 1}) as cluster:
        node = cluster.add_node(num_cpus=2, resources={"gpu_box": 1})
        cluster.wait_for_nodes()
        shoal.init(address=cluster.address)
        ...
        cluster.remove_node(node)   # SIGKILLs the agent and its workers

Every node process holds a lifeline pipe to this process, so the cluster dies
with its creator even if that is SIGKILLed; :meth:`Cluster.shutdown` (also run
by ``with`` and at interpreter exit) stops every node, kills what does not stop,
and unlinks every arena.  The cluster's token is remembered on this machine
(:mod:`shoal.launch.sessions`) while it runs, so ``shoal.init(address=
cluster.address)`` needs no token.
"""

from __future__ import annotations

import atexit
import secrets
import time
from typing import Any

from shoal.launch import control_client, resource_args, sessions
from shoal.launch.node_process import NodeProcess, NodeSpec, start_node
from shoal.rpc.messages import Method

# Ray's add_node() arguments we accept, and the NodeSpec field each one sets.
_NODE_ARGS = {
    "num_cpus": "num_cpus",
    "num_gpus": "num_gpus",
    "resources": "resources",
    "object_store_memory": "object_store_memory",
    "memory": "memory",
    "node_ip_address": "host",
    "port": "port",  # head only
    "node_timeout_s": "node_timeout_s",  # head only: failure detection timeout
    "num_prestart_workers": "prestart",
    "object_spilling_directory": "object_spilling_directory",  # a folder, or a list
    "object_spilling_threshold": "object_spilling_threshold",  # fraction of the store
    "min_spilling_size": "min_spilling_size",  # bytes: small objects are fused up to it
    "preload_python_modules": "preload_python_modules",  # (or in Ray's _system_config)
}
# Ray's add_node() arguments about parts shoal does not have (the dashboard, Ray's
# internal config): accepted and ignored, so Ray programs' cluster set-ups run.
_ACCEPTED_UNUSED = {"include_dashboard", "dashboard_port", "dashboard_host", "_system_config",
                    "enable_object_reconstruction"}  # shoal always rebuilds lost objects
# ... and those resource_args.node_args checks (the others go to the node as given)
_CHECKED_NODE_ARGS = {"num_cpus", "num_gpus", "resources", "object_store_memory", "memory",
                      "port", "node_timeout_s"}


class Cluster:
    """A head and any number of nodes as processes on this machine."""

    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict | None = None, shutdown_at_exit: bool = True) -> None:
        self.token = secrets.token_hex(16)
        self.session, self.log_dir = sessions.new_session()
        self.head_node: NodeProcess | None = None
        self.worker_nodes: list[NodeProcess] = []
        self.removed_nodes: list[NodeProcess] = []
        self._connected = False
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        try:
            if initialize_head:
                self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()
        except BaseException:
            self.shutdown()
            raise

    # ---- nodes ---------------------------------------------------------------------
    @property
    def address(self) -> str | None:
        """``HOST:PORT`` of the head's control store; None before there is a head
        (Ray's: ``init(address=cluster.address)`` then starts a cluster of its own)."""
        return self.head_node.address if self.head_node is not None else None

    def _head_address(self) -> str:
        if self.head_node is None:
            raise RuntimeError("this Cluster has no head node yet: call add_node() first")
        return self.head_node.address

    def add_node(self, wait: bool = True, **node_args: Any) -> NodeProcess:
        """Start a node (the head, if there is none yet); returns its handle once
        it has registered with the control store."""
        system_config = node_args.get("_system_config") or {}
        if "preload_python_modules" in system_config:  # the one key shoal's nodes read
            node_args.setdefault("preload_python_modules",
                                 system_config["preload_python_modules"])
        node_args = {k: v for k, v in node_args.items() if k not in _ACCEPTED_UNUSED}
        unknown = set(node_args) - set(_NODE_ARGS)
        if unknown:
            raise ValueError(f"unknown node argument(s) {sorted(unknown)}; "
                             f"accepted: {sorted(_NODE_ARGS)}")
        checked = dict(node_args)
        checked.update(resource_args.node_args(**{
            k: v for k, v in node_args.items() if k in _CHECKED_NODE_ARGS}))
        spec = NodeSpec(**{_NODE_ARGS[k]: v for k, v in checked.items() if v is not None})
        if self.head_node is None:
            spec.head = True
            node = start_node(spec, self.token, self.session, self.log_dir, lifeline=True)
            self.head_node = node
            # what address="auto" finds (Ray's), unless a head of this machine
            # already is: a test's cluster must not take over one 'shoal start' made
            sessions.remember_cluster(
                {"address": node.address, "token": self.token, "pid": node.pid,
                 "create_time": node.create_time, "session": self.session},
                default=sessions.live_cluster(sessions.default_cluster()) is None)
        else:
            if spec.node_timeout_s is not None or spec.port:
                raise ValueError("port and node_timeout_s are head node arguments")
            spec.address = self.address
            node = start_node(spec, self.token, self.session, self.log_dir, lifeline=True)
            self.worker_nodes.append(node)
        return node

    def remove_node(self, node: NodeProcess, allow_graceful: bool = False) -> None:
        """Kill the node's agent and all its workers (SIGKILL; SIGTERM first with
        ``allow_graceful``), and unlink its arena.  Removing the head kills the
        cluster's control store: the other nodes then stop by themselves."""
        if node is self.head_node:
            sessions.forget_cluster(node.address)
            self.head_node = None
        elif node in self.worker_nodes:
            self.worker_nodes.remove(node)
        else:
            raise ValueError(f"{node!r} is not a node of this cluster")
        if allow_graceful:
            node.stop()
        else:
            node.kill()
        self.removed_nodes.append(node)

    def list_all_nodes(self) -> list[NodeProcess]:
        head = [self.head_node] if self.head_node is not None else []
        return head + list(self.worker_nodes)

    def nodes_seen_by_head(self) -> list[dict]:
        """The control store's node table (alive and dead)."""
        return control_client.call(self._head_address(), self.token, Method.GET_NODES)

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Until the control store sees exactly this cluster's running nodes alive."""
        want = {n.node_id for n in self.list_all_nodes()}
        deadline = time.monotonic() + timeout
        while True:
            alive = {n["node_id"] for n in self.nodes_seen_by_head() if n["alive"]}
            if alive == want:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"after {timeout:g} s the head sees nodes {sorted(alive)} "
                                   f"alive, expected {sorted(want)}")
            time.sleep(0.02)

    # ---- drivers -------------------------------------------------------------------
    def connect(self, **init_kwargs: Any) -> Any:
        """``shoal.init(address=self.address)`` in this process."""
        import shoal

        ctx = shoal.init(address=self._head_address(), _token=self.token, **init_kwargs)
        self._connected = True
        return ctx

    # ---- teardown ------------------------------------------------------------------
    def shutdown(self) -> None:
        """Disconnect the driver we connected, stop every node, unlink every arena."""
        if self._connected:
            self._connected = False
            import shoal

            shoal.shutdown()
        nodes = list(reversed(self.list_all_nodes())) + self.removed_nodes
        self.worker_nodes, self.removed_nodes = [], []
        if self.head_node is not None:
            sessions.forget_cluster(self.head_node.address)
            self.head_node = None
        # Ask everyone at once, then kill whatever has not stopped.
        procs = {id(n): n.processes() for n in nodes}
        for node in nodes:
            if node.popen is not None and node.popen.stdin is not None:
                try:
                    node.popen.stdin.close()  # the lifeline: the node stops itself
                except OSError:
                    pass
        sessions.prune_sessions()  # while they stop
        deadline = time.monotonic() + 5.0
        for node in nodes:
            while node.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            node.kill(procs[id(node)])
        atexit.unregister(self.shutdown)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# Ray's flag for platforms where a multi-node cluster on one machine cannot run.
cluster_not_supported = False
