"""valsort's checks of a sort's output, split into a per-partition summary (made
where the partition lives) and a check of the summaries in order (pure).

valsort reads the output in order and reports: records out of order, the
record count, a checksum over all records and the number of duplicate keys.
Here each partition gives a :class:`PartitionSummary`; :func:`check` then
verifies that partitions meet in order (last key of one <= first key of the
next), that counts and checksums add up to the input's, and counts the
duplicates, including pairs that straddle a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shoal.shuffle.records import (
    MASK64,
    checksum,
    duplicate_keys,
    key_bytes,
    keys_ordered,
)


@dataclass(frozen=True)
class PartitionSummary:
    count: int
    checksum: int
    ordered: bool  # every key <= the next within the partition
    duplicates: int  # rows whose key equals the previous row's, within the partition
    first_key: bytes = b""
    last_key: bytes = b""


def summarize(records: np.ndarray) -> PartitionSummary:
    n = len(records)
    return PartitionSummary(
        count=n, checksum=checksum(records), ordered=keys_ordered(records),
        duplicates=duplicate_keys(records),
        first_key=key_bytes(records, 0) if n else b"",
        last_key=key_bytes(records, n - 1) if n else b"")


@dataclass
class Verdict:
    records: int = 0
    checksum: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(parts: Sequence[PartitionSummary], expected_records: int | None = None,
          expected_checksum: int | None = None) -> Verdict:
    """What valsort would say about the partitions, read in order."""
    verdict = Verdict()
    previous: tuple[int, PartitionSummary] | None = None
    for index, part in enumerate(parts):
        verdict.records += part.count
        verdict.checksum = (verdict.checksum + part.checksum) & MASK64
        verdict.duplicates += part.duplicates
        if not part.ordered:
            verdict.problems.append(f"partition {index} is not in key order")
        if not part.count:
            continue
        if previous is not None:
            at, before = previous
            if before.last_key > part.first_key:
                verdict.problems.append(f"partition {at} ends with a key greater than "
                                        f"partition {index} starts with")
            elif before.last_key == part.first_key:
                verdict.duplicates += 1
        previous = (index, part)
    if expected_records is not None and verdict.records != expected_records:
        verdict.problems.append(f"{verdict.records} records in the output, "
                                f"{expected_records} in the input")
    if expected_checksum is not None and verdict.checksum != expected_checksum:
        verdict.problems.append(f"the output's checksum {verdict.checksum:016x} differs "
                                f"from the input's {expected_checksum:016x}")
    return verdict
