"""What a node counts for ``/metrics`` beyond its store (pure).

The agent keeps these and sends them with every heartbeat (NODE_HEARTBEAT's
``metrics`` field), so the control store's node table - which the dashboard reads
with CLUSTER_STATUS - always has each node's latest totals; nothing else asks
the agents for them.

* ``transfer_sent_bytes`` / ``transfer_received_bytes``: object bytes this node
  served to other nodes' pulls / pulled from them (the data channel's chunks).
* ``lease_latency``: a histogram of the time from a lease request's arrival at
  this agent to its grant (queueing for resources, and starting or binding a
  worker), measured here, where the request waits.  A request this node
  redirects (spillback) is counted by the node that grants it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

# seconds; Prometheus' ``le`` buckets (a value lands in the first bound >= it)
LEASE_LATENCY_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                          1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Counts per bucket (the last is +Inf) and the sum of what was observed."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def wire(self) -> dict:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total}


def cumulative_buckets(wire: dict) -> list[tuple[str, int]]:
    """``[(le, count of values <= le)]`` ending with ``+Inf``, from :meth:`Histogram.wire`."""
    out, running = [], 0
    bounds = [*(repr(float(b)) for b in wire["bounds"]), "+Inf"]
    for le, n in zip(bounds, wire["counts"], strict=True):
        running += n
        out.append((le, running))
    return out


@dataclass
class NodeMetrics:
    transfer_sent_bytes: int = 0
    transfer_received_bytes: int = 0
    lease_latency: Histogram = field(default_factory=lambda: Histogram(LEASE_LATENCY_BOUNDS_S))

    def wire(self) -> dict:
        return {"transfer_sent_bytes": self.transfer_sent_bytes,
                "transfer_received_bytes": self.transfer_received_bytes,
                "lease_latency": self.lease_latency.wire()}
