"""Unit tests for shoal.node.object_store.table: the object lifecycle state machine.

No sockets, files or threads: spill and restore I/O is "performed" by calling
the table's completion events, as the service does when a thread finishes.
"""

from __future__ import annotations

import random

import pytest

from shoal.node.object_store.allocator import OutOfMemory, align
from shoal.node.object_store.table import (
    TRANSITIONS,
    ActionKind,
    CopyKind,
    Event,
    ObjectState,
    ObjectStoreFullError,
    ObjectTable,
    Room,
)
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
    spill_all,
)

# ---- creating and sealing ---------------------------------------------------------------


def test_create_allocates_an_object_in_creating_state():
    table = ObjectTable(10 * A)
    offset = table.create(oid(1), 100, ALICE)
    obj = table.objects[oid(1)]
    assert (obj.offset, obj.size, obj.creator, obj.state) == (offset, 100, ALICE,
                                                              ObjectState.CREATING)
    assert obj.kind is CopyKind.PRIMARY and not obj.pinned
    assert table.used == A  # 100 bytes round up to one page-sized block
    assert table.create(oid(2), 1, ALICE) == offset + A


def test_duplicate_create_raises_file_exists_and_keeps_original():
    table = ObjectTable(10 * A)
    offset = table.create(oid(1), 100, ALICE)
    with pytest.raises(FileExistsError, match=oid(1).hex()):
        table.create(oid(1), 50, BOB)
    assert table.objects[oid(1)].offset == offset and table.used == A


def test_object_larger_than_capacity_raises_store_full():
    table = ObjectTable(10 * A)
    with pytest.raises(ObjectStoreFullError, match="larger than the object store"):
        table.create(oid(1), 10 * A + 1, ALICE)
    assert table.objects == {} and table.used == 0
    assert table.create(oid(2), 10 * A, ALICE) == 0  # exactly the capacity fits


def test_no_room_now_raises_out_of_memory():
    table = ObjectTable(4 * A)
    table.create(oid(1), 3 * A, ALICE)
    with pytest.raises(OutOfMemory):
        table.create(oid(2), 2 * A, ALICE)
    assert oid(2) not in table.objects
    assert not issubclass(OutOfMemory, ObjectStoreFullError)


def test_seal_makes_it_available_and_pinnable():
    table = ObjectTable(10 * A)
    table.create(oid(1), 10, ALICE)
    assert table.pin(oid(1), BOB) is None  # not while CREATING
    table.seal(oid(1))
    assert kinds(table) == [ActionKind.AVAILABLE]
    obj = table.pin(oid(1), BOB)
    assert obj.state is ObjectState.SEALED and obj.pins[BOB] == 1


def test_seal_twice_or_unknown_is_refused():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    with pytest.raises(RuntimeError, match="no transition from SEALED on SEAL"):
        table.seal(key)
    with pytest.raises(KeyError):
        table.seal(oid(9))


def test_transition_table_is_total_over_known_states():
    assert set(TRANSITIONS) == set(ObjectState)
    assert TRANSITIONS[ObjectState.FREED] == {Event.REVIVE: ObjectState.SEALED}
    for state, moves in TRANSITIONS.items():
        if state is not ObjectState.FREED:
            assert moves.get(Event.FREE) is ObjectState.FREED, state


# ---- pins and freeing ---------------------------------------------------------------------


def test_memory_returns_when_freed_and_the_last_pin_goes():
    table = ObjectTable(10 * A)
    key = sealed(table, 1, size=3 * A)
    table.pin(key, ALICE)
    table.pin(key, ALICE)
    table.pin(key, BOB)
    table.take_actions()
    assert table.free(key) is True
    assert key not in table.objects and table.used == 3 * A  # held by the readers
    assert table.pin(key, BOB) is None
    table.release(key, ALICE)
    table.release(key, BOB)
    assert table.used == 3 * A
    table.release(key, ALICE)
    assert table.used == 0 and table.freed == {}
    assert ActionKind.SPACE in kinds(table)


def test_free_unknown_or_twice_returns_false():
    table = ObjectTable(10 * A)
    assert table.free(oid(1)) is False
    key = sealed(table, 1)
    assert table.free(key) is True
    assert table.free(key) is False
    assert table.used == 0


