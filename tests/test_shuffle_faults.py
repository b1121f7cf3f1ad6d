"""A shuffle survives node loss (shoal/shuffle over the core's lineage): on a
4-node local cluster, a node is SIGKILLed while the maps run and another while
the merges run; the sort's output must still validate.

The head runs the driver and the shuffle's placeholder actor and has no CPUs;
three nodes of one CPU each do the work, and a fresh node joins after each
kill.  The maps and merges sleep a little (``DELAY_S``) so that each phase
lasts long enough for a kill to land inside it.  ``test_sort_survives_*_long``
(``-m chaos``) repeats it with more data, random victims and every strategy,
and reports the time the kills cost against an undisturbed run.
"""

from __future__ import annotations

import functools
import random
import threading
import time

import pytest

import shoal
from shoal.core import context
from shoal.shuffle import ShuffleStats, kernels, shuffle
from shoal.shuffle.partitioning import boundaries_from_samples
from tests.clusters import connected_cluster
from tests.shuffle_helpers import MiB, gensort_inputs, verdict
from tests.utils import wait_for_condition

NODE_TIMEOUT_S = 1.0
WORKER = {"num_cpus": 1, "object_store_memory": 256 * MiB}


@pytest.fixture
def cluster():
    with connected_cluster(
            {"num_cpus": 0, "object_store_memory": 256 * MiB, "node_timeout_s": NODE_TIMEOUT_S},
            w1=WORKER, w2=WORKER, w3=WORKER) as c:
        yield c


def rebuilds() -> int:
    """Tasks this driver re-ran to rebuild lost objects (a test may look inside)."""
    return context.current_worker_or_none().recovery.lineage.rebuilds


def _slow_map(records, n, bounds, delay):
    time.sleep(delay)
    return kernels.sort_map(records, n, bounds)


def _slow_merge(*blocks, delay):
    time.sleep(delay)  # called once per reducer of the merge
    return kernels.merge_records(*blocks)


def slow_sort(inputs: list, partitions: int, strategy: str, delay: float,
              stats: ShuffleStats) -> list:
    """``sort`` with sleeping maps and merges (uniform keys: no sampling needed)."""
    bounds = boundaries_from_samples([], partitions)
    return shuffle(inputs, functools.partial(_slow_map, bounds=bounds, delay=delay),
                   kernels.sort_reduce, num_reducers=partitions, strategy=strategy,
                   merge_fn=functools.partial(_slow_merge, delay=delay / partitions),
                   round_size=3,
                   stats=stats, progress=False)


def kill_a_worker(cluster, rng: random.Random) -> None:
    """SIGKILL a random non-head node (agent and workers) and add a fresh one."""
    victims = [n for n in cluster.list_all_nodes() if n is not cluster.head_node]
    cluster.remove_node(rng.choice(victims))
    cluster.add_node(**WORKER)


def run_with_kills(cluster, strategy: str, records: int, maps: int, partitions: int,
                   delay: float, rng: random.Random, kills: bool = True) -> float:
    inputs, total = gensort_inputs(records, maps, seed=rng.randrange(1 << 30))
    shoal.wait(inputs, num_returns=len(inputs), timeout=60)
    stats = ShuffleStats()
    start = time.monotonic()
    outputs = slow_sort(inputs, partitions, strategy, delay, stats)
    del inputs
    counts = stats.counts
    if kills:
        wait_for_condition(lambda: counts.maps_done >= 2, timeout=60)
        assert counts.maps_done < maps, "the map phase ended before the kill"
        kill_a_worker(cluster, rng)
        if strategy != "simple":
            wait_for_condition(lambda: counts.maps_done == maps, timeout=120)
            assert counts.merges_done < counts.merges_submitted, "no merge left to kill"
            kill_a_worker(cluster, rng)
    result = verdict(outputs, records, total, timeout=180)
    elapsed = time.monotonic() - start
    assert result.ok, result.problems
    assert stats.wait(30) and stats.error is None
    return elapsed


@pytest.mark.timeout(120)
def test_sort_survives_a_node_kill_in_the_map_phase_and_one_in_the_merge_phase(cluster):
    elapsed = run_with_kills(cluster, "push", records=120_000, maps=12, partitions=6,
                             delay=0.3, rng=random.Random(16))
    assert elapsed < 90
    assert rebuilds() > 0  # the kills took objects that lineage had to make again


