"""Unit tests for the object table's read-ahead: a reader going through the
spill order gets the objects that follow in the same read (see
shoal.node.object_store.readahead and policy.choose_readahead).

No sockets, files or threads, as in test_object_table.py.
"""

from __future__ import annotations

import random

from shoal.node.object_store.allocator import OutOfMemory, align
from shoal.node.object_store.policy import READAHEAD_MIN, next_window
from shoal.node.object_store.table import ActionKind, ObjectState, ObjectTable, Room
from tests.unit.object_table_helpers import (
    ALICE,
    BOB,
    DISK,
    A,
    MiB,
    check_invariants,
    kinds,
    oid,
    sealed,
)

# ---- reading ahead ----------------------------------------------------------------------------


def fused(table: ObjectTable, n: int, size: int) -> list[bytes]:
    """``n`` objects spilled into one file, in order."""
    keys = [sealed(table, k, size=size) for k in range(n)]
    table.spill_over_high_water(DISK)
    [batch] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    table.spill_done(batch.batch_id, "/spill/fused",
                     [i * align(size) for i in range(len(batch.items))])
    assert [i.oid for i in batch.items] == keys
    table.take_actions()
    return keys


def restore_now(table: ObjectTable, key: bytes) -> list[bytes]:
    """Restore ``key`` (finishing the read at once); returns what the read held."""
    table.start_restore(key)
    [restore] = [a for a in table.take_actions() if a.kind is ActionKind.RESTORE]
    for item in restore.items:
        table.restore_done(item.oid, ok=True)
    table.take_actions()
    return [i.oid for i in restore.items]


def spill_now(table: ObjectTable, path: str) -> list[bytes]:
    """Spill every sealed object in memory into one file (as if the mark were 0)."""
    mark, table.high_water = table.high_water, 0.0
    table.spill_over_high_water(DISK)
    table.high_water = mark
    [batch] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    offsets = [sum(align(i.size) for i in batch.items[:n]) for n in range(len(batch.items))]
    table.spill_done(batch.batch_id, path, offsets)
    table.take_actions()
    return [i.oid for i in batch.items]


def one_per_file(table: ObjectTable, keys: list[int], size: int) -> list[bytes]:
    """Objects spilled one by one, each into a file of its own, in this order."""
    out = []
    for k in keys:
        out.append(sealed(table, k, size=size))
        assert spill_now(table, f"/spill/{k}") == out[-1:]
    return out


def restores(table: ObjectTable) -> list[list[bytes]]:
    """The RESTORE actions queued, as the objects each one reads."""
    return [[i.oid for i in a.items] for a in table.take_actions()
            if a.kind is ActionKind.RESTORE]


def finish(table: ObjectTable, reads: list[list[bytes]]) -> None:
    for read in reads:
        for key in read:
            table.restore_done(key, ok=True)
    table.take_actions()


def get_and_drop(table: ObjectTable, key: bytes) -> list[list[bytes]]:
    """A reader's get of ``key`` (restored first if spilled; every read finishes
    at once), then its free: returns the reads it started."""
    reads = []
    if table.objects[key].state is ObjectState.SPILLED:
        table.start_restore(key)
        reads += restores(table)
        finish(table, reads)
    assert table.pin(key, ALICE) is not None
    ahead = restores(table)
    finish(table, ahead)
    table.release(key, ALICE)
    table.free(key)
    table.take_actions()
    return reads + ahead


def test_a_reader_going_through_a_file_gets_the_following_objects_in_the_same_read():
    table = ObjectTable(64 * MiB, high_water=0.01, min_spill_bytes=8 * MiB,
                        readahead=3 * MiB)
    keys = fused(table, 8, MiB)
    assert restore_now(table, keys[0]) == keys[:1]  # no reader history yet
    table.pin(keys[0], ALICE)
    assert restore_now(table, keys[1]) == keys[1:2]  # one step in order: not yet
    table.pin(keys[1], ALICE)
    assert restore_now(table, keys[2]) == keys[2:6]  # two: itself and 3 MiB more, one read
    assert [table.objects[k].state for k in keys[:7]] == [
        *[ObjectState.SEALED] * 6, ObjectState.SPILLED]


