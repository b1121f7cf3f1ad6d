"""Prometheus text for ``/metrics``, named in Ray's style (``ray_tasks`` ->
``shoal_tasks``), built per scrape from the same replies as the pages (pure
apart from prometheus-client's formatting).

Nothing is collected between scrapes: a scrape is one CLUSTER_STATUS and one
LIST_STATE query, like a page refresh.  The per-node counters (object bytes
sent and received, the lease latency histogram: :mod:`shoal.node.node_metrics`)
come with CLUSTER_STATUS, from the nodes' last heartbeats.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from shoal.node.node_metrics import cumulative_buckets

ALIVE_IDLE, ALIVE_RUNNING = "ALIVE_IDLE", "ALIVE_RUNNING_TASKS"


class _Snapshot:
    """A collector over one snapshot (registered into a fresh registry per scrape)."""

    def __init__(self, status: dict, tasks: list[dict], actors: list[dict],
                 busy_actors: set[str] = frozenset()) -> None:
        self.status, self.tasks, self.actors = status, tasks, actors
        self.busy_actors = busy_actors

    def collect(self):  # prometheus-client's collector protocol
        tasks = GaugeMetricFamily("shoal_tasks", "Tasks by state and name (the owners' "
                                  "pending tasks and recent history)", labels=["State", "Name"])
        for (state, name), n in sorted(Counter((t.get("state"), t.get("name") or "")
                                               for t in self.tasks).items()):
            tasks.add_metric([state, name], n)
        yield tasks
        yield self._actor_metrics()
        nodes = self.status.get("nodes", ())
        yield GaugeMetricFamily("shoal_cluster_active_nodes", "Live nodes",
                                value=sum(1 for n in nodes if n["alive"]))
        yield GaugeMetricFamily("shoal_cluster_dead_nodes", "Nodes declared dead",
                                value=sum(1 for n in nodes if not n["alive"]))
        yield from self._node_metrics([n for n in nodes if n["alive"]])

    def _actor_metrics(self) -> GaugeMetricFamily:
        """Ray's ``ray_actors``: actors per State and class Name, from the control
        store's counts (DEAD includes dropped records), and ALIVE's two sub-states
        counted again from the actors' own processes: ALIVE_RUNNING_TASKS if it is
        executing a call, else ALIVE_IDLE (Ray's documented split)."""
        family = GaugeMetricFamily("shoal_actors", "Actors by state and class (ALIVE is "
                                   "also split into ALIVE_IDLE and ALIVE_RUNNING_TASKS)",
                                   labels=["State", "Name"])
        rows = [tuple(r) for r in self.status.get("actor_counts", ())]
        for state, name, n in rows:
            family.add_metric([state, name], n)
        sub = Counter()
        for a in self.actors:
            if a.get("state") == "ALIVE":
                busy = a["actor_id"] in self.busy_actors
                sub[(ALIVE_RUNNING if busy else ALIVE_IDLE, a["class_name"])] += 1
        for name in sorted({name for _, name, _ in rows} | {n for _, n in sub}):
            for state in (ALIVE_IDLE, ALIVE_RUNNING):
                family.add_metric([state, name], sub[(state, name)])
        return family

    @staticmethod
    def _node_metrics(nodes: list[dict]):
        resources = GaugeMetricFamily("shoal_resources", "Logical resources by state",
                                      labels=["Name", "State", "NodeAddress"])
        used = GaugeMetricFamily("shoal_object_store_memory", "Object store bytes in use",
                                 labels=["NodeAddress"], unit="bytes")
        available = GaugeMetricFamily("shoal_object_store_available_memory",
                                      "Object store bytes free", labels=["NodeAddress"],
                                      unit="bytes")
        on_disk = GaugeMetricFamily("shoal_object_store_on_disk", "Spilled bytes on disk now",
                                    labels=["NodeAddress"], unit="bytes")
        spilled = CounterMetricFamily("shoal_spill_manager_spilled", "Bytes spilled to disk",
                                      labels=["NodeAddress"], unit="bytes")
        restored = CounterMetricFamily("shoal_spill_manager_restored",
                                       "Bytes restored from disk", labels=["NodeAddress"],
                                       unit="bytes")
        for n in nodes:
            where = n["address"]
            for name, total in n.get("resources_total", {}).items():
                if name.startswith("node:"):
                    continue
                free = n.get("resources_available", {}).get(name, 0.0)
                resources.add_metric([name, "AVAILABLE", where], free)
                resources.add_metric([name, "USED", where], total - free)
            store = n.get("store") or {}
            used.add_metric([where], store.get("used", 0))
            available.add_metric([where], store.get("capacity", 0) - store.get("used", 0))
            on_disk.add_metric([where], store.get("bytes_on_disk", 0))
            spilled.add_metric([where], store.get("spilled_bytes_total", 0))
            restored.add_metric([where], store.get("restored_bytes_total", 0))
        yield from (resources, used, available, on_disk, spilled, restored)
        yield from _traffic_metrics(nodes)


def _traffic_metrics(nodes: list[dict]):
    """Object transfer bytes (Ray's ``object_manager_bytes`` with a ``Type``) and the
    lease latency histogram, per node, from its last heartbeat."""
    transfer = CounterMetricFamily("shoal_object_manager", "Object bytes moved between "
                                   "nodes: served to other nodes' pulls (Sent) or pulled "
                                   "from them (Received)", labels=["Type", "NodeAddress"],
                                   unit="bytes")
    latency = HistogramMetricFamily(
        "shoal_scheduler_lease_request_latency", "Seconds from a lease request's arrival "
        "at a node's agent to its grant (queueing, worker start)",
        labels=["NodeAddress"], unit="seconds")
    for n in nodes:
        counters = n.get("metrics") or {}
        where = n["address"]
        transfer.add_metric(["Sent", where], counters.get("transfer_sent_bytes", 0))
        transfer.add_metric(["Received", where], counters.get("transfer_received_bytes", 0))
        hist = counters.get("lease_latency")
        if hist:
            latency.add_metric([where], cumulative_buckets(hist), hist["sum"])
    yield from (transfer, latency)


def busy_actor_ids(reply: dict) -> set[str]:
    """Actors whose process is executing a call now (a LIST_STATE reply with tasks)."""
    return {proc["actor_id"] for ns in reply.get("node_states", ())
            for proc in ns.get("processes", ()) if proc.get("actor_id") and proc.get("running")}


def exposition(status: dict, tasks: list[dict], actors: list[dict],
               busy_actors: set[str] = frozenset()) -> bytes:
    """The Prometheus text format of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(status, tasks, actors, busy_actors))
    return generate_latest(registry)
