"""Unit tests for shoal.objects.arena: the arena file, its path, stale arenas."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from shoal.objects import arena as arena_module
from shoal.objects.arena import (
    SHM_DIR,
    SHM_PREFIX,
    Arena,
    arena_path,
    is_file_location,
    remove_stale_arenas,
)


def test_locations_tell_arena_offsets_from_files():
    assert not is_file_location([4096, 100])
    assert is_file_location(["/tmp/x/backed-1", 100, 0])


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
    monkeypatch.setattr(arena_module, "SHM_DIR", str(tmp_path / "missing"))
    assert remove_stale_arenas() == []


def test_remove_stale_arenas_ignores_other_names(monkeypatch, tmp_path):
    monkeypatch.setattr(arena_module, "SHM_DIR", str(tmp_path))
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
