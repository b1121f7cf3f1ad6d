"""Spilling the object store to disk (shoal/node/object_store, docs/design.md
"Object store and spilling"): real processes, a real arena, real files.

Each test starts its own small cluster with its spill directory in the test's
``tmp_path``, so the files can be looked at.  Values are checked byte for
byte through a checksum of data that differs per object and per position.
The long versions are marked ``scale``.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib

import numpy as np
import psutil
import pytest

import shoal
from shoal import exceptions
from shoal.core import context
from shoal.objects.spill_folders import MADE_BY_SHOAL
from shoal.rpc.messages import Method
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.clusters import connected_cluster, store_stats
from tests.utils import wait_for_condition

MiB = 1 << 20


def data(seed: int, size: int) -> np.ndarray:
    """``size`` bytes that differ per object and per position."""
    words = np.arange(size // 8, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(seed)
    return words.view(np.uint8)


def crc(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(array).cast("B"))


def stats() -> dict:
    return context.current_worker_or_none().node_call(Method.STORE_STATS)


def spill_files(folder: str) -> list[str]:
    """Spilled objects' files (not the marker of a root shoal made)."""
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
            if name != MADE_BY_SHOAL]


def start(tmp_path, store: int, **system) -> str:
    spill = str(tmp_path / "spill")
    shoal.init(num_cpus=2, object_store_memory=store, object_spilling_directory=spill,
               _system_config=system)
    return spill