def test_a_reader_going_through_the_spill_order_reads_ahead_across_files():
    """100 MB objects are spilled one per file: read-ahead must cross files
    (each file one read) to let the disk work while the reader checksums."""
    table = ObjectTable(1024 * MiB, high_water=0.01, min_spill_bytes=0,
                        readahead=256 * MiB)
    keys = one_per_file(table, list(range(8)), 40 * MiB)
    assert get_and_drop(table, keys[0]) == [keys[:1]]
    assert get_and_drop(table, keys[1]) == [keys[1:2]]
    # the second step in order: itself, then two objects (80 MiB) ahead, a read each
    assert get_and_drop(table, keys[2]) == [keys[2:3], keys[3:4], keys[4:5]]
    # pinning what was read ahead keeps the (doubled) window ahead of the reader
    assert get_and_drop(table, keys[3]) == [keys[5:6], keys[6:7], keys[7:8]]
    assert table.stats["readahead_objects"] == 5


def test_the_read_ahead_window_doubles_with_each_step_up_to_the_largest():
    table = ObjectTable(1024 * MiB, high_water=0.01, min_spill_bytes=0,
                        readahead=64 * MiB)
    keys = one_per_file(table, list(range(20)), 8 * MiB)
    ahead = []
    for key in keys[:7]:
        ahead.append(sum(len(r) for r in get_and_drop(table, key) if r != [key]))
    # windows of 16, 32, 64 MiB (2, 4, 8 objects) kept after the reader's object;
    # once the window is full, top-ups wait for a batch of 16 MiB (2 objects)
    assert ahead == [0, 0, 2, 3, 5, 0, 2]
    assert next_window(0, MiB, 1 << 30) == READAHEAD_MIN
    assert next_window(0, 100 * MiB, 1 << 30) == 200 * MiB
    assert next_window(200 * MiB, 100 * MiB, 1 << 30) == 400 * MiB
    assert next_window(800 * MiB, 100 * MiB, 1 << 30) == 1 << 30
    assert next_window(0, 100 * MiB, 0) == 0  # read-ahead off


def test_a_reader_freeing_small_objects_reads_ahead_in_batches_not_one_by_one():
    """1 MiB objects fused into files: the reader frees one object per step,
    which gives back 1 MiB of room; read-ahead waits for a batch of 16 MiB
    (one read of neighbours) instead of reading each freed MiB's worth."""
    table = ObjectTable(64 * MiB, high_water=0.5, min_spill_bytes=16 * MiB,
                        readahead=256 * MiB)
    keys = []
    for n in range(8):
        keys += [sealed(table, 16 * n + k, size=MiB) for k in range(16)]
        assert spill_now(table, f"/spill/{n}") == keys[-16:]
    reads = []
    for key in keys:
        reads += get_and_drop(table, key)
    sizes = [len(r) for r in reads]
    assert sum(sizes) == len(keys)  # each object read once, none twice
    assert len(reads) <= 20, sizes  # 17: 16 MiB runs cut at file ends; was 84, mostly 1 MiB
    assert table.stats["readahead_unused_bytes"] == 0


def test_reading_ahead_keeps_half_the_headroom_free_and_takes_only_free_blocks():
    table = ObjectTable(100 * MiB, high_water=0.6, min_spill_bytes=0,
                        readahead=1 << 30)
    keys = one_per_file(table, list(range(30)), 4 * MiB)
    # 60 MiB in memory (at the mark), 20 MiB of the 40 above it reserved for creates
    held = [sealed(table, 100 + k, size=4 * MiB) for k in range(15)]
    table.take_actions()
    table.spill_over_high_water(DISK)
    assert kinds(table) == [] and table.used == 60 * MiB
    get_and_drop(table, keys[0])
    get_and_drop(table, keys[1])
    reads = get_and_drop(table, keys[2])
    assert reads[0] == [keys[2]]
    # 100 - 60 - 20 (reserve) - 4 (keys[2], still held when it read ahead): 16 MiB
    assert sum(len(r) for r in reads[1:]) == 4
    assert table.used == 60 * MiB + 16 * MiB
    assert all(table.objects[k].state is ObjectState.SEALED for k in held)


