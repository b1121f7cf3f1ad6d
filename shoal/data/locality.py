"""Which rows go to which piece of ``split(n)``, and with ``locality_hints``
(one actor per piece, Ray's argument) which node each block and each actor
is on, so a piece is made of the blocks already on its actor's node.

``assign`` is pure.  Pieces get row quotas (``split``'s sizes: equal, or
differing by at most one row); then

1. each piece takes whole blocks on its actor's node that fit its quota,
2. then a slice of a block on its node to fill what is left,
3. then the blocks nobody took, in order, cut to fill the remaining quotas
   (without hints this is the only round: contiguous runs, as before).

On one node every block is local to every actor, so the pieces come out of
rounds 1 and 2 as equal as without hints.  Where the cluster cannot say
(an inline block, an actor not placed yet) the block or actor has no node
and only round 3 sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    """Rows ``start:end`` of block ``block`` (all of them: a whole block)."""

    block: int
    start: int
    end: int


def assign(rows: Sequence[int], quotas: Sequence[int],
           block_nodes: Sequence[str | None] | None = None,
           piece_nodes: Sequence[str | None] | None = None) -> list[list[Span]]:
    """Spans per piece (in dataset order within a piece); rows past the quotas'
    sum are left out (``equal=True``'s remainder)."""
    left = list(quotas)
    pieces: list[list[Span]] = [[] for _ in quotas]
    rest: dict[int, int] = {b: 0 for b, n in enumerate(rows) if n > 0}  # block -> first row
    if block_nodes is not None and piece_nodes is not None:
        for i, node in enumerate(piece_nodes):
            local = [b for b in rest if node is not None and block_nodes[b] == node]
            for b in local:  # round 1: whole blocks (what is left of them) that fit
                if rows[b] - rest[b] <= left[i]:
                    pieces[i].append(Span(b, rest[b], rows[b]))
                    left[i] -= rows[b] - rest[b]
                    del rest[b]
            for b in local:  # round 2: a slice of one to fill the quota
                if left[i] and b in rest:
                    pieces[i].append(Span(b, rest[b], rest[b] + left[i]))
                    rest[b] += left[i]
                    left[i] = 0
    i = 0
    for b, start in rest.items():  # round 3: the rest, in order
        while start < rows[b]:
            while i < len(left) and left[i] == 0:
                i += 1
            if i == len(left):
                break
            take = min(rows[b] - start, left[i])
            pieces[i].append(Span(b, start, start + take))
            left[i] -= take
            start += take
    return [sorted(p, key=lambda s: (s.block, s.start)) for p in pieces]


def check_hints(hints: Any, n: int) -> list[Any]:
    if not isinstance(hints, (list, tuple)):
        raise TypeError(f"split: locality_hints must be a list of actor handles, got "
                        f"{type(hints).__name__}")
    if len(hints) != n:
        raise ValueError(f"split: the length of locality_hints {len(hints)} doesn't equal "
                         f"the number of splits {n}")
    for h in hints:
        if not isinstance(getattr(h, "actor_id", None), str):
            raise TypeError(f"split: locality_hints must be actor handles, got "
                            f"{type(h).__name__}")
    return list(hints)


def actor_nodes(actors: Sequence[Any]) -> list[str | None]:
    """Each actor's node (None if the cluster does not know it yet)."""
    from shoal.util import state

    try:
        records = state.list_actors(limit=None, raise_on_missing_output=False)
    except Exception as exc:  # noqa: BLE001 (no locality, but the split still works)
        log.warning("split: cannot ask where the actors are (%s); splitting without "
                    "locality", exc)
        return [None] * len(actors)
    where = {r.actor_id: r.node_id for r in records}
    return [where.get(str(a.actor_id)) for a in actors]


def block_nodes(refs: Sequence[Any]) -> list[str | None]:
    """A node holding each block in shared memory (None: inline or unknown)."""
    from shoal.util import state

    try:
        records = state.list_objects(limit=None, raise_on_missing_output=False)
    except Exception as exc:  # noqa: BLE001
        log.warning("split: cannot ask where the blocks are (%s); splitting without "
                    "locality", exc)
        return [None] * len(refs)
    where: dict[str, str] = {}
    for r in records:
        if r.locations and r.object_id not in where:
            where[r.object_id] = sorted(r.locations)[0]
    return [where.get(ref.hex()) for ref in refs]
