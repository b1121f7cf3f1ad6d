"""The shuffle library's pure numpy parts: gensort records, keys, the sort kernel,
range and random partitioning, checksums and valsort's checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.shuffle import kernels
from shoal.shuffle.gensort import make_records, skewed_records
from shoal.shuffle.partitioning import (
    RangePartitioner,
    boundaries_from_samples,
    random_parts,
    sample_prefixes,
    split_by_part,
)
from shoal.shuffle.records import (
    check_records,
    checksum,
    duplicate_keys,
    key_prefix,
    key_tail,
    keys_ordered,
    sort_order,
    sort_records,
)
from shoal.shuffle.validation import check, summarize


def reference_order(records: np.ndarray) -> np.ndarray:
    """Sorted by the 10 key bytes, compared one byte at a time (stable)."""
    return np.lexsort([records[:, i] for i in range(9, -1, -1)])


def keys(records: np.ndarray) -> list[bytes]:
    return [bytes(r[:10]) for r in records]


def with_keys(prefixes: np.ndarray, tails: np.ndarray) -> np.ndarray:
    out = make_records(0, len(prefixes), 5)
    out[:, :8] = prefixes.astype(">u8").view(np.uint8).reshape(-1, 8)
    out[:, 8:10] = tails.astype(">u2").view(np.uint8).reshape(-1, 2)
    return out


def test_gensort_layout():
    rec = make_records(255, 3, seed=9)
    assert rec.shape == (3, 100) and rec.dtype == np.uint8
    row = bytes(rec[1])
    assert row[10:12] == b"\x00\x11"
    assert row[12:44] == b"%032X" % 256
    assert row[44:48] == b"\x88\x99\xaa\xbb" and row[96:100] == b"\xcc\xdd\xee\xff"
    filler = row[48:96]
    assert all(filler[i:i + 4] == filler[i:i + 1] * 4 for i in range(0, 48, 4))
    assert set(filler) <= set(b"0123456789ABCDEF")
    high, low = np.random.default_rng([9, 255]).integers(0, 1 << 64, size=(2, 3),
                                                         dtype=np.uint64)
    key = int(high[1]).to_bytes(8, "big") + int(low[1]).to_bytes(8, "big")[:2]
    assert row[:10] == key  # the 128-bit random number's high 10 bytes
    digits = b"%012X" % (int(low[1]) & ((1 << 48) - 1))  # its low 48 bits, each digit x4
    assert filler == b"".join(bytes([d]) * 4 for d in digits)
    np.testing.assert_array_equal(rec, make_records(255, 3, seed=9))  # deterministic
    assert not np.array_equal(rec, make_records(255, 3, seed=10))


def test_key_prefix_and_tail_read_big_endian_bytes():
    rec = make_records(0, 50, 1)
    for row, p, t in zip(rec, key_prefix(rec), key_tail(rec), strict=True):
        assert int(p) == int.from_bytes(bytes(row[:8]), "big")
        assert int(t) == int.from_bytes(bytes(row[8:10]), "big")


@pytest.mark.parametrize("n", [0, 1, 7, 3000, 50_000])
def test_sort_records_orders_random_keys(n):
    rec = make_records(0, n, 3)
    out = sort_records(rec)
    assert keys(out) == sorted(keys(rec))
    assert checksum(out) == checksum(rec) and keys_ordered(out)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2100, 6000), distinct=st.integers(1, 50), tails=st.integers(1, 4),
       spread=st.sampled_from([0, 1, 1 << 20, 1 << 63]), seed=st.integers(0, 1000))
def test_sort_order_matches_a_byte_by_byte_sort_with_ties(n, distinct, tails, spread, seed):
    """Few distinct prefixes, ties broken by the tail, spans from 0 to 2**63: the
    radix passes plus the tie settling give exactly the byte order."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 1 << 62, dtype=np.uint64)
    choices = base + rng.integers(0, spread + 1, distinct, dtype=np.uint64)
    rec = with_keys(rng.choice(choices, n), rng.integers(0, tails, n))
    order = sort_order(key_prefix(rec), lambda rows: key_tail(rec[rows]))
    assert keys(rec[order]) == keys(rec[reference_order(rec)])


def test_keys_ordered_and_duplicates_look_at_the_tail():
    rec = with_keys(np.array([5, 5, 5, 9], dtype=np.uint64), np.array([1, 2, 2, 0]))
    assert keys_ordered(rec) and duplicate_keys(rec) == 1
    assert not keys_ordered(rec[[1, 0, 2, 3]])
    assert not keys_ordered(rec[[3, 0, 1, 2]])


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, (1 << 64) - 1), min_size=0, max_size=40),
       crowd=st.booleans(), seed=st.integers(0, 1000))