def test_a_reader_that_keeps_its_refs_recycles_what_it_passed_to_read_ahead():
    table = ObjectTable(100 * MiB, high_water=0.6, min_spill_bytes=0, readahead=1 << 30)
    keys = one_per_file(table, list(range(40)), 4 * MiB)
    for key in keys:  # get, release, but do not free
        if table.objects[key].state is ObjectState.SPILLED:
            table.start_restore(key)
            finish(table, restores(table))
        assert table.pin(key, ALICE) is not None
        finish(table, restores(table))
        table.release(key, ALICE)
    assert table.stats["readahead_objects"] >= 30
    assert table.stats["readahead_unused_bytes"] == 0
    assert table.used <= 80 * MiB  # half the headroom stays free


def test_restoring_does_not_write_out_objects_that_are_only_in_memory():
    """Copies also on disk do not count toward the high-water mark: a restore
    used to push the store over it, and each one wrote out another object."""
    table = ObjectTable(100 * MiB, high_water=0.6, min_spill_bytes=0, readahead=0)
    keys = one_per_file(table, list(range(10)), 4 * MiB)
    held = [sealed(table, 100 + k, size=4 * MiB) for k in range(15)]
    table.take_actions()
    table.spill_over_high_water(DISK)
    assert kinds(table) == []
    for key in keys:
        table.start_restore(key)
        finish(table, restores(table))
        table.pin(key, ALICE)  # a reader keeps all of them
        table.spill_over_high_water(DISK)
        assert ActionKind.SPILL not in kinds(table)
    assert table.used == 100 * MiB and table.stats["spilled_objects"] == 10
    # and a create finds room by dropping the restored copies nobody pins any more
    for key in keys:
        table.release(key, ALICE)
    assert table.make_room(8 * MiB, DISK) is Room.FITS
    assert ActionKind.SPILL not in kinds(table)
    assert all(table.objects[k].state is ObjectState.SEALED for k in held)


def test_a_shuffles_reduces_read_nothing_ahead_that_they_do_not_use():
    """Maps' outputs spilled map by map (one file each), reduce j reads
    partition j of every map and frees it.  Reduces that run one at a time or
    two at a time never step twice in order; the last reduce does, and reads
    ahead only what it reads next."""
    for together in (1, 2):
        table = ObjectTable(256 * MiB, high_water=0.01, min_spill_bytes=0,
                            readahead=64 * MiB)
        maps, parts = 6, 6
        grid = []
        for m in range(maps):
            grid.append([sealed(table, m * parts + p, size=MiB) for p in range(parts)])
            assert spill_now(table, f"/spill/map{m}") == grid[-1]
        assert all(table.objects[k].state is ObjectState.SPILLED for row in grid for k in row)
        for first in range(0, parts, together):
            reduces = range(first, min(parts, first + together))
            for m in range(maps):
                for p in reduces:
                    if table.objects[grid[m][p]].state is ObjectState.SPILLED:
                        table.start_restore(grid[m][p])
                        finish(table, restores(table))
                    table.pin(grid[m][p], f"reduce-{p}")
                    finish(table, restores(table))
            for m in range(maps):
                for p in reduces:
                    table.release(grid[m][p], f"reduce-{p}")
                    table.free(grid[m][p])
            table.take_actions()
        assert table.stats["readahead_unused_bytes"] == 0, together
        assert table.objects == {} and table.used == 0


def test_random_readers_with_read_ahead_keep_the_books_straight():
    """Readers walk spilled objects in order (from random starts, at random
    speeds) while reads finish in random order and objects are created and
    freed: every reader gets every object, and the books balance."""
    read_ahead = [random_readers(seed) for seed in range(20)]
    assert sum(1 for n in read_ahead if n > 0) >= 13, read_ahead  # it did read ahead


