"""Unit tests for shoal.node.object_store.spill_io: real files in a temporary folder."""

from __future__ import annotations

import mmap
import os

import pytest

from shoal.node.object_store import spill_io
from shoal.node.object_store.spill_io import FILE_ALIGN, SpillDirs


def test_layout_puts_every_object_on_a_page_boundary():
    assert spill_io.layout([1, FILE_ALIGN, FILE_ALIGN + 1]) == (
        [0, FILE_ALIGN, 2 * FILE_ALIGN], 4 * FILE_ALIGN)


def page_aligned(size: int) -> tuple[mmap.mmap, memoryview]:
    buf = mmap.mmap(-1, size)
    return buf, memoryview(buf)


@pytest.mark.parametrize("aligned", [True, False])
def test_write_then_read_back_fused_objects(tmp_path, aligned):
    sizes = [3 * FILE_ALIGN, FILE_ALIGN, 5 * FILE_ALIGN]
    if not aligned:
        sizes = [s - 100 for s in sizes]  # not whole pages: buffered I/O
    mapping, view = page_aligned(16 * FILE_ALIGN)
    parts, pos = [], 0
    for n, size in enumerate(sizes):
        view[pos:pos + size] = bytes([n + 1]) * size
        parts.append(view[pos:pos + size])
        pos += spill_io.layout([size])[1]
    path = str(tmp_path / "spill-1")
    offsets, seconds = spill_io.write_file(path, parts)
    assert offsets == spill_io.layout(sizes)[0] and seconds >= 0
    assert os.path.getsize(path) == spill_io.layout(sizes)[1]
    back, back_view = page_aligned(16 * FILE_ALIGN)
    targets = [back_view[o:o + s] for o, s in zip(offsets[1:], sizes[1:], strict=True)]
    spill_io.read_into(path, offsets[1], targets) if aligned else [
        spill_io.read_into(path, o, [t]) for o, t in zip(offsets[1:], targets, strict=True)]
    for n, target in enumerate(targets, start=1):
        assert bytes(target) == bytes([n + 1]) * sizes[n]
    assert spill_io.read_chunk(path, offsets[2] + 10, 5) == bytes([3]) * 5


def test_short_file_raises(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"x" * 10)
    with pytest.raises(EOFError):
        spill_io.read_into(str(path), 0, [memoryview(bytearray(20))])


def test_spill_dirs_round_robin_and_remove(tmp_path):
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    dirs = SpillDirs(roots, "n" * 28)
    dirs.create()
    assert all(os.path.isdir(d) for d in dirs.dirs)
    assert [os.path.basename(d) for d in dirs.dirs] == \
        [f"shoal-spill-{os.getpid()}-{'n' * 12}"] * 2
    first, second, third = (dirs.place(100, "spill") for _ in range(3))
    assert [os.path.dirname(p) for p in (first, second, third)] == \
        [dirs.dirs[0], dirs.dirs[1], dirs.dirs[0]]
    assert dirs.reserved[dirs.dirs[0]] == 200
    dirs.written(first, 100)
    assert dirs.reserved[dirs.dirs[0]] == 100
    assert dirs.place(1 << 62, "spill") is None  # no directory has that much room
    dirs.remove_all()
    assert not any(os.path.exists(d) for d in dirs.dirs)


def test_stale_spill_folders_of_dead_nodes_are_removed(tmp_path):
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = tmp_path / f"shoal-spill-{proc.pid}-abc"
    alive = tmp_path / f"shoal-spill-{os.getpid()}-abc"
    other = tmp_path / "unrelated"
    for folder in (dead, alive, other):
        folder.mkdir()
    assert spill_io.remove_stale_spill_dirs(str(tmp_path)) == [dead.name]
    assert alive.exists() and other.exists() and not dead.exists()


def test_backing_file_reserves_its_blocks(tmp_path):
    path = str(tmp_path / "backed-1")
    spill_io.create_backing_file(path, 3 * FILE_ALIGN)
    assert os.path.getsize(path) == 3 * FILE_ALIGN
    assert os.stat(path).st_blocks * 512 >= 3 * FILE_ALIGN


def test_a_root_shoal_made_goes_with_the_last_node_that_used_it(tmp_path):
    root = str(tmp_path / "made")
    first, second = SpillDirs([root], "a" * 28), SpillDirs([root], "b" * 28)
    first.create()
    second.create()
    first.remove_all()
    assert os.path.isdir(root)  # the second node still spills here
    second.remove_all()
    assert not os.path.exists(root)


def test_a_root_the_user_made_stays(tmp_path):
    dirs = SpillDirs([str(tmp_path)], "a" * 28)
    dirs.create()
    dirs.remove_all()
    assert os.path.isdir(tmp_path) and os.listdir(tmp_path) == []