def put_and_read_back(count: int, size: int) -> None:
    refs, sums = [], []
    for i in range(count):
        value = data(i, size)
        refs.append(shoal.put(value))
        sums.append(crc(value))
    for i in range(count):  # in order, then a few again in reverse
        assert crc(shoal.get(refs[i], timeout=60)) == sums[i], i
    for i in reversed(range(0, count, max(1, count // 7))):
        assert crc(shoal.get(refs[i], timeout=60)) == sums[i], i


# ---- holding more than the store ---------------------------------------------------------


def test_three_times_the_store_in_100_mb_arrays(shutdown_only, tmp_path):
    spill = start(tmp_path, 256 * MiB)
    put_and_read_back(8, 100 * MiB)  # 800 MB through a 256 MB store
    s = stats()
    assert s["spilled_objects_total"] >= 6 and s["restored_objects_total"] >= 6
    assert s["used"] <= s["capacity"]
    assert spill_files(spill)  # the spilled objects are still held


def test_three_times_the_store_in_small_objects(shutdown_only, tmp_path):
    spill = start(tmp_path, 64 * MiB, min_spilling_size=16 * MiB)
    put_and_read_back(200, MiB)  # 200 MB through a 64 MB store
    s = stats()
    assert s["spilled_objects_total"] >= 140
    # small objects are fused: far fewer files than objects (one each without
    # fusion).  Not 16 a file: when no batch is being written and fewer objects
    # can go (the read-back restores and frees as it goes), a smaller batch
    # goes at once (policy.choose_batch); runs made 7.2-8.7 objects a file
    assert 0 < len(spill_files(spill)) <= s["spilled_objects_total"] // 4


@pytest.mark.scale
@pytest.mark.timeout(600)
def test_three_times_the_store_in_thousands_of_1_mb_objects(shutdown_only, tmp_path):
    start(tmp_path, 1 << 30)
    put_and_read_back(3200, MiB)


@pytest.mark.scale
@pytest.mark.timeout(600)
def test_three_times_the_store_in_100_mb_arrays_at_scale(shutdown_only, tmp_path):
    start(tmp_path, 1 << 30)
    put_and_read_back(32, 100 * MiB)


def cluster_memory(arena: str) -> int:
    """Bytes of memory the cluster's processes hold: each one's private pages
    outside the arena, plus the arena's allocated pages once (the driver, this
    test's process, holds the test's own arrays and is left out)."""
    total = os.stat(arena).st_blocks * 512
    for child in psutil.Process().children(recursive=True):
        try:
            with open(f"/proc/{child.pid}/smaps") as smaps:
                in_arena = False
                for line in smaps:
                    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                        in_arena = line.rstrip().endswith(arena)
                    elif not in_arena and line.startswith(("Private_Clean:", "Private_Dirty:")):
                        total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            pass  # a worker that exited
    return total


def test_the_cluster_stays_within_the_store_plus_a_fixed_overhead(shutdown_only, tmp_path):
    """The memory bound of design.md "Object store and spilling": spilling and
    restoring 3x the store adds at most the store's capacity (and a little
    bookkeeping) to what the idle cluster holds; spilled bytes are not kept in
    memory, nor restored copies beyond the arena."""
    store = 128 * MiB
    start(tmp_path, store, min_spilling_size=16 * MiB)
    arena = context.current_worker_or_none().shm.arena.path
    idle = cluster_memory(arena)
    peak, done = [idle], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(cluster_memory(arena))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        put_and_read_back(96, 4 * MiB)  # 384 MB through a 128 MB store
        assert stats()["spilled_objects_total"] >= 60
    finally:
        done.set()
        sampler.join()
    overhead = 64 * MiB  # measured 30-34: the agent's tables, I/O threads, heap growth
    assert max(peak) <= idle + store + overhead, (
        f"idle {idle / MiB:.0f} MiB, peak {max(peak) / MiB:.0f} MiB, store {store / MiB} MiB")


def test_an_object_larger_than_the_store_lives_in_disk_backed_memory(shutdown_only,
                                                                      tmp_path):
    spill = start(tmp_path, 64 * MiB)
    value = data(3, 100 * MiB)
    ref = shoal.put(value)
    assert any(os.path.basename(p).startswith("backed-") for p in spill_files(spill))
    assert crc(shoal.get(ref, timeout=60)) == crc(value)

    @shoal.remote
    def checksum(array):
        return crc(array)

    assert shoal.get(checksum.remote(ref), timeout=60) == crc(value)  # a task maps it too
    del ref
    wait_for_condition(lambda: not spill_files(spill), timeout=10)


def arena_resident_in_agent(path: str) -> int:
    """Bytes of the arena mapped in its agent's page tables (smaps Rss)."""
    agent = os.path.basename(path).split("-")[1]
    with open(f"/proc/{agent}/smaps") as smaps:
        lines = smaps.read().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(path):
            for field in lines[i + 1:]:
                if field.startswith("Rss:"):
                    return int(field.split()[1]) * 1024
    raise AssertionError(f"the agent does not map {path}")


def test_the_agent_maps_the_whole_arena_once_spilling_starts(shutdown_only, tmp_path):
    """Restores and read-ahead land on pages mapped beforehand, not faulted in
    page by page during an O_DIRECT read (design.md "Object store and spilling")."""
    store = 64 * MiB
    start(tmp_path, store, min_spilling_size=8 * MiB)
    arena = context.current_worker_or_none().shm.arena.path
    first = [shoal.put(data(i, 4 * MiB)) for i in range(4)]
    assert stats()["spilled_objects_total"] == 0
    assert arena_resident_in_agent(arena) < store // 2  # nothing asked for it yet
    refs = [shoal.put(data(i, 4 * MiB)) for i in range(4, 24)]
    assert stats()["spilled_objects_total"] > 0
    wait_for_condition(lambda: arena_resident_in_agent(arena) == store, timeout=30,
                       message="the agent did not map the arena after spilling started")
    assert crc(shoal.get(first[0], timeout=30)) == crc(data(0, 4 * MiB))
    assert crc(shoal.get(refs[-1], timeout=30)) == crc(data(23, 4 * MiB))


def test_the_spill_directory_empties_when_refs_go(shutdown_only, tmp_path):
    spill = start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)
    refs = [shoal.put(data(i, 4 * MiB)) for i in range(48)]
    wait_for_condition(lambda: spill_files(spill), timeout=10)
    assert crc(shoal.get(refs[0], timeout=30)) == crc(data(0, 4 * MiB))  # restored
    del refs
    wait_for_condition(lambda: not spill_files(spill), timeout=10,
                       message="spill files left after every ref was dropped")
    assert stats()["objects_on_disk"] == 0


def test_the_spill_directory_goes_with_the_node(shutdown_only, tmp_path):
    """The directory did not exist, so shoal made it, and removes it whole."""
    spill = start(tmp_path, 64 * MiB)
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(16)]
    node_folders = [n for n in os.listdir(spill) if not n.startswith(".")]
    assert len(node_folders) == 1 and spill_files(spill)
    del refs
    shoal.shutdown()
    assert not os.path.exists(spill)


def test_a_spill_directory_the_user_made_stays_empty(shutdown_only, tmp_path):
    spill = tmp_path / "mine"
    spill.mkdir()
    shoal.init(num_cpus=1, object_store_memory=64 * MiB, object_spilling_directory=str(spill))
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(16)]
    assert spill_files(str(spill))
    del refs
    shoal.shutdown()
    assert os.listdir(spill) == []


