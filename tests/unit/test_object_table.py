"""Unit tests for shoal.node.object_store: ObjectTable bookkeeping, Arena, stale arenas."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from shoal.node import object_store
from shoal.node.allocator import ALIGNMENT, OutOfMemory
from shoal.node.object_store import (
    SHM_DIR,
    SHM_PREFIX,
    Arena,
    ObjectStoreFullError,
    ObjectTable,
    arena_path,
    remove_stale_arenas,
)

A = ALIGNMENT
ALICE = "client-alice"
BOB = "client-bob"


def oid(n: int) -> bytes:
    return n.to_bytes(4, "big") * 7


def sealed(table: ObjectTable, n: int, size: int = 100, creator: object = ALICE) -> bytes:
    key = oid(n)
    table.create(key, size, creator)
    table.seal(key)
    return key


# ---- create ----------------------------------------------------------------------------


def test_create_allocates_and_records_unsealed_object():
    table = ObjectTable(10 * A)
    offset = table.create(oid(1), 100, ALICE)
    obj = table.objects[oid(1)]
    assert (obj.offset, obj.size, obj.creator) == (offset, 100, ALICE)
    assert not obj.sealed and not obj.freed and not obj.pinned
    assert table.used == 2 * A  # 100 bytes round up to two 64-byte blocks
    assert table.create(oid(2), 1, ALICE) == offset + 2 * A


def test_duplicate_create_raises_file_exists_and_keeps_original():
    table = ObjectTable(10 * A)
    offset = table.create(oid(1), 100, ALICE)
    with pytest.raises(FileExistsError, match=oid(1).hex()):
        table.create(oid(1), 50, BOB)
    assert table.objects[oid(1)].offset == offset
    assert table.objects[oid(1)].creator == ALICE
    assert table.used == 2 * A


def test_object_larger_than_capacity_raises_store_full():
    table = ObjectTable(10 * A)
    with pytest.raises(ObjectStoreFullError, match="larger than the object store"):
        table.create(oid(1), 10 * A + 1, ALICE)
    assert table.objects == {}
    assert table.used == 0


def test_object_of_exactly_capacity_fits():
    table = ObjectTable(10 * A)
    assert table.create(oid(1), 10 * A, ALICE) == 0
    assert table.used == table.capacity


def test_capacity_is_aligned_down_for_the_size_check():
    table = ObjectTable(10 * A + 10)
    assert table.capacity == 10 * A
    with pytest.raises(ObjectStoreFullError):
        table.create(oid(1), 10 * A + 5, ALICE)


def test_no_room_now_raises_out_of_memory_not_store_full():
    table = ObjectTable(4 * A)
    table.create(oid(1), 3 * A, ALICE)
    with pytest.raises(OutOfMemory):
        table.create(oid(2), 2 * A, ALICE)
    assert oid(2) not in table.objects
    assert not issubclass(OutOfMemory, ObjectStoreFullError)


# ---- seal / pin -------------------------------------------------------------------------


def test_unsealed_object_cannot_be_pinned():
    table = ObjectTable(10 * A)
    table.create(oid(1), 10, ALICE)
    assert table.pin(oid(1), BOB) is None
    assert not table.objects[oid(1)].pinned
    table.seal(oid(1))
    obj = table.pin(oid(1), BOB)
    assert obj is table.objects[oid(1)]
    assert obj.pinned and obj.pins[BOB] == 1


def test_pin_unknown_object_returns_none():
    assert ObjectTable(10 * A).pin(oid(9), ALICE) is None


def test_seal_unknown_object_raises_key_error():
    with pytest.raises(KeyError):
        ObjectTable(10 * A).seal(oid(9))


def test_pins_are_counted_per_client():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    table.pin(key, ALICE)
    table.pin(key, BOB)
    pins = table.objects[key].pins
    assert pins[ALICE] == 2 and pins[BOB] == 1


# ---- release / free ---------------------------------------------------------------------


def test_memory_returns_only_when_freed_and_unpinned_free_last():
    table = ObjectTable(10 * A)
    key = sealed(table, 1, size=3 * A)
    table.pin(key, ALICE)
    table.pin(key, BOB)
    assert table.release(key, ALICE) is False  # not freed yet
    assert table.release(key, BOB) is False
    assert key in table.objects and table.used == 3 * A
    assert table.free(key) is True
    assert key not in table.objects
    assert table.used == 0


def test_memory_returns_only_when_freed_and_unpinned_release_last():
    table = ObjectTable(10 * A)
    key = sealed(table, 1, size=3 * A)
    table.pin(key, ALICE)
    table.pin(key, ALICE)
    table.pin(key, BOB)
    assert table.free(key) is False  # still pinned
    assert key in table.objects and table.used == 3 * A
    assert table.release(key, ALICE) is False
    assert table.release(key, BOB) is False
    assert table.used == 3 * A
    assert table.release(key, ALICE) is True  # last pin
    assert key not in table.objects
    assert table.used == 0


def test_freed_object_cannot_be_pinned_again():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    table.free(key)
    assert table.pin(key, BOB) is None
    assert BOB not in table.objects[key].pins


def test_free_unsealed_object_returns_memory():
    table = ObjectTable(10 * A)
    table.create(oid(1), 100, ALICE)
    assert table.free(oid(1)) is True
    assert table.objects == {} and table.used == 0


def test_free_unknown_and_double_free_return_false():
    table = ObjectTable(10 * A)
    assert table.free(oid(1)) is False
    key = sealed(table, 1)
    assert table.free(key) is True
    assert table.free(key) is False
    assert table.used == 0


def test_release_without_pin_is_a_noop():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    assert table.release(key, ALICE) is False
    assert table.release(oid(7), ALICE) is False
    table.pin(key, ALICE)
    assert table.release(key, BOB) is False  # BOB holds no pin
    assert table.objects[key].pins[ALICE] == 1
    assert table.release(key, ALICE) is False  # unpinned but not freed
    assert table.release(key, ALICE) is False  # extra release does not go negative
    assert table.objects[key].pins[ALICE] == 0
    table.pin(key, ALICE)
    assert table.free(key) is False
    assert table.release(key, ALICE) is True


def test_freed_space_is_reused_by_new_objects():
    table = ObjectTable(4 * A)
    key = sealed(table, 1, size=4 * A)
    with pytest.raises(OutOfMemory):
        table.create(oid(2), A, ALICE)
    table.free(key)
    assert table.create(oid(2), 4 * A, ALICE) == 0


def test_same_id_can_be_created_again_after_memory_returned():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.free(key)
    table.create(key, 10, BOB)
    assert table.objects[key].creator == BOB


# ---- client_gone --------------------------------------------------------------------------


def test_client_gone_releases_all_its_pins():
    table = ObjectTable(10 * A)
    k1 = sealed(table, 1)
    k2 = sealed(table, 2)
    for _ in range(3):
        table.pin(k1, ALICE)
    table.pin(k1, BOB)
    table.pin(k2, ALICE)
    table.free(k1)
    table.free(k2)
    used = table.used
    assert table.client_gone(ALICE) is True  # k2 memory returned
    assert k2 not in table.objects
    assert k1 in table.objects  # BOB still pins it
    assert ALICE not in table.objects[k1].pins
    assert table.used < used
    assert table.release(k1, BOB) is True
    assert table.used == 0


def test_client_gone_keeps_pinned_unfreed_objects():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    assert table.client_gone(ALICE) is False
    assert key in table.objects
    assert not table.objects[key].pinned


def test_client_gone_frees_its_unsealed_creates_only():
    table = ObjectTable(20 * A)
    unsealed_alice = oid(1)
    table.create(unsealed_alice, 100, ALICE)
    sealed_alice = sealed(table, 2, creator=ALICE)
    unsealed_bob = oid(3)
    table.create(unsealed_bob, 100, BOB)
    assert table.client_gone(ALICE) is True
    assert unsealed_alice not in table.objects
    assert sealed_alice in table.objects  # sealed objects outlive their writer
    assert unsealed_bob in table.objects
    assert table.used == 4 * A


def test_client_gone_for_unknown_client_changes_nothing():
    table = ObjectTable(10 * A)
    key = sealed(table, 1)
    table.pin(key, ALICE)
    assert table.client_gone(BOB) is False
    assert table.objects[key].pins[ALICE] == 1


def test_client_identity_not_equality_for_creator():
    # Creators are compared by identity: an equal-but-distinct client is someone else.
    class Client:
        def __eq__(self, other):
            return isinstance(other, Client)

        def __hash__(self):
            return 0

    table = ObjectTable(10 * A)
    creator = Client()
    table.create(oid(1), 10, creator)
    assert table.client_gone(Client()) is False
    assert oid(1) in table.objects
    assert table.client_gone(creator) is True


# ---- arena_path ------------------------------------------------------------------------


def test_arena_path_carries_pid_and_node_id_prefix():
    node_id = "0123456789abcdef0123"
    path = arena_path("session-x", node_id)
    assert os.path.dirname(path) == SHM_DIR
    assert os.path.basename(path) == f"{SHM_PREFIX}{os.getpid()}-{node_id[:12]}"


# ---- Arena (real /dev/shm files) ---------------------------------------------------------


def _test_shm_path() -> str:
    return os.path.join(SHM_DIR, f"shoal-test-{os.getpid()}-{uuid.uuid4().hex}")


def _close(arena: Arena) -> None:
    arena.view.release()
    if arena.map is not None:
        arena.map.close()


needs_shm = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="no /dev/shm")


@needs_shm
def test_arena_create_map_reopen_and_unlink():
    path = _test_shm_path()
    writer = reader = None
    try:
        writer = Arena(path, 4096, create=True)
        assert os.path.exists(path)
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert writer.capacity == 4096 and len(writer.view) == 4096
        writer.view[100:105] = b"hello"
        reader = Arena(path, 0, create=False)  # capacity taken from the file
        assert reader.capacity == 4096
        assert bytes(reader.view[100:105]) == b"hello"
        reader.view[0:2] = b"hi"  # shared mapping: visible to the other side
        assert bytes(writer.view[0:2]) == b"hi"
        writer.unlink()
        assert not os.path.exists(path)
        writer.unlink()  # unlinking twice is fine
    finally:
        for arena in (reader, writer):
            if arena is not None:
                _close(arena)
        if os.path.exists(path):
            os.unlink(path)


@needs_shm
def test_arena_create_refuses_existing_file():
    path = _test_shm_path()
    first = None
    try:
        first = Arena(path, 4096, create=True)
        with pytest.raises(FileExistsError):
            Arena(path, 4096, create=True)
    finally:
        if first is not None:
            _close(first)
        if os.path.exists(path):
            os.unlink(path)


def test_arena_open_missing_file_raises():
    with pytest.raises(FileNotFoundError):
        Arena(_test_shm_path(), 0, create=False)


@needs_shm
def test_arena_of_zero_capacity_has_empty_view():
    path = _test_shm_path()
    try:
        arena = Arena(path, 0, create=True)
        assert arena.map is None
        assert len(arena.view) == 0
        arena.unlink()
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


# ---- remove_stale_arenas -----------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@needs_shm
def test_remove_stale_arenas_removes_dead_owner_and_keeps_live_ones():
    tag = uuid.uuid4().hex[:10]
    dead = os.path.join(SHM_DIR, f"{SHM_PREFIX}{_dead_pid()}-{tag}")
    alive = os.path.join(SHM_DIR, f"{SHM_PREFIX}{os.getpid()}-{tag}")
    pid1 = os.path.join(SHM_DIR, f"{SHM_PREFIX}1-{tag}")  # init: alive (or not ours)
    not_a_pid = os.path.join(SHM_DIR, f"shoal-test-{tag}")
    paths = [dead, alive, pid1, not_a_pid]
    try:
        for path in paths:
            with open(path, "wb") as fh:
                fh.write(b"x")
        removed = remove_stale_arenas()
        assert os.path.basename(dead) in removed
        assert not os.path.exists(dead)
        for path in (alive, pid1, not_a_pid):
            assert os.path.exists(path), path
            assert os.path.basename(path) not in removed
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


def test_remove_stale_arenas_without_shm_dir_returns_empty(monkeypatch, tmp_path):
    monkeypatch.setattr(object_store, "SHM_DIR", str(tmp_path / "missing"))
    assert remove_stale_arenas() == []


def test_remove_stale_arenas_ignores_other_names(monkeypatch, tmp_path):
    monkeypatch.setattr(object_store, "SHM_DIR", str(tmp_path))
    dead = _dead_pid()
    names = [
        f"other-{dead}-x",  # wrong prefix
        f"{SHM_PREFIX}abc-x",  # not a pid
        f"{SHM_PREFIX}-{dead}",  # empty pid field
        f"{SHM_PREFIX}{os.getpid()}-x",  # alive
        f"{SHM_PREFIX}{dead}",  # dead, no node suffix: still an arena name
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert remove_stale_arenas() == [f"{SHM_PREFIX}{dead}"]
    assert sorted(os.listdir(tmp_path)) == sorted(names[:-1])