def test_range_partitioner_agrees_with_binary_search(cuts, crowd, seed):
    rng = np.random.default_rng(seed)
    bounds = np.sort(np.array(cuts, dtype=np.uint64))
    if crowd:  # many boundaries inside one table slot
        bounds = np.sort(np.uint64(7 << 48) + rng.integers(0, 1 << 40, len(cuts),
                                                            dtype=np.uint64))
    prefixes = np.concatenate([rng.integers(0, 1 << 64, 5000, dtype=np.uint64),
                               np.uint64(7 << 48) + rng.integers(0, 1 << 41, 500,
                                                                 dtype=np.uint64),
                               bounds])
    got = RangePartitioner(bounds)(prefixes)
    np.testing.assert_array_equal(got, np.searchsorted(bounds, prefixes, side="right"))


def test_sampled_boundaries_balance_skewed_keys():
    rec = skewed_records(0, 200_000, 4)
    bounds = boundaries_from_samples([sample_prefixes(rec, 4000, 1)], 16)
    sizes = np.bincount(RangePartitioner(bounds)(key_prefix(rec)), minlength=16)
    assert sizes.max() < 1.5 * sizes.min()
    uniform = boundaries_from_samples([], 16)  # what no sampling would give
    skewed = np.bincount(RangePartitioner(uniform)(key_prefix(rec)), minlength=16)
    assert skewed.max() > 10 * max(skewed.min(), 1)


def test_split_by_part_keeps_input_order_within_each_block():
    rows = np.arange(40).reshape(20, 2)
    part = np.array([3, 0, 1, 0, 3] * 4, dtype=np.uint16)
    blocks = split_by_part(rows, part, 5)
    assert [len(b) for b in blocks] == [8, 4, 0, 8, 0]
    np.testing.assert_array_equal(blocks[0][:, 0], [2, 6, 12, 16, 22, 26, 32, 36])


def test_random_parts_are_uniform_and_repeatable():
    a = random_parts(100_000, 8, seed=1, map_index=3)
    np.testing.assert_array_equal(a, random_parts(100_000, 8, seed=1, map_index=3))
    assert not np.array_equal(a, random_parts(100_000, 8, seed=1, map_index=4))
    counts = np.bincount(a, minlength=8)
    assert counts.min() > 12_000 and counts.max() < 13_000


def test_checksum_ignores_order_and_sees_moved_bytes():
    rec = make_records(0, 1000, 2)
    assert checksum(rec[::-1].copy()) == checksum(rec)
    swapped = rec.copy()
    swapped[0, 50], swapped[1, 50] = rec[1, 50], rec[0, 50]  # same bytes, other records
    assert rec[0, 50] != rec[1, 50] and checksum(swapped) != checksum(rec)
    assert checksum(rec[:-1]) != checksum(rec)
    assert checksum(np.concatenate([rec, rec[:1]])) != checksum(rec)


def test_valsort_checks_find_every_kind_of_problem():
    rec = sort_records(make_records(0, 3000, 8))
    parts = [rec[:1000], rec[1000:2000], rec[2000:]]
    total = checksum(rec)
    good = check([summarize(p) for p in parts], 3000, total)
    assert good.ok and good.records == 3000 and good.checksum == total
    assert good.duplicates == 0
    swapped = check([summarize(p) for p in (parts[1], parts[0], parts[2])], 3000, total)
    assert swapped.problems == ["partition 0 ends with a key greater than partition 1 "
                                "starts with"]
    unsorted = check([summarize(parts[0][::-1].copy())], 1000, checksum(parts[0]))
    assert unsorted.problems == ["partition 0 is not in key order"]
    short = check([summarize(p) for p in parts[:2]], 3000, total)
    assert short.problems[0] == "2000 records in the output, 3000 in the input"
    assert "checksum" in short.problems[1]
    dup = np.concatenate([parts[0], parts[0][-1:]])
    across = check([summarize(dup[:-1]), summarize(dup[-1:])], 1001)
    assert across.ok and across.duplicates == 1


def test_bad_records_and_blocks_are_refused_by_name():
    with pytest.raises(TypeError, match="numpy array of gensort records, got list"):
        check_records([1, 2])
    with pytest.raises(ValueError, match=r"shape \(n, 100\) and dtype uint8.*\(4, 10\)"):
        check_records(np.zeros((4, 10), dtype=np.uint8))
    with pytest.raises(TypeError, match="blocks of type dict, list"):
        kernels.concat_blocks([1], {"a": 1})
    assert kernels.concat_blocks([1], [2, 3]) == [1, 2, 3]
    assert kernels.concat_blocks((1,), (2,)) == (1, 2)


def test_sort_order_settles_rows_the_radix_digits_cannot_tell_apart():
    """A wide span leaves 32 digit bits: a cluster of keys within 2**20 of each
    other gets equal digits, and only the tie settling orders it."""
    rng = np.random.default_rng(11)
    cluster = np.uint64(1 << 40) + rng.integers(0, 1 << 20, 5000, dtype=np.uint64)
    prefixes = np.concatenate([rng.integers(0, 1 << 64, 5000, dtype=np.uint64), cluster])
    rec = with_keys(prefixes, rng.integers(0, 3, len(prefixes)))
    order = sort_order(key_prefix(rec), lambda rows: key_tail(rec[rows]))
    assert keys(rec[order]) == keys(rec[reference_order(rec)])