def test_the_default_spill_directory_leaves_the_session_folder(shutdown_only):
    ctx = shoal.init(num_cpus=1, object_store_memory=64 * MiB, include_dashboard=False)
    spill = os.path.join(ctx["session_dir"], "spill")
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(16)]
    assert spill_files(spill)
    del refs
    shoal.shutdown()
    assert os.path.isdir(ctx["session_dir"]) and not os.path.exists(spill)


# ---- readers, concurrency -------------------------------------------------------------------


def test_objects_read_while_others_spill_keep_their_views(shutdown_only, tmp_path):
    start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)
    held = [shoal.get(shoal.put(data(i, 8 * MiB)), timeout=30) for i in range(3)]
    sums = [crc(v) for v in held]
    more = [shoal.put(data(100 + i, 8 * MiB)) for i in range(20)]  # 160 MB more
    assert stats()["spilled_objects_total"] >= 10
    assert [crc(v) for v in held] == sums  # pinned views: never spilled from under us
    for i, ref in enumerate(more):
        assert crc(shoal.get(ref, timeout=30)) == crc(data(100 + i, 8 * MiB))


def test_objects_spilled_one_per_file_come_back_in_order_with_read_ahead(shutdown_only,
                                                                        tmp_path):
    """Like the spill benchmark: each object is a spill file of its own, and a
    reader gets them in creation order and drops each.  Read-ahead crosses
    files: the store restores the next objects before they are asked for."""
    spill = start(tmp_path, 64 * MiB, min_spilling_size=MiB, object_spilling_threshold=0.5)
    count, size = 48, 4 * MiB  # 3x the store
    refs = [shoal.put(data(i, size)) for i in range(count)]
    assert len(spill_files(spill)) >= count // 2  # about one file per object
    for i in range(count):
        assert crc(shoal.get(refs[i], timeout=60)) == crc(data(i, size)), i
        refs[i] = None
    s = stats()
    assert s.get("readahead_objects_total", 0) >= count // 2, s
    assert s["readahead_unused_bytes_total"] == 0  # all of it was read


def test_readers_holding_views_while_read_ahead_runs_keep_their_values(shutdown_only,
                                                                       tmp_path):
    """Two readers go through the spilled objects in order (one half each),
    each holding the views of the last few it got and dropping the refs it
    passed, while read-ahead fills free blocks around them: no held view
    changes, and every value comes back whole."""
    start(tmp_path, 64 * MiB, min_spilling_size=MiB, object_spilling_threshold=0.3)
    count, size = 64, 2 * MiB
    refs = [shoal.put(data(i, size)) for i in range(count)]
    sums = [crc(data(i, size)) for i in range(count)]
    errors: list = []

    def reader(first: int, end: int) -> None:
        held: list = []
        try:
            for i in range(first, end):
                held.append((i, shoal.get(refs[i], timeout=60)))
                refs[i] = None
                del held[:-3]  # the views of the last 3 objects stay held
                for j, view in held:
                    assert crc(view) == sums[j], (first, j)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(first, first + count // 2))
               for first in (0, count // 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert stats().get("readahead_objects_total", 0) > 0  # it ran among the held views


def test_concurrent_puts_gets_and_frees_under_spilling(shutdown_only, tmp_path):
    start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)
    errors: list = []

    @shoal.remote
    def churn(seed: int, rounds: int) -> int:
        import random

        rng = random.Random(seed)
        kept = []
        for r in range(rounds):
            size = rng.choice([1, 2, 4, 6]) * MiB
            kept.append((shoal.put(data(seed * 1000 + r, size)), seed * 1000 + r, size))
            if len(kept) > 6:
                ref, s, n = kept.pop(rng.randrange(len(kept)))
                assert crc(shoal.get(ref, timeout=60)) == crc(data(s, n))
        for ref, s, n in kept:
            assert crc(shoal.get(ref, timeout=60)) == crc(data(s, n))
        return rounds

    def driver_thread(seed: int) -> None:
        try:
            refs = []
            for r in range(25):
                refs.append((shoal.put(data(seed + r, 3 * MiB)), seed + r))
                if r % 3 == 2:
                    ref, s = refs.pop(0)
                    assert crc(shoal.get(ref, timeout=60)) == crc(data(s, 3 * MiB))
            for ref, s in refs:
                assert crc(shoal.get(ref, timeout=60)) == crc(data(s, 3 * MiB))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=driver_thread, args=(10_000 * (t + 1),))
               for t in range(2)]
    for t in threads:
        t.start()
    assert shoal.get([churn.remote(s, 25) for s in range(2)], timeout=120) == [25, 25]
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    s = stats()
    assert s["spilled_objects_total"] > 0 and s["restored_objects_total"] > 0