def test_free_while_creating_tells_waiting_readers():
    table = ObjectTable(10 * A)
    table.create(oid(1), 100, ALICE)
    table.free(oid(1))
    assert kinds(table) == [ActionKind.GONE, ActionKind.SPACE]
    assert table.used == 0


def test_release_without_pin_is_a_noop():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.release(key, ALICE)
    table.release(oid(7), ALICE)
    table.pin(key, ALICE)
    table.release(key, BOB)
    assert table.objects[key].pins[ALICE] == 1


def test_same_id_can_be_created_again_while_a_freed_copy_is_still_pinned():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    table.free(key)
    table.create(key, 10, BOB)  # a new object with the same id
    table.release(key, ALICE)  # releases the old copy, not the new one
    assert table.objects[key].state is ObjectState.CREATING
    assert table.freed == {}


def test_revive_a_freed_copy_readers_still_pin():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    table.free(key)
    copy = table.revivable(key)
    assert copy is not None
    table.revive(copy, "owner-2")
    assert table.objects[key] is copy and copy.state is ObjectState.SEALED
    assert copy.owner == "owner-2" and table.freed == {}


def test_client_gone_drops_its_pins_and_abandons_its_creates_by_identity():
    class Client:
        def __eq__(self, other):
            return isinstance(other, Client)

        def __hash__(self):
            return 0

    table = ObjectTable(20 * A)
    alice = Client()
    table.create(oid(1), 100, alice)
    kept = sealed(table, 2, creator=alice)
    table.create(oid(3), 100, BOB)
    table.pin(kept, ALICE)
    table.client_gone(Client())  # an equal but different client: nothing happens
    assert oid(1) in table.objects
    table.client_gone(alice)
    assert oid(1) not in table.objects  # its unsealed create is abandoned
    assert kept in table.objects and oid(3) in table.objects
    table.client_gone(ALICE)
    assert not table.objects[kept].pinned


# ---- spilling above the high-water mark ------------------------------------------------------


def test_high_water_spills_least_recently_used_primaries_in_one_batch():
    table = ObjectTable(10 * MiB, high_water=0.5, min_spill_bytes=2 * MiB)
    keys = [sealed(table, n, size=MiB) for n in range(6)]  # 6 MiB used, the mark is 5
    table.pin(keys[0], ALICE)  # recently used, and pinned
    table.release(keys[0], ALICE)
    table.take_actions()
    table.spill_over_high_water(DISK)
    [spill] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    assert [i.oid for i in spill.items] == [keys[1], keys[2]]  # oldest, up to 2 MiB
    assert table.objects[keys[1]].state is ObjectState.SPILLING
    assert table.bytes_spilling() == 2 * MiB
    table.spill_over_high_water(DISK)  # already under the mark, counting the batch
    assert table.take_actions() == []
    table.spill_done(spill.batch_id, "/spill/f", [0, MiB])
    assert table.objects[keys[1]].state is ObjectState.SPILLED
    assert table.objects[keys[1]].offset == -1 and table.used == 4 * MiB
    assert table.on_disk() == (2, 2 * MiB)
    assert table.stats["spilled_bytes"] == 2 * MiB


def test_a_cold_object_spills_first_until_a_reader_pins_it():
    """``create(cold=True)``: the writer hinted no reader wants it soon (a
    shuffle's output), so it leaves memory before older objects; a pin is a
    reader wanting it, and it is an ordinary object again."""
    table = ObjectTable(10 * MiB, high_water=0.5, min_spill_bytes=0)
    keys = [sealed(table, n, size=2 * MiB) for n in range(2)]
    table.create(oid(9), 2 * MiB, ALICE, cold=True)
    table.seal(oid(9))
    table.take_actions()
    table.spill_over_high_water(DISK)  # 6 MiB used, the mark is 5: one object goes
    [spill] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    assert [i.oid for i in spill.items] == [oid(9)]

    table = ObjectTable(10 * MiB, high_water=0.5, min_spill_bytes=0)
    keys = [sealed(table, n, size=2 * MiB) for n in range(2)]
    table.create(oid(9), 2 * MiB, ALICE, cold=True)
    table.seal(oid(9))
    table.pin(oid(9), ALICE)
    table.release(oid(9), ALICE)
    table.take_actions()
    table.spill_over_high_water(DISK)
    [spill] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    assert [i.oid for i in spill.items] == [keys[0]]


