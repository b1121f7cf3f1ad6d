"""The Exoshuffle library on a local cluster (shoal/shuffle, docs/design.md
"Exoshuffle"): sort, random_shuffle and shuffle with every strategy, outputs
handed out at once, back-pressure observed from inside the tasks, errors
reaching the outputs.  Node failures are in test_shuffle_faults.py."""

from __future__ import annotations

import collections
import time
import zlib

import numpy as np
import pytest

import shoal
from shoal.shuffle import ShuffleStats, random_shuffle, shuffle, sort
from shoal.shuffle.gensort import make_records
from tests.shuffle_helpers import gensort_inputs, rows_sorted, sizes, verdict
from tests.utils import wait_for_condition

STRATEGIES = ["simple", "premerge", "push"]
RECORDS = 240_000  # 24 MB of gensort records


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sort_output_is_valid_with_every_strategy(shoal_cluster, strategy):
    inputs, total = gensort_inputs(RECORDS, 12)
    stats = ShuffleStats()
    outputs = sort(inputs, num_partitions=8, strategy=strategy, stats=stats)
    del inputs
    result = verdict(outputs, RECORDS, total)
    assert result.ok, result.problems
    assert result.duplicates == 0
    assert stats.wait(30) and stats.error is None
    assert stats.counts.maps_done == 12 and stats.counts.reduces_done == 8
    if strategy == "simple":
        assert stats.counts.merges_done == 0
    else:
        assert stats.counts.merges_done > 0


def test_sort_of_plain_arrays_of_uneven_sizes(shoal_cluster):
    arrays = [make_records(0, 5000, 2), make_records(5000, 0, 2), make_records(5000, 17, 2)]
    total = sum(len(a) for a in arrays)
    outputs = sort(arrays, num_partitions=3, strategy="push")
    parts = shoal.get(outputs, timeout=60)
    keys = [bytes(r[:10]) for p in parts for r in p]
    assert keys == sorted(bytes(r[:10]) for a in arrays for r in a) and len(keys) == total


def test_sort_balances_skewed_keys(shoal_cluster):
    inputs, total = gensort_inputs(RECORDS, 8, skewed=True)
    outputs = sort(inputs, num_partitions=8)
    result = verdict(outputs, RECORDS, total)
    assert result.ok, result.problems
    counts = sizes(outputs)
    assert max(counts) < 2 * min(counts), counts


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_random_shuffle_is_a_seeded_permutation(shoal_cluster, strategy):
    rows = np.arange(60_000, dtype=np.int64).reshape(-1, 2)  # every row unique
    inputs = [shoal.put(part) for part in np.array_split(rows, 6)]
    first = shoal.get(random_shuffle(inputs, num_partitions=4, seed=7, strategy=strategy),
                      timeout=60)
    np.testing.assert_array_equal(rows_sorted(first), rows)  # the same multiset
    again = shoal.get(random_shuffle(inputs, num_partitions=4, seed=7, strategy=strategy),
                      timeout=60)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = shoal.get(random_shuffle(inputs, num_partitions=4, seed=8, strategy=strategy),
                      timeout=60)
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    flat = np.concatenate(first)[:, 0] // 2
    assert abs(np.corrcoef(flat, np.arange(len(flat)))[0, 1]) < 0.05  # not in input order
    assert min(len(p) for p in first) > 0.8 * len(rows) / 4


def _bucket_words(words: list[str], n: int) -> list[list[tuple[str, int]]]:
    out: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    for word in words:
        out[zlib.crc32(word.encode()) % n].append((word, 1))
    return out


def _add_counts(*blocks: list[tuple[str, int]]) -> list[tuple[str, int]]:
    counts: collections.Counter = collections.Counter()
    for block in blocks:
        for word, n in block:
            counts[word] += n
    return sorted(counts.items())


def _total_counts(*blocks: list[tuple[str, int]]) -> tuple[dict, int]:
    """The counts, and how many pairs the reducer received."""
    return dict(_add_counts(*blocks)), sum(len(b) for b in blocks)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_generic_shuffle_with_list_blocks_and_a_merge_fn(shoal_cluster, strategy):
    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(50)]
    inputs = [[vocabulary[i] for i in rng.integers(0, 50, 400)] for _ in range(8)]
    outputs = shuffle(inputs, _bucket_words, _total_counts, num_reducers=3,
                      strategy=strategy, merge_fn=_add_counts, round_size=2)
    results = shoal.get(outputs, timeout=60)
    merged: dict = {}
    for counts, _ in results:
        assert not set(counts) & set(merged)  # each word goes to one reducer
        merged.update(counts)
    assert merged == dict(collections.Counter(w for words in inputs for w in words))
    pairs_received = sum(n for _, n in results)
    if strategy == "simple":
        assert pairs_received == 8 * 400  # no merge: every (word, 1) pair
    else:
        assert pairs_received < 8 * 400 / 2  # merges summed them on the way


