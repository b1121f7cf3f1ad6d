"""The raysort-style sort of ``bench/sort_core.py``: a short run on shoal, validated,
and its validator catching each kind of wrong output."""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from bench import sort_core

pytestmark = pytest.mark.timeout(120)


def test_short_sort_on_shoal_is_validated(shoal_cluster):
    result = sort_core.run(shoal, 64 * 10**6, 4, timeout=90)
    assert result.problems == [] and result.ok, result.summary()
    assert result.records == 64 * 10**6 // sort_core.RECORD
    assert result.output_checksum == result.input_checksum != 0


def test_sort_with_more_partitions_than_maps_in_flight(shoal_cluster):
    result = sort_core.run(shoal, 16 * 10**6, 9, max_maps_in_flight=2, timeout=90)
    assert result.ok, result.summary()


def _parts(blocks):
    return [sort_core.validate_task(sort_core.reduce_task(b)) for b in blocks]


def _sorted_blocks(count=4000, partitions=4):
    records = sort_core.make_records(0, count, seed=1)
    out = sort_core.map_task(0, count, 1, partitions)
    blocks, total = list(out[:partitions]), out[partitions]
    assert total == sort_core.checksum(records)
    return blocks, total, count


def test_validator_accepts_a_correct_sort():
    blocks, total, count = _sorted_blocks()
    assert sort_core.check_parts(_parts(blocks), count, total) == []


def test_validator_names_each_wrong_output():
    blocks, total, count = _sorted_blocks()
    parts = _parts(blocks)
    unsorted = sort_core.reduce_task(blocks[1])[::-1].copy()
    assert "partition 1 is not sorted" in sort_core.check_parts(
        [parts[0], sort_core.validate_task(unsorted), *parts[2:]], count, total)
    swapped = [parts[1], parts[0], *parts[2:]]
    assert "partition 0 ends after partition 1 starts" in sort_core.check_parts(
        swapped, count, total)
    lost = sort_core.reduce_task(blocks[2])[1:]
    problems = sort_core.check_parts([*parts[:2], sort_core.validate_task(lost), parts[3]],
                                     count, total)
    assert f"{count - 1} records out, {count} in" in problems
    assert "output checksum differs from the input checksum" in problems


def test_checksum_ignores_order_and_sees_any_changed_byte():
    records = sort_core.make_records(3, 1000, seed=2)
    total = sort_core.checksum(records)
    assert sort_core.checksum(records[::-1].copy()) == total
    changed = records.copy()
    changed[500, 99] ^= 1
    assert sort_core.checksum(changed) != total
    repeated = np.concatenate([records[:-1], records[:1]])
    assert sort_core.checksum(repeated) != total