def test_a_shuffle_larger_than_the_store_completes(shutdown_only, tmp_path):
    """Map tasks with num_returns=R, reduce tasks over a column of refs (the
    raysort shape), with twice the store's capacity in flight."""
    start(tmp_path, 96 * MiB, min_spilling_size=8 * MiB)
    maps, parts, part = 6, 6, 4 * MiB

    @shoal.remote(num_returns=parts)
    def map_task(m: int):
        return [data(m * parts + p, part) for p in range(parts)]

    @shoal.remote
    def reduce_task(*column):
        return np.concatenate(column)

    grid = [map_task.remote(m) for m in range(maps)]
    outputs = [reduce_task.remote(*[grid[m][p] for m in range(maps)]) for p in range(parts)]
    del grid
    for p, ref in enumerate(outputs):
        expected = np.concatenate([data(m * parts + p, part) for m in range(maps)])
        assert crc(shoal.get(ref, timeout=120)) == crc(expected)
    assert stats()["spilled_objects_total"] > 0


def test_a_worker_death_does_not_lose_spilled_objects(shutdown_only, tmp_path):
    start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)

    @shoal.remote(max_retries=0)
    def produce(i: int):
        return data(i, 8 * MiB), os.getpid()

    pairs = [produce.options(num_returns=2).remote(i) for i in range(16)]
    pids = set(shoal.get([p[1] for p in pairs], timeout=60))
    for pid in pids:
        os.kill(pid, 9)  # the processes that wrote the objects
    assert stats()["spilled_objects_total"] > 0
    for i, (ref, _) in enumerate(pairs):
        assert crc(shoal.get(ref, timeout=60)) == crc(data(i, 8 * MiB))


# ---- the state API -----------------------------------------------------------------------


def test_memory_summary_and_list_objects_show_spilling(shutdown_only, tmp_path):
    from shoal.util.state import list_objects

    start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(16)]
    text = shoal.util.memory_summary(stats_only=True)
    assert "Spilled " in text and "avg write throughput" in text
    records = {r.object_id: r for r in list_objects(limit=1000)}
    node = shoal.get_runtime_context().get_node_id()
    where = [records[ref.hex()].copies.get(node) for ref in refs]
    assert "DISK" in where and "MEMORY" in where
    worker = context.current_worker_or_none()

    def spilled_in_node_table():  # what `shoal status` prints, from the heartbeats
        (row,) = [n for n in worker.control_call(Method.GET_NODES) if n["node_id"] == node]
        return row["store"].get("spilled_objects_total", 0)

    wait_for_condition(spilled_in_node_table, timeout=10)


def test_a_tasks_cold_returns_leave_memory_before_older_objects(shutdown_only, tmp_path):
    """``.options(_cold_returns=True)``, shoal's extension: the task's returns are
    not read soon, so when the store passes its high-water mark they are written
    out before objects used longer ago (the shuffle's outputs against its merged
    blocks, docs/design.md section 20)."""
    from shoal.util.state import list_objects

    start(tmp_path, 64 * MiB, min_spilling_size=0)

    @shoal.remote
    def make(i: int):
        return data(i, 8 * MiB)

    hot = [shoal.put(data(i, 8 * MiB)) for i in range(2)]  # the oldest
    cold = [make.options(_cold_returns=True).remote(i) for i in (2, 3)]
    shoal.wait(cold, num_returns=2, timeout=60)
    more = [shoal.put(data(i, 8 * MiB)) for i in range(4, 7)]  # 56 MiB: the mark is 51
    node = shoal.get_runtime_context().get_node_id()

    def where() -> dict:
        records = {r.object_id: r for r in list_objects(limit=1000)}
        return {ref.hex(): records[ref.hex()].copies.get(node) for ref in hot + cold + more}

    wait_for_condition(lambda: "DISK" in where().values(), timeout=30)
    places = where()
    assert "DISK" in [places[r.hex()] for r in cold], places
    assert [places[r.hex()] for r in hot] == ["MEMORY", "MEMORY"], places
    assert [crc(a) for a in shoal.get(cold, timeout=30)] == [crc(data(i, 8 * MiB))
                                                              for i in (2, 3)]
    with pytest.raises(TypeError, match="_cold_returns"):
        make.options(_cold_returns="yes")