def test_shuffle_default_merge_concatenates_lists(shoal_cluster):
    outputs = shuffle([[1, 2, 3], [4, 5], [6]], lambda p, n: [[x for x in p if x % n == r]
                                                             for r in range(n)],
                      lambda *blocks: sorted(x for b in blocks for x in b),
                      num_reducers=2, strategy="premerge", round_size=2)
    assert shoal.get(outputs, timeout=30) == [[2, 4, 6], [1, 3, 5]]


@shoal.remote(num_cpus=0)
class Gate:
    def __init__(self) -> None:
        self.is_open = False
        self.entered = 0

    def open(self) -> None:
        self.is_open = True

    def enter(self) -> bool:
        self.entered += 1
        return self.is_open

    def count(self) -> int:
        return self.entered


def _gated_map(part: list, n: int, gate) -> list:
    while not shoal.get(gate.enter.remote(), timeout=30):
        time.sleep(0.01)
    return [[x for x in part if x % n == r] for r in range(n)]


def test_outputs_are_returned_before_any_map_has_finished(shoal_cluster):
    gate = Gate.remote()
    inputs = [list(range(i * 10, i * 10 + 10)) for i in range(4)]
    start = time.monotonic()
    outputs = shuffle(inputs, lambda p, n: _gated_map(p, n, gate),
                      lambda *b: sorted(x for block in b for x in block), num_reducers=2)
    assert time.monotonic() - start < 5 and len(outputs) == 2
    wait_for_condition(lambda: shoal.get(gate.count.remote(), timeout=10) > 0)
    ready, _ = shoal.wait(outputs, num_returns=2, timeout=0.5)
    assert ready == []  # the maps are held at the gate
    shoal.get(gate.open.remote(), timeout=10)
    assert shoal.get(outputs, timeout=60) == [list(range(0, 40, 2)), list(range(1, 40, 2))]


@shoal.remote(num_cpus=0)
class Tally:
    """Counts, from inside the tasks: maps running, and maps started whose blocks
    have not all been merged yet."""

    def __init__(self, reducers: int) -> None:
        self.reducers = reducers
        self.running = self.peak_running = 0
        self.unmerged: dict[int, int] = {}  # map id -> reducers not yet merged
        self.peak_open = 0

    def map_start(self, m: int) -> None:
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        self.unmerged[m] = self.reducers
        self.peak_open = max(self.peak_open, len(self.unmerged))

    def map_end(self) -> None:
        self.running -= 1

    def merged(self, maps: list[int]) -> None:
        for m in maps:
            self.unmerged[m] -= 1
            if not self.unmerged[m]:
                del self.unmerged[m]

    def peaks(self) -> tuple[int, int]:
        return self.peak_running, self.peak_open


def _tallied_map(part: np.ndarray, n: int, tally) -> list:
    m = int(part[0, 0])
    shoal.get(tally.map_start.remote(m), timeout=30)
    time.sleep(0.05)  # long enough for the window to fill
    blocks = [part[part[:, 1] % n == r] for r in range(n)]
    shoal.get(tally.map_end.remote(), timeout=30)
    return blocks


def _tallied_merge(*blocks: np.ndarray, tally=None) -> np.ndarray:
    shoal.get(tally.merged.remote(sorted({int(b[0, 0]) for b in blocks if len(b)})),
              timeout=30)
    return np.concatenate(blocks)


@pytest.mark.parametrize("strategy", ["premerge", "push"])
def test_back_pressure_bounds_running_and_unmerged_maps(shoal_cluster, strategy):
    reducers, maps = 3, 12
    tally = Tally.remote(reducers)
    parts = []
    for m in range(maps):  # column 0: the map's id; column 1: what to split on
        part = np.zeros((3000, 2), dtype=np.int64)
        part[:, 0], part[:, 1] = m, np.arange(3000)
        parts.append(part)
    stats = ShuffleStats()
    outputs = shuffle(parts, lambda p, n: _tallied_map(p, n, tally),
                      lambda *b: np.concatenate(b), num_reducers=reducers, strategy=strategy,
                      merge_fn=lambda *b: _tallied_merge(*b, tally=tally),
                      memory_budget=3 * parts[0].nbytes, stats=stats)
    assert sum(len(x) for x in shoal.get(outputs, timeout=60)) == maps * 3000
    limits = stats.limits
    assert limits.maps_open <= 3  # what the budget allows: three partitions
    peak_running, peak_open = shoal.get(tally.peaks.remote(), timeout=10)
    assert peak_running <= limits.maps_running
    assert peak_open <= limits.maps_open
    assert stats.counts.merges_done >= maps // limits.group


def _failing_map(part: list, n: int) -> list:
    if 3 in part:
        raise ValueError(f"bad partition {part}")
    return [part if r == 0 else [] for r in range(n)]