def test_pinned_secondary_and_creating_objects_are_never_spilled():
    table = ObjectTable(10 * MiB, high_water=0.1, min_spill_bytes=0)
    pinned = sealed(table, 1, size=MiB)
    table.pin(pinned, ALICE)
    sealed(table, 2, size=MiB, kind=CopyKind.SECONDARY)
    table.create(oid(3), MiB, ALICE)
    table.spill_over_high_water(DISK)
    assert ActionKind.SPILL not in kinds(table)


def test_no_disk_room_no_spill():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    sealed(table, 1, size=MiB)
    table.take_actions()
    table.spill_over_high_water(MiB - 1)
    assert table.take_actions() == []
    table.spill_over_high_water(MiB)
    assert [a.kind for a in table.take_actions()] == [ActionKind.SPILL]


def test_a_reader_pinning_during_the_spill_keeps_the_memory_copy():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    table.pin(key, ALICE)  # SPILLING is still in memory: readable
    spill_all(table)
    obj = table.objects[key]
    assert obj.state is ObjectState.SEALED and obj.disk is not None and obj.offset >= 0
    table.release(key, ALICE)
    table.take_actions()
    table.spill_over_high_water(DISK)  # also on disk now: never written again
    assert ActionKind.SPILL not in kinds(table)
    assert table.make_room(10 * MiB, DISK) is Room.FITS  # dropped for free when needed
    assert obj.state is ObjectState.SPILLED and table.used == 0


def test_failed_spill_keeps_the_object_in_memory_and_a_full_disk_stops_spilling():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    [spill] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    table.spill_failed(spill.batch_id, disk_full=True)
    assert table.objects[key].state is ObjectState.SEALED and table.used == align(MiB)
    assert table.stats["spill_failures"] == 1 and table.disk_full
    table.spill_over_high_water(DISK)
    assert table.take_actions() == []
    assert table.make_room(10 * MiB, DISK) is Room.STUCK


def test_free_during_spill_returns_memory_and_file_when_the_write_ends():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    [spill] = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    table.free(key)
    assert table.used == align(MiB)  # the write still reads the block
    table.spill_done(spill.batch_id, "/spill/f", [0])
    actions = table.take_actions()
    assert table.used == 0 and table.files == {}
    assert ("/spill/f" in [a.path for a in actions if a.kind is ActionKind.DELETE_FILE])


def test_fused_file_is_deleted_with_its_last_object():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=4 * MiB)
    keys = [sealed(table, n, size=MiB) for n in range(4)]
    table.spill_over_high_water(DISK)
    [batch] = spill_all(table, "/spill/fused")
    assert len(batch.items) == 4 and len(table.files) == 1
    for key in keys[:3]:
        table.free(key)
    assert ActionKind.DELETE_FILE not in kinds(table)
    table.free(keys[3])
    assert ActionKind.DELETE_FILE in kinds(table) and table.files == {}


def test_a_disk_read_in_flight_holds_the_file():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    spill_all(table, "/spill/g")
    path, offset = table.open_disk_read(key)
    assert (path, offset) == ("/spill/g.0", 0)
    table.free(key)
    assert ActionKind.DELETE_FILE not in kinds(table)
    table.close_disk_read(path)
    assert kinds(table) == [ActionKind.DELETE_FILE]


# ---- restoring ----------------------------------------------------------------------------


def test_restore_reads_back_into_a_new_block_and_keeps_the_disk_copy():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    spill_all(table)
    assert table.pin(key, ALICE) is None  # SPILLED: a reader must wait for a restore
    assert table.start_restore(key) is True
    [restore] = [a for a in table.take_actions() if a.kind is ActionKind.RESTORE]
    assert (restore.oid, restore.path, restore.file_offset) == (key, "/spill/f1.0", 0)
    obj = table.objects[key]
    assert obj.state is ObjectState.RESTORING and obj.offset >= 0
    assert table.start_restore(key) is False  # once
    table.restore_done(key, ok=True)
    assert obj.state is ObjectState.SEALED and obj.disk is not None
    assert kinds(table) == [ActionKind.AVAILABLE]
    assert table.stats["restored_objects"] == 1


