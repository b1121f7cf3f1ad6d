"""shoal.data reading and writing files on a local cluster: parquet (files,
directories, globs, column projection), CSV, JSON lines, numpy, binary and
text files; writes read back in order."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

import shoal as ray


def _rows(n):
    return ray.data.range(n, override_num_blocks=4).map(
        lambda r: {"id": r["id"], "name": f"n{r['id']}", "x": r["id"] * 0.5})


def test_parquet_round_trip_dirs_globs_and_columns(shoal_cluster, tmp_path):
    out = tmp_path / "pq"
    _rows(40).write_parquet(str(out))
    files = sorted(os.listdir(out))
    assert len(files) == 4 and all(f.endswith(".parquet") for f in files)
    back = ray.data.read_parquet(str(out))
    assert back.count() == 40  # from the footers
    assert back.take_all() == _rows(40).take_all()
    assert ray.data.read_parquet(str(out), columns=["name"]).take(2) == [{"name": "n0"},
                                                                        {"name": "n1"}]
    one = str(out / files[1])
    assert ray.data.read_parquet([one]).count() == 10
    assert ray.data.read_parquet(str(out / "*.parquet")).count() == 40
    assert ray.data.read_parquet(str(out)).input_files() == [str(out / f) for f in files]


def test_csv_and_json_round_trips(shoal_cluster, tmp_path):
    _rows(12).write_csv(str(tmp_path / "csv"))
    assert ray.data.read_csv(str(tmp_path / "csv")).take_all() == _rows(12).take_all()
    _rows(12).write_json(str(tmp_path / "js"))
    first = sorted(os.listdir(tmp_path / "js"))[0]
    with open(tmp_path / "js" / first) as f:
        assert json.loads(f.readline()) == {"id": 0, "name": "n0", "x": 0.0}
    assert ray.data.read_json(str(tmp_path / "js")).take_all() == _rows(12).take_all()
    array_file = tmp_path / "arr.json"
    array_file.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert ray.data.read_json(str(array_file)).take_all() == [{"a": 1}, {"a": 2}]


def test_numpy_binary_and_text_files(shoal_cluster, tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6).reshape(3, 2))
    np.save(tmp_path / "b.npy", np.arange(6, 10).reshape(2, 2))
    batch = ray.data.read_numpy(str(tmp_path), file_extensions=["npy"]).take_batch(10)
    np.testing.assert_array_equal(batch["data"], np.arange(10).reshape(5, 2))
    (tmp_path / "t.txt").write_text("hello\nworld\n")
    got = ray.data.read_binary_files(str(tmp_path / "t.txt"), include_paths=True).take_all()
    assert got == [{"bytes": b"hello\nworld\n", "path": str(tmp_path / "t.txt")}]
    assert ray.data.read_text(str(tmp_path / "t.txt")).take_all() == [{"text": "hello"},
                                                                      {"text": "world"}]


def test_missing_and_broken_files_name_the_path(shoal_cluster, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        ray.data.read_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match="no file matches"):
        ray.data.read_parquet(str(tmp_path / "*.parquet"))
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2,3\n')
    with pytest.raises(OSError, match="bad.csv"):
        ray.data.read_csv(str(bad)).take_all()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        ray.data.range(3).write_parquet(str(tmp_path / "file"))


def test_a_limit_reads_only_the_files_and_row_groups_it_needs(shoal_cluster, tmp_path):
    """read_parquet(...).limit(5) over 40 files runs one read task (the footers
    say the first file has the rows), and that task reads its first row group
    only; take() and a row map before the limit do the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shoal.util.state import list_tasks

    for f in range(40):
        ids = np.arange(f * 1000, (f + 1) * 1000)
        pq.write_table(pa.table({"id": ids, "v": ids * 2.0}), tmp_path / f"part-{f:02d}.parquet",
                       row_group_size=100)

    def reads() -> int:
        return sum(1 for t in list_tasks(limit=None) if t.name.startswith("data[ReadParquet"))

    before = reads()
    ds = ray.data.read_parquet(str(tmp_path)).limit(5)
    assert [r["id"] for r in ds.take_all()] == [0, 1, 2, 3, 4]
    [stage] = [s for s in ds._last_stats.stages if s.name.startswith("ReadParquet")]
    assert stage.tasks == 1 and stage.rows == 5
    assert reads() - before == 1
    rows = ray.data.read_parquet(str(tmp_path)).map(lambda r: {"id": r["id"] + 1}).take(2500)
    assert [r["id"] for r in rows] == list(range(1, 2501))
    assert reads() - before == 4  # three files for 2500 rows
    files = ray.data.read_parquet(str(tmp_path), columns=["v"]).limit(150)
    assert [r["v"] for r in files.take_all()] == [2.0 * i for i in range(150)]


def test_readers_take_rays_include_paths_and_layout_arguments(shoal_cluster, tmp_path):
    """Ray's ``include_paths=`` adds a "path" column to every reader's rows;
    ``override_num_blocks=`` (how, not what, to read) is accepted (it reached
    Arrow's reader and failed the read)."""
    import pyarrow.parquet as pq

    (tmp_path / "csv").mkdir()
    for i in range(2):
        pq.write_table(pa.table({"x": [i * 10 + j for j in range(3)]}),
                       tmp_path / f"p{i}.parquet")
        lines = "\n".join(str(i * 10 + j) for j in range(3))
        (tmp_path / "csv" / f"c{i}.csv").write_text("x\n" + lines)
    rows = ray.data.read_parquet(str(tmp_path), file_extensions=["parquet"], include_paths=True,
                                 override_num_blocks=2).take_all()
    assert sorted((r["x"], os.path.basename(r["path"])) for r in rows) == [
        (i * 10 + j, f"p{i}.parquet") for i in range(2) for j in range(3)]
    csv = str(tmp_path / "csv" / "c0.csv")
    assert ray.data.read_csv([csv], include_paths=True).take_all() == [
        {"x": j, "path": csv} for j in range(3)]
    assert ray.data.read_parquet(str(tmp_path), file_extensions=["parquet"],
                                 include_paths=True).limit(1).take_all() == [
        {"x": 0, "path": str(tmp_path / "p0.parquet")}]
    with pytest.raises(ValueError, match="filesystem= is not supported"):
        ray.data.read_parquet(str(tmp_path), filesystem=object())