def test_an_error_in_map_fn_reaches_the_outputs_whole(shoal_cluster):
    outputs = shuffle([[1], [2], [3], [4]], _failing_map, lambda *b: sum(b, []),
                      num_reducers=2, strategy="push")
    for out in outputs:
        with pytest.raises(ValueError, match=r"bad partition \[3\]"):
            shoal.get(out, timeout=60)


def _blocks(blocks: int, generator: bool):
    def listed(partition, num_reducers):
        return [partition] * blocks

    def yielded(partition, num_reducers):
        for _ in range(blocks):
            yield partition
    return yielded if generator else listed


@pytest.mark.parametrize("generator", [False, True])
@pytest.mark.parametrize("blocks, says", [(1, "1"), (3, "more than 2|3")])
def test_a_map_fn_with_the_wrong_number_of_blocks_fails_every_output(shoal_cluster, blocks,
                                                                     says, generator):
    """Also a generator's, whose first blocks are stored before it goes wrong."""
    outputs = shuffle([[1], [2]], _blocks(blocks, generator), lambda *b: sum(b, []),
                      num_reducers=2, strategy="simple")
    for out in outputs:
        with pytest.raises(ValueError, match=f"map_fn returned ({says}) blocks for 2 reducers"):
            shoal.get(out, timeout=60)


def test_a_failed_preparation_fails_every_output_instead_of_hanging(shoal_cluster):
    wrong = shoal.put(np.zeros((10, 20), dtype=np.uint8))  # not gensort records
    stats = ShuffleStats()
    outputs = sort([wrong], num_partitions=2, stats=stats)
    for out in outputs:
        with pytest.raises(Exception, match=r"shape \(n, 100\)"):
            shoal.get(out, timeout=60)
    assert stats.wait(10) and "shape (n, 100)" in stats.error


def _split_pairs(part, n):
    return [np.array([x for x in part if x % n == r]) for r in range(n)]


def _evens_then_odds(*blocks):
    """A generator reducer: two outputs from one read of its blocks."""
    values = np.sort(np.concatenate(blocks))
    yield values[values % 2 == 0]
    yield values[values % 2 == 1]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_generator_reducer_yields_several_outputs(shoal_cluster, strategy):
    inputs = [np.arange(i, 600, 6) for i in range(6)]
    outputs = shuffle(inputs, _split_pairs, _evens_then_odds, num_reducers=3,
                      strategy=strategy, reduce_num_returns="dynamic", round_size=2)
    assert len(outputs) == 3
    for r, ref in enumerate(outputs):
        items = list(shoal.get(ref, timeout=60))
        evens, odds = shoal.get(items, timeout=60)
        everything = np.arange(600)
        assert evens.tolist() == [x for x in everything if x % 3 == r and x % 2 == 0]
        assert odds.tolist() == [x for x in everything if x % 3 == r and x % 2 == 1]


def test_bad_arguments_are_refused_by_name(shoal_cluster):
    data = [make_records(0, 10, 1)]
    with pytest.raises(ValueError, match="strategy must be one of"):
        sort(data, num_partitions=2, strategy="pull")
    with pytest.raises(ValueError, match="num_partitions must be an int in 1..65535"):
        sort(data, num_partitions=0)
    with pytest.raises(ValueError, match="inputs is empty"):
        random_shuffle([], num_partitions=2)
    with pytest.raises(TypeError, match="inputs must be a list"):
        shuffle(np.zeros(3), len, len, num_reducers=1)
    with pytest.raises(TypeError, match="map_fn must be callable"):
        shuffle([[1]], None, len, num_reducers=1)
    with pytest.raises(ValueError, match="reduce_num_returns must be 1 or 'dynamic'"):
        shuffle([[1]], len, len, num_reducers=1, reduce_num_returns=2)
    with pytest.raises(ValueError, match=r"sort: input 0 must have shape \(n, 100\)"):
        sort([np.zeros((3, 99), dtype=np.uint8)], num_partitions=1)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        random_shuffle([np.zeros(3)], num_partitions=1, seed=-1)


def test_progress_bars_show_maps_merges_and_reduces_when_asked(shoal_cluster, capsys):
    inputs, _ = gensort_inputs(20_000, 4)
    stats = ShuffleStats()
    shoal.get(sort(inputs, num_partitions=2, progress=True, stats=stats), timeout=60)
    assert stats.wait(30)  # the shuffle's thread ends its bars as it finishes
    err = capsys.readouterr().err  # not a terminal: one final line per bar (tqdm_ray)
    bars = {line.split(":")[0]: line for line in err.splitlines()}
    assert set(bars) == {"sort    maps", "sort  merges", "sort reduces"}, err
    assert "4/4" in bars["sort    maps"] and "2/2" in bars["sort reduces"]
    stats = ShuffleStats()
    shoal.get(sort(inputs, num_partitions=2, stats=stats), timeout=60)  # off by default
    assert stats.wait(30) and capsys.readouterr().err == ""