def test_get_read_in_place_maps_a_spilled_object_without_restoring_it(shutdown_only,
                                                                      tmp_path):
    """``shoal.get(ref, _read_in_place=True)`` and a task's
    ``_read_args_in_place=True`` (shoal's extensions) read a spilled value from
    its spill file: nothing is restored and the value is exact; a plain get
    restores it as before."""
    start(tmp_path, 64 * MiB, min_spilling_size=8 * MiB)
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(12)]
    wait_for_condition(lambda: stats()["spilled_objects_total"] >= 4, timeout=30)
    restored = stats()["restored_bytes_total"]

    @shoal.remote
    def sample(boxed: list, rows: list) -> list:
        value = shoal.get(boxed[0], _read_in_place=True)
        return [int(value[r]) for r in rows]

    @shoal.remote(_read_args_in_place=True)  # the same for a task's arguments
    def sample_arg(value, rows: list) -> list:
        return [int(value[r]) for r in rows]

    rows = [0, 12345, 4 * MiB + 7, 8 * MiB - 1]
    for i in range(4):  # the oldest: spilled
        expected = [int(data(i, 8 * MiB)[r]) for r in rows]
        assert shoal.get(sample.remote([refs[i]], rows), timeout=30) == expected
        assert shoal.get(sample_arg.remote(refs[i], rows), timeout=30) == expected
    assert crc(shoal.get(refs[0], timeout=30, _read_in_place=True)) == crc(data(0, 8 * MiB))
    assert stats()["restored_bytes_total"] == restored
    assert crc(shoal.get(refs[1], timeout=30)) == crc(data(1, 8 * MiB))
    assert stats()["restored_bytes_total"] > restored
    with pytest.raises(TypeError, match="_read_in_place"):
        shoal.get(refs[0], _read_in_place=1)


def test_several_spill_directories_are_used_in_turn(shutdown_only, tmp_path):
    folders = [str(tmp_path / "a"), str(tmp_path / "b")]
    shoal.init(num_cpus=1, object_store_memory=64 * MiB, object_spilling_directory=folders,
               _system_config={"min_spilling_size": 8 * MiB})
    refs = [shoal.put(data(i, 8 * MiB)) for i in range(24)]
    assert all(spill_files(f) for f in folders)
    assert crc(shoal.get(refs[0], timeout=30)) == crc(data(0, 8 * MiB))


# ---- a full disk --------------------------------------------------------------------------


def test_a_full_spill_disk_gives_a_clear_error_and_loses_nothing(shutdown_only, tiny_disk):
    shoal.init(num_cpus=1, object_store_memory=32 * MiB, object_spilling_directory=tiny_disk,
               _system_config={"min_spilling_size": 4 * MiB})
    refs, sums = [], []
    with pytest.raises(exceptions.ObjectStoreFullError) as info:
        for i in range(40):  # 80 MB into 32 MB of memory and 24 MB of disk
            value = data(i, 2 * MiB)
            refs.append(shoal.put(value))
            sums.append(crc(value))
    message = str(info.value)
    needed = re.search(r"cannot create an object of (\d+) bytes", message)
    free = re.search(r"has (\d+) bytes free", message)
    assert tiny_disk in message and needed and free, message
    assert 2 * MiB <= int(needed.group(1)) < 3 * MiB and int(free.group(1)) < int(needed.group(1))
    assert len(refs) >= 20  # memory and disk were both used before it failed
    assert stats()["spilled_objects_total"] > 0
    for ref, expected in zip(refs, sums, strict=True):
        assert crc(shoal.get(ref, timeout=60)) == expected


# ---- several nodes ----------------------------------------------------------------------------


def on(node) -> dict:
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False)}


@shoal.remote
def produce_on_node(i: int, size: int):
    return data(i, size)


