"""The back-pressure rule: from the cluster's shape and the input size to
:class:`~shoal.shuffle.schedule.Limits` (pure).

The store must hold, at any time, the inputs not yet mapped, the merged (or,
for simple, the map) blocks made so far, the outputs made so far, and the
*working set*: the output of every open map (unmerged, see schedule.py).  The
first three are the data and spill when they must; the working set is what
back-pressure bounds.  With ``P`` the bytes of an input partition (a map's
output is about as large as its input) and ``B`` the budget (by default a
quarter of the cluster's object store)::

    open maps        <= max(1, B // P)
    running maps     <= min(CPUs + 1, open maps)    (one queued per CPU set)
    push round size  =  max(1, min(max(CPUs, maps / 8), open maps // 2))
                        (two rounds open; about 8 rounds)
    premerge group   =  maps per node / 4, in 2..8
    released reduces <= CPUs

CPUs + 1 running maps keep every CPU busy across a map's end (the next one
is already queued); more would only hold more memory.  Push rounds of one
map per CPU made 32 rounds of 2 maps for a 4 GB, 64-partition sort on 2 CPUs:
each reducer then read 32 small merged objects; 8 rounds of 8 maps sorted it
in 4.4-4.6 s instead of 5.3-7.3 s (alternating runs, same machine state);
at 1 GB (16 maps) the round size made no difference.  Reduces are held to
one per CPU for another reason: a reduce reads its blocks with ``get`` inside
the task (see tasks.py), and a worker blocked in ``get`` lends its CPU to the
next queued task, so with more released the node ran 3-4 reduces on 2 CPUs,
each slower (measured, 1 GB push: reduce stage 0.96-1.06 s with CPUs + 1
released, 0.72-0.80 s with CPUs).
"""

from __future__ import annotations

import math

from shoal.shuffle.schedule import Limits, Strategy

DEFAULT_BUDGET_FRACTION = 0.25
PUSH_ROUNDS = 8  # rounds a push shuffle aims for (more rounds: more, smaller merges)
PREMERGE_GROUP_RANGE = (2, 8)


def default_budget(store_bytes: float) -> int:
    return max(1, int(store_bytes * DEFAULT_BUDGET_FRACTION))


def plan_limits(strategy: Strategy, *, num_maps: int, cpus: float, nodes: int,
                partition_bytes: int | None, budget_bytes: int,
                round_size: int | None = None) -> Limits:
    """Limits for a shuffle of ``num_maps`` partitions of ``partition_bytes`` each
    (None: unknown, assumed small against the budget) on ``cpus`` CPUs over
    ``nodes`` nodes; ``round_size`` overrides the push round / premerge group."""
    slots = max(1, math.floor(cpus))
    nodes = max(1, nodes)
    reduces = slots
    by_memory = num_maps if not partition_bytes else max(1, budget_bytes // partition_bytes)
    cpu_nodes = max(1, slots // nodes)
    if strategy is Strategy.SIMPLE:
        running = max(1, min(slots + 1, by_memory))
        return Limits(maps_running=running, maps_open=max(running, num_maps),
                      merges_running=1, group=1, reduces_running=reduces)
    if strategy is Strategy.PREMERGE:
        low, high = PREMERGE_GROUP_RANGE
        group = round_size or max(low, min(high, math.ceil(num_maps / nodes / 4)))
        open_maps = max(1, min(by_memory, group * nodes + slots + 1))
        return Limits(maps_running=max(1, min(slots + 1, open_maps)), maps_open=open_maps,
                      merges_running=slots, group=group, reduces_running=reduces)
    target = max(slots, math.ceil(num_maps / PUSH_ROUNDS))
    group = round_size or max(1, min(target, by_memory // 2))
    open_maps = max(group, min(by_memory, 2 * group))
    return Limits(maps_running=max(1, min(slots + 1, open_maps)), maps_open=open_maps,
                  merges_running=2 * nodes * cpu_nodes, group=group,
                  merges_per_node=cpu_nodes, reduces_running=reduces)
