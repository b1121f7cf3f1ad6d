"""The cluster's pending resource demand (what ``shoal status`` prints, and what an
autoscaler would act on), as records: per resource shape, how many requests wait
for resources that exist (``num_ready_requests_queued``) and how many ask for more
than any live node has (``num_infeasible_requests_queued``), Ray's field names.

Counted from one CLUSTER_STATUS reply: the task lease requests queued at every live
node (each node's last heartbeat), and the actors the control store has not placed
yet (PENDING_CREATION or RESTARTING).  Infeasibility is judged against every live
node's totals, so a request queued at a node that cannot run it but that another
node could is "ready", not infeasible.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shoal.rpc.messages import Method


@dataclasses.dataclass
class ResourceDemand:
    shape: dict[str, float]
    num_ready_requests_queued: int = 0
    num_infeasible_requests_queued: int = 0
    backlog_size: int = 0  # requests an owner holds back (none here: all are queued)


def _fits(shape: dict, total: dict) -> bool:
    return all(total.get(k, 0.0) >= v for k, v in shape.items())


def demand_from_status(status: dict[str, Any]) -> list[ResourceDemand]:
    """Pure: the demand in a CLUSTER_STATUS reply, one record per shape."""
    alive = [n for n in status.get("nodes", ()) if n.get("alive")]
    totals = [n.get("resources_total") or {} for n in alive]
    by_shape: dict[tuple, ResourceDemand] = {}

    def add(shape: dict, count: int) -> None:
        shape = {k: float(v) for k, v in shape.items() if v}
        key = tuple(sorted(shape.items()))
        record = by_shape.setdefault(key, ResourceDemand(dict(key)))
        if any(_fits(shape, total) for total in totals):
            record.num_ready_requests_queued += count
        else:
            record.num_infeasible_requests_queued += count

    for node in alive:
        for shape, count, _infeasible_here in node.get("demand") or ():
            add(shape, int(count))
    for actor in status.get("pending_actors", ()):
        add(actor.get("resources") or {}, 1)
    return list(by_shape.values())


def get_resource_demand(timeout: float = 30) -> list[ResourceDemand]:
    """The cluster's pending demand now (see the module's docstring)."""
    from shoal.api.session import ensure_worker

    worker = ensure_worker()
    return demand_from_status(worker.control_call(Method.CLUSTER_STATUS, None,
                                                  timeout=timeout))