def test_pulling_spilled_objects_from_another_node_streams_them_from_disk(tmp_path):
    with connected_cluster(
            {"num_cpus": 1, "object_store_memory": 64 * MiB,
             "object_spilling_directory": str(tmp_path / "head")},
            other={"num_cpus": 1, "object_store_memory": 64 * MiB,
                   "object_spilling_directory": str(tmp_path / "other"),
                   "min_spilling_size": 8 * MiB}) as cluster:
        refs = [produce_on_node.options(**on(cluster.other)).remote(i, 8 * MiB)
                for i in range(16)]  # 128 MB made on the other node
        shoal.wait(refs, num_returns=len(refs), timeout=60)
        before = store_stats(cluster, cluster.other)
        assert before["spilled_objects_total"] > 0
        for i, ref in enumerate(refs):  # read here: pulled from the other node
            assert crc(shoal.get(ref, timeout=60)) == crc(data(i, 8 * MiB))
        after = store_stats(cluster, cluster.other)
        # spilled objects were served from their files, not restored first
        assert after["restored_objects_total"] == before["restored_objects_total"]


def test_an_object_larger_than_a_nodes_store_is_pulled_into_disk_backed_memory(tmp_path):
    """A 96 MB object made on a node with a 256 MiB store, read by a task on a node
    whose store holds 48 MiB: the copy lands in a file of its own there (it used
    to fail with ObjectStoreFullError), the task maps it, and the file goes when
    the ref does."""
    small = tmp_path / "small"
    with connected_cluster(
            {"num_cpus": 1, "object_store_memory": 256 * MiB,
             "object_spilling_directory": str(tmp_path / "head")},
            other={"num_cpus": 1, "object_store_memory": 48 * MiB,
                   "object_spilling_directory": str(small)}) as cluster:
        value = data(5, 96 * MiB)
        ref = shoal.put(value)

        @shoal.remote
        def checksum(wrapped):
            return crc(shoal.get(wrapped[0], timeout=60))

        assert shoal.get(checksum.options(**on(cluster.other)).remote([ref]),
                         timeout=90) == crc(value)
        assert any(os.path.basename(p).startswith("backed-")
                   for p in spill_files(str(small)))
        del ref
        wait_for_condition(lambda: not spill_files(str(small)), timeout=20,
                           message="the pulled copy's file outlived the object")


def test_a_node_death_loses_its_spilled_objects_and_lineage_rebuilds_them(tmp_path):
    with connected_cluster(
            {"num_cpus": 0, "resources": {"head": 1}, "object_store_memory": 64 * MiB,
             "node_timeout_s": 1.0},
            first={"num_cpus": 1, "resources": {"worker": 1}, "object_store_memory": 64 * MiB,
                   "object_spilling_directory": str(tmp_path / "first"),
                   "min_spilling_size": 8 * MiB}) as cluster:
        refs = [produce_on_node.options(resources={"worker": 1}).remote(i, 8 * MiB)
                for i in range(16)]
        shoal.wait(refs, num_returns=len(refs), timeout=60)
        assert store_stats(cluster, cluster.first)["spilled_objects_total"] > 0
        folder = tmp_path / "first"
        assert spill_files(str(folder))
        cluster.remove_node(cluster.first)
        assert not spill_files(str(folder))  # its starter removed what it left
        cluster.add_node(num_cpus=1, resources={"worker": 1}, object_store_memory=64 * MiB)
        for i, ref in enumerate(refs):
            assert crc(shoal.get(ref, timeout=60)) == crc(data(i, 8 * MiB))
        assert context.current_worker_or_none().recovery.lineage.rebuilds >= 1


def test_objects_the_puts_made_wait_for_room_instead_of_failing(shutdown_only, tmp_path):
    """Back-pressure: a put into a full store waits for spills (it used to raise
    ObjectStoreFullError after 5 s)."""
    start(tmp_path, 32 * MiB, min_spilling_size=MiB)
    begin = time.monotonic()
    refs = [shoal.put(data(i, 12 * MiB)) for i in range(10)]  # each needs a spill first
    assert time.monotonic() - begin < 30
    assert crc(shoal.get(refs[0], timeout=30)) == crc(data(0, 12 * MiB))


def test_a_node_refuses_a_spill_directory_it_cannot_use(tmp_path):
    from shoal.cluster_utils import Cluster
    from shoal.launch.node_process import NodeStartError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with Cluster() as cluster, pytest.raises(NodeStartError) as info:
        cluster.add_node(num_cpus=0, object_spilling_directory=str(blocker / "spill"))
    assert "as an object spilling directory" in str(info.value)
    assert str(blocker / "spill") in str(info.value)
