"""A groupby's partial aggregation done by the tasks that read its rows.

Why: with few groups a block of 200k rows becomes a thousand state rows.
Aggregated where the block is made, the rows are never stored: the read
tasks yield states, and the exchange combines them (one task if they are few,
else its shuffle, whose maps then only route state rows).  Before, every
block was stored, then read again by a partial-aggregation task per partition
(a stage of its own, and the whole input in the store).

A block is aggregated only where that pays: a random sample of its keys
(SAMPLE_ROWS) estimates its groups (Chao1, ``estimated_groups``), and a block
whose groups would be more than 1/MIN_REDUCTION of its rows is yielded as it
is (1M groups in blocks of 200k rows: aggregating would only add a hash pass;
in blocks of 3.1M rows, 3.3x fewer state rows, the input is never stored).
So one dataset may reach the exchange as states and rows mixed; the exchange
keeps them in separate partitions (``BlockMetadata.states`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoal.data.aggregate import AggregationSpec
from shoal.data.block import concat, int64_values, take_rows
from shoal.data.hash_group import group_by

# keys sampled from a block to estimate its groups: enough to see the pairs
# (MIN_SAMPLED_PAIRS) of a block whose keys repeat ~3 times (1M groups in a
# full-size block of 3.1M rows: 1024 samples saw 0.5 pairs, 8192 see ~30; ~1 ms)
SAMPLE_ROWS = 8192
# aggregate a block only if its groups are at most half its rows: the states
# then take less room than the rows (a mean's state row is key, sum and count),
# and the shuffle's maps would hash the same rows anyway
MIN_REDUCTION = 2
# keys seen exactly twice in a sample before its estimate is trusted: with fewer,
# the sample says only that groups are many (at 512 sampled rows, 1M groups show
# 0.13 pairs on average, 200k groups 0.65)
MIN_SAMPLED_PAIRS = 5


def estimated_groups(samples: Sequence[pa.Table], keys: Sequence[str]) -> float | None:
    """The number of groups, estimated from samples of the keys (Chao1: the
    distinct keys seen, plus f1^2 / 2 f2 for the ones not seen, f1 and f2 the
    keys seen once and twice); None if a key column is missing or the sample is
    mostly keys seen once with fewer than MIN_SAMPLED_PAIRS seen twice.  Why the
    second: Chao1 is a lower bound, and from a sample of nearly all singletons
    (f2 of 0 or 1) it says ~f1^2 / 2 whatever the groups are: 512 sampled rows
    of 1M groups estimated 130k, and one task combined 6M state rows (367 MB)."""
    try:
        table = concat([s.select(list(keys)) for s in samples])
        counts = group_by(table, list(keys), [([], "count_all")])
    except (pa.ArrowException, KeyError):
        return None  # the exchange's own path reports a bad key
    seen = int64_values(counts.column("count_all"))
    once, twice = int((seen == 1).sum()), int((seen == 2).sum())
    if twice < MIN_SAMPLED_PAIRS and 2 * once > table.num_rows:
        return None  # mostly singletons: many groups, how many this cannot tell
    unseen = once * once / (2 * twice) if twice else once * (once - 1) / 2
    return len(seen) + unseen


@dataclass(frozen=True)
class PartialAggregation:
    """Given to the tasks making a groupby's input (``StageProgram.combiner``)."""

    spec: AggregationSpec

    def __call__(self, block: pa.Table, seed: int) -> pa.Table | None:
        """The block's partial states, or None if aggregating it would not pay
        (or a column is missing: the exchange reports that, naming the op)."""
        needed = {*self.spec.keys, *(c for a in self.spec.aggs for c in a.columns())}
        if block.num_rows < MIN_REDUCTION or not needed <= set(block.column_names):
            return None
        keys = block.select(list(self.spec.keys))
        if keys.num_rows > SAMPLE_ROWS:
            rows = np.random.default_rng(seed).choice(keys.num_rows, SAMPLE_ROWS, replace=False)
            keys = take_rows(keys, np.sort(rows))
        groups = estimated_groups([keys], self.spec.keys)
        if groups is None or groups * MIN_REDUCTION > block.num_rows:
            return None
        states = self.spec.partial(block)
        return states.replace_schema_metadata({**(states.schema.metadata or {}), STATES_MARK: b"1"})


STATES_MARK = b"shoal.data.partial_states"  # schema metadata of a table of states


def is_states(table: pa.Table) -> bool:
    """A table of partial states made by PartialAggregation (not rows)."""
    return bool(table.schema.metadata) and STATES_MARK in table.schema.metadata