def test_restore_needs_a_block():
    table = ObjectTable(2 * MiB, high_water=0.4, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    spill_all(table)
    table.create(oid(2), 2 * MiB, ALICE)
    with pytest.raises(OutOfMemory):
        table.start_restore(key)
    assert table.objects[key].state is ObjectState.SPILLED


def test_a_failed_restore_loses_the_object_and_tells_its_readers():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    spill_all(table)
    table.start_restore(key)
    table.take_actions()
    table.restore_done(key, ok=False)
    assert key not in table.objects and table.used == 0
    assert ActionKind.GONE in kinds(table)


def test_free_during_restore_returns_the_block_when_the_read_ends():
    table = ObjectTable(10 * MiB, high_water=0.05, min_spill_bytes=0)
    key = sealed(table, 1, size=MiB)
    table.spill_over_high_water(DISK)
    spill_all(table)
    table.start_restore(key)
    table.free(key)
    assert table.used == align(MiB)
    table.restore_done(key, ok=True)
    assert table.used == 0 and table.freed == {} and table.files == {}


# ---- making room ----------------------------------------------------------------------------


def test_make_room_evicts_secondary_copies_and_tells_their_owners():
    table = ObjectTable(4 * MiB)
    copy = sealed(table, 1, size=2 * MiB, kind=CopyKind.SECONDARY, owner="owner:1")
    sealed(table, 2, size=2 * MiB)
    table.take_actions()
    assert table.make_room(2 * MiB, DISK) is Room.FITS
    actions = table.take_actions()
    assert [(a.kind, a.oid, a.owner) for a in actions if a.kind is ActionKind.EVICTED] == \
        [(ActionKind.EVICTED, copy, "owner:1")]
    assert ActionKind.SPILL not in [a.kind for a in actions]  # never written out
    assert copy not in table.objects


def test_make_room_never_answers_fits_for_a_block_an_allocation_took_since():
    # FITS used to be remembered until the next change; an allocation is no change,
    # so the agent was told FITS again, failed to allocate, asked again: for ever
    table = ObjectTable(4 * MiB)
    sealed(table, 1, size=2 * MiB, kind=CopyKind.SECONDARY, owner="owner:1")
    sealed(table, 2, size=2 * MiB)
    table.take_actions()
    assert table.make_room(2 * MiB, DISK) is Room.FITS
    table.create(oid(3), 2 * MiB, ALICE)  # takes the block just made
    room = table.make_room(2 * MiB, DISK)
    assert room is not Room.FITS or table.allocator.fits(2 * MiB)


def test_make_room_waits_for_writes_in_flight_instead_of_spilling_more():
    table = ObjectTable(4 * MiB)
    sealed(table, 1, size=2 * MiB)
    sealed(table, 2, size=2 * MiB)
    assert table.make_room(2 * MiB, DISK) is Room.WAIT
    assert len([a for a in table.take_actions() if a.kind is ActionKind.SPILL]) == 1
    assert table.make_room(2 * MiB, DISK) is Room.WAIT
    assert table.take_actions() == []  # the first spill will do


def test_make_room_is_stuck_when_everything_is_pinned_or_being_made():
    table = ObjectTable(4 * MiB)
    key = sealed(table, 1, size=2 * MiB)
    table.pin(key, ALICE)
    table.create(oid(2), 2 * MiB, BOB)
    assert table.make_room(MiB, DISK) is Room.STUCK


def shuffle_layout(table: ObjectTable, maps: int, parts: int, part: int) -> list[list[bytes]]:
    """Map outputs as a shuffle writes them: each map's partitions side by side."""
    grid = []
    for m in range(maps):
        grid.append([sealed(table, m * parts + p, size=part) for p in range(parts)])
    return grid


def test_fragmented_store_55_percent_full_accepts_a_large_object():
    """The raysort failure (issue 15): 16 maps x 16 partitions; reduces consumed
    partitions 0..13 of every map and wrote their outputs.  Each map's 14 free
    partitions are a hole just too small for a reduce output of 16 partitions."""
    part = 15 * MiB
    capacity = 16 * 16 * part * 19 // 10  # 7.6 GB for 4 GB of map output, scaled
    table = ObjectTable(capacity)
    grid = shuffle_layout(table, maps=16, parts=16, part=part)
    outputs = []
    for column in range(14):
        for row in grid:
            table.free(row[column])
        outputs.append(sealed(table, 1000 + column, size=16 * part))
    table.take_actions()
    big = 16 * part
    assert 0.5 < table.used / capacity < 0.6
    with pytest.raises(OutOfMemory):  # the allocator alone cannot place it
        table.create(oid(5000), big, ALICE)
    assert table.make_room(big, DISK) is Room.WAIT
    [spill] = spill_all(table)
    assert sum(i.size for i in spill.items) == 2 * align(part)  # 2 partitions, not GBs
    assert table.make_room(big, DISK) is Room.FITS
    table.create(oid(5000), big, ALICE)


# ---- invariants under random operations ------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_operations_keep_the_books_straight_and_free_everything(seed):
    rng = random.Random(seed)
    table = ObjectTable(64 * A, high_water=rng.choice([0.3, 0.6, 0.9]),
                        min_spill_bytes=rng.choice([0, 8 * A]),
                        readahead=rng.choice([0, 16 * A, 1 << 30]))
    clients = ["c1", "c2"]
    spills: list = []
    restores: list = []
    for _ in range(300):
        op = rng.randrange(10)
        key = oid(rng.randrange(12))
        obj = table.objects.get(key)
        if op == 0 and obj is None:
            try:
                table.create(key, rng.randrange(1, 12 * A), rng.choice(clients),
                             kind=rng.choice(list(CopyKind)))
            except OutOfMemory:
                table.make_room(8 * A, DISK)
        elif op == 1 and obj is not None and obj.state is ObjectState.CREATING:
            table.seal(key)
        elif op == 2:
            table.pin(key, rng.choice(clients))
        elif op == 3:
            table.release(key, rng.choice(clients))
        elif op == 4:
            table.free(key)
        elif op == 5 and obj is not None and obj.state is ObjectState.SPILLED:
            try:
                table.start_restore(key)
            except OutOfMemory:
                pass
        elif op == 6 and spills:
            action = spills.pop(rng.randrange(len(spills)))
            if rng.random() < 0.2:
                table.spill_failed(action.batch_id, disk_full=False)
            else:
                table.spill_done(action.batch_id, f"/f{action.batch_id}",
                                 [i * 4096 for i in range(len(action.items))])
        elif op == 7 and restores:
            table.restore_done(restores.pop(rng.randrange(len(restores))).oid,
                               ok=rng.random() < 0.9)
        elif op == 8:
            table.client_gone(rng.choice(clients))
        elif op == 9 and rng.random() < 0.5:  # a reader walks the spill order
            client = rng.choice(clients)
            for _, key in list(table.spill_order.after(-1))[:4]:
                try:
                    table.start_restore(key) or table.pin(key, client)
                except OutOfMemory:
                    break
        else:
            table.spill_over_high_water(DISK)
        for action in table.take_actions():
            if action.kind is ActionKind.SPILL:
                spills.append(action)
            elif action.kind is ActionKind.RESTORE:
                restores.append(action)
        check_invariants(table)
    # drain: finish all I/O, drop every client and free everything
    for _ in range(20):
        for action in spills:
            table.spill_done(action.batch_id, f"/f{action.batch_id}",
                             [0] * len(action.items))
        for action in restores:
            table.restore_done(action.oid, ok=True)
        spills, restores = [], []
        for c in clients:
            table.client_gone(c)
        for key in list(table.objects):
            table.free(key)
        for action in table.take_actions():
            if action.kind is ActionKind.SPILL:
                spills.append(action)
            elif action.kind is ActionKind.RESTORE:
                restores.append(action)
        if not spills and not restores:
            break
    check_invariants(table)
    assert table.objects == {} and table.freed == {} and table.used == 0
    assert table.files == {}
