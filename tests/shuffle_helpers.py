"""Shared by the shuffle tests: gensort inputs made in tasks, and valsort's
verdict on a sort's outputs (summaries made where the outputs are)."""

from __future__ import annotations

import numpy as np

import shoal
from shoal.shuffle.gensort import make_records, skewed_records
from shoal.shuffle.records import MASK64, checksum
from shoal.shuffle.validation import Verdict, check, summarize

MiB = 1 << 20

make = shoal.remote(make_records)
make_skewed = shoal.remote(skewed_records)
summarize_remote = shoal.remote(summarize)


def gensort_inputs(records: int, parts: int, seed: int = 1, skewed: bool = False
                   ) -> tuple[list, int]:
    """``parts`` refs of records made in tasks, and the checksum of them all."""
    per = records // parts
    fn = make_skewed if skewed else make
    local = skewed_records if skewed else make_records
    refs = [fn.remote(i * per, per, seed) for i in range(parts)]
    total = 0
    for i in range(parts):
        total = (total + checksum(local(i * per, per, seed))) & MASK64
    return refs, total


def verdict(outputs: list, records: int, total: int, timeout: float = 120) -> Verdict:
    parts = shoal.get([summarize_remote.remote(o) for o in outputs], timeout=timeout)
    return check(parts, records, total)


def sizes(outputs: list, timeout: float = 60) -> list[int]:
    return [len(x) for x in shoal.get(outputs, timeout=timeout)]


def rows_sorted(arrays: list[np.ndarray]) -> np.ndarray:
    """All rows of ``arrays``, sorted (to compare multisets of rows)."""
    rows = np.concatenate(arrays)
    return rows[np.lexsort(rows.T[::-1])]