def random_readers(seed: int) -> int:
    """One random run (see above); returns the objects it read ahead."""
    rng = random.Random(seed)
    table = ObjectTable(64 * A, high_water=rng.choice([0.5, 0.8, 1.0]), min_spill_bytes=0,
                        readahead=rng.choice([8 * A, 1 << 30]))
    keys: list[bytes] = []
    while len(keys) < 40:
        keys += [sealed(table, len(keys) + i, size=rng.randrange(1, 6 * A))
                 for i in range(rng.randint(1, 4))]
        spill_now(table, f"/f{len(keys)}")
    readers = {f"r{i}": rng.randrange(len(keys)) for i in range(rng.randint(1, 3))}
    held: dict[str, bytes] = {}
    reads: list = []
    for _ in range(2000):
        name = rng.choice(list(readers))
        op = rng.randrange(4)
        if op == 0 and reads:  # a read finishes
            for item in reads.pop(rng.randrange(len(reads))).items:
                table.restore_done(item.oid, ok=True)
        elif op == 1 and name in held:  # done with it (the last reader also frees it)
            key = held.pop(name)
            table.release(key, name)
            if rng.random() < 0.3:
                table.free(key)
        elif op == 2 and name not in held and readers[name] < len(keys):  # get the next
            key = keys[readers[name]]
            obj = table.objects.get(key)
            if obj is None:
                readers[name] += 1  # freed by another reader: skip it
            elif obj.state is ObjectState.SPILLED:
                try:
                    table.start_restore(key)
                except OutOfMemory:
                    table.make_room(obj.size, DISK)
            elif table.pin(key, name) is not None:
                held[name] = key
                readers[name] += 1
        elif op == 3:
            key = oid(1000 + rng.randrange(8))
            if key in table.objects:
                table.free(key)
            else:
                try:
                    table.create(key, rng.randrange(1, 4 * A), "writer")
                    table.seal(key)
                except OutOfMemory:
                    table.make_room(4 * A, DISK)
        for action in table.take_actions():
            if action.kind is ActionKind.RESTORE:
                reads.append(action)
            elif action.kind is ActionKind.SPILL:
                spill_done = [sum(align(i.size) for i in action.items[:n])
                              for n in range(len(action.items))]
                table.spill_done(action.batch_id, f"/b{action.batch_id}", spill_done)
        check_invariants(table)
        if all(r >= len(keys) for r in readers.values()):
            break
    assert all(r >= len(keys) for r in readers.values()), (seed, readers)
    for action in reads:
        for item in action.items:
            table.restore_done(item.oid, ok=True)
    for name in readers:
        table.client_gone(name)
    for key in list(table.objects):
        table.free(key)
    check_invariants(table)
    assert table.used == 0 and table.cached == 0 and len(table.spill_order) == 0
    return table.stats["readahead_objects"]


def test_a_reader_jumping_between_files_gets_no_read_ahead():
    table = ObjectTable(64 * MiB, high_water=0.01, min_spill_bytes=8 * MiB,
                        readahead=3 * MiB)
    keys = fused(table, 8, MiB)
    other = sealed(table, 50, size=MiB)
    restore_now(table, keys[0])
    table.pin(keys[0], ALICE)
    assert restore_now(table, keys[1]) == keys[1:2]
    table.pin(keys[1], ALICE)
    for _ in range(5):  # a shuffle's reduce reads one partition of every other map
        table.pin(other, BOB)
        table.release(other, BOB)
    assert restore_now(table, keys[2]) == keys[2:3]


def test_a_stuck_answer_is_reconsidered_once_something_moves():
    table = ObjectTable(4 * MiB)
    key = sealed(table, 1, size=4 * MiB)
    table.pin(key, ALICE)
    table.take_actions()
    assert table.make_room(MiB, DISK) is Room.STUCK
    assert table.make_room(MiB, DISK) is Room.STUCK  # remembered
    table.release(key, ALICE)  # now it may be written out
    assert table.make_room(MiB, DISK) is Room.WAIT
    assert [a.kind for a in table.take_actions()] == [ActionKind.SPILL]