@pytest.mark.chaos
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("strategy", ["simple", "premerge", "push"])
def test_sort_survives_node_kills_long(cluster, strategy, capsys):
    rng = random.Random()
    args = dict(records=600_000, maps=24, partitions=12, delay=0.2)
    calm = run_with_kills(cluster, strategy, rng=rng, kills=False, **args)
    killed = run_with_kills(cluster, strategy, rng=rng, **args)
    kills = ("a node killed in the map phase" if strategy == "simple" else
             "a node killed in the map phase and one in the merge phase")
    with capsys.disabled():
        print(f"\n{strategy}: sort of {args['records'] * 100 / 1e6:.0f} MB on 3 workers: "
              f"{calm:.1f} s undisturbed, {killed:.1f} s with {kills} "
              f"(+{killed - calm:.1f} s)")


def _sleepy_map(part: list, n: int) -> list:
    time.sleep(0.3)
    return [part] + [[] for _ in range(n - 1)]


def test_shutdown_in_the_middle_of_a_shuffle_ends_its_driver_thread(shutdown_only):
    shoal.init(num_cpus=2)
    stats = ShuffleStats()
    shuffle([[i] for i in range(20)], _sleepy_map, lambda *b: sum(b, []), num_reducers=2,
            stats=stats)
    wait_for_condition(lambda: stats.counts.maps_done >= 1, timeout=30)
    shoal.shutdown()
    assert stats.wait(10)  # the thread saw the shutdown and ended
    assert not [t for t in threading.enumerate() if t.name == "shoal-shuffle"]


def _node_map(part: list, n: int) -> list:
    time.sleep(0.1)  # long enough that one node cannot take every map in turn
    return [[shoal.get_runtime_context().get_node_id()]] + [[] for _ in range(n - 1)]


def test_maps_spread_over_the_nodes_when_the_driver_node_has_no_cpus(cluster):
    """The library places its maps: left to the default policy, every task of a
    driver on a CPU-less head ran on one node."""
    outputs = shuffle([[i] for i in range(12)], _node_map, lambda *b: sum(b, []),
                      num_reducers=2, strategy="simple")
    nodes = shoal.get(outputs[0], timeout=60)
    workers = {n.node_id for n in cluster.list_all_nodes() if n is not cluster.head_node}
    assert set(nodes) == workers, (set(nodes), workers)


def _sort_key_rows(rows):
    import numpy as np
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("strategy", ["simple", "push"])
def test_outputs_lost_after_the_shuffle_finished_are_rebuilt_exact(cluster, strategy):
    """Every reduce has finished and the shuffle's thread has ended (it dropped
    every block) when the node holding output 0 is killed: the lost outputs are
    rebuilt through their reduces, whose placeholder answers kept their block
    refs' rows, and the blocks (freed) through the maps and merges."""
    import numpy as np

    from shoal.shuffle.gensort import make_records
    records, maps, partitions = 60_000, 6, 3  # outputs ~2 MB, blocks ~330 kB: in shm
    inputs, _ = gensort_inputs(records, maps, seed=5)
    bounds = boundaries_from_samples([], partitions)
    stats = ShuffleStats()
    outputs = shuffle(inputs, functools.partial(kernels.sort_map, boundaries=bounds),
                      kernels.sort_reduce, num_reducers=partitions, strategy=strategy,
                      round_size=3, stats=stats, progress=False)
    del inputs
    assert shoal.wait(outputs, num_returns=partitions, timeout=60, fetch_local=False)[1] == []
    assert stats.wait(30) and stats.error is None
    values = context.current_worker_or_none().value_table
    where = values.get(outputs[0].object_id).node_id
    victim = next(n for n in cluster.list_all_nodes() if n.node_id == where)
    lost = [o for o in outputs if values.get(o.object_id).node_id == where]
    cluster.add_node(**WORKER)
    cluster.remove_node(victim)
    before = rebuilds()
    got = shoal.get(outputs, timeout=120)
    assert rebuilds() - before >= len(lost)  # the reduces ran again (and their sources)
    per = records // maps
    expected = np.concatenate([make_records(i * per, per, 5) for i in range(maps)])
    for part in got:
        keys = part[:, :10]
        assert all(bytes(keys[i]) <= bytes(keys[i + 1]) for i in range(len(keys) - 1))
    assert sum(len(p) for p in got) == records
    assert np.array_equal(_sort_key_rows(np.concatenate(got)), _sort_key_rows(expected))
