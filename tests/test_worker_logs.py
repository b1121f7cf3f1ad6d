"""Per-worker log files (shoal/node/worker_logs.py): each worker's stdout and
stderr go to ``worker-<id>-<pid>.out/.err`` in its node's log folder, still
reach the driver, rotate at the cap, and are listed and read through the agent
(LIST_STATE "logs", READ_NODE_LOG) like the dashboard and ``shoal logs`` do."""

from __future__ import annotations

import glob
import os
import re
import sys
import uuid

import pytest

import shoal
from shoal.core import context
from shoal.launch.state_client import fetch_state
from shoal.node.worker_logs import BACKUPS_ENV, ROTATE_BYTES_ENV, LogFile, read_chunk
from shoal.rpc.messages import Method
from tests.utils import wait_for_condition

LINE = "x" * 99  # 100 bytes with its newline


@shoal.remote
def say(out: str, err: str) -> int:
    print(out)
    print(err, file=sys.stderr)
    return os.getpid()


@shoal.remote
def chatter(lines: int, last: str) -> int:
    for _ in range(lines):
        print(LINE)
    print(last)
    return os.getpid()


def _files(ctx, pid: int) -> dict[str, str]:
    folder = os.path.join(ctx["session_dir"], "logs")
    return {os.path.basename(p): p for p in glob.glob(f"{folder}/worker-*-{pid}.*")}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _listed(pid: int) -> list[tuple[str, dict]]:
    reply = fetch_state(["logs"], timeout=30)
    return [(ns["node_id"], f) for ns in reply["node_states"] for f in ns["logs"]
            if f.get("pid") == pid]


def test_worker_output_goes_to_its_files_and_still_to_the_driver(shutdown_only, capfd):
    ctx = shoal.init(num_cpus=1, include_dashboard=False)
    out, err = f"out-{uuid.uuid4().hex}", f"err-{uuid.uuid4().hex}"
    pid = shoal.get(say.remote(out, err), timeout=30)
    files = wait_for_condition(lambda: len(_files(ctx, pid)) == 2 and _files(ctx, pid),
                               timeout=15)
    names = sorted(files)
    assert re.fullmatch(rf"worker-[0-9a-f]{{16}}-{pid}\.err", names[0]), names
    assert names[1] == names[0][:-3] + "out"
    wait_for_condition(lambda: out in _read(files[names[1]]) and err in _read(files[names[0]]),
                       timeout=15)
    assert err not in _read(files[names[1]])
    seen = []  # and the driver still gets both lines, prefixed
    wait_for_condition(lambda: seen.append(capfd.readouterr()) or (
        f"pid={pid}) {out}" in "".join(s.out for s in seen)
        and f"pid={pid}) {err}" in "".join(s.err for s in seen)), timeout=15)

    # listed and read through the agent, as the dashboard does
    listed = _listed(pid)
    assert sorted(f["name"] for _, f in listed) == names
    node_id, entry = next((n, f) for n, f in listed if f["stream"] == "stdout")
    assert entry["worker_id"] == names[1].split("-")[1] and entry["alive"]
    worker = context.current_worker_or_none()
    chunk = worker.control_call(Method.READ_NODE_LOG, [node_id, entry["name"], 0, 1 << 16],
                                timeout=30)
    assert bytes(chunk["data"]).decode() == out + "\n" and chunk["next"] == chunk["size"]
    with pytest.raises(Exception, match="no log file named"):
        worker.control_call(Method.READ_NODE_LOG, [node_id, "../" + entry["name"], 0, 10],
                            timeout=30)


def test_files_rotate_at_the_cap_and_keep_the_newest_lines(shutdown_only, monkeypatch):
    monkeypatch.setenv(ROTATE_BYTES_ENV, "4096")
    monkeypatch.setenv(BACKUPS_ENV, "2")
    ctx = shoal.init(num_cpus=1, include_dashboard=False)
    last = f"last-{uuid.uuid4().hex}"
    pid = shoal.get(chatter.remote(200, last), timeout=30)  # ~20 KB of output
    name = wait_for_condition(lambda: next(n for n in _files(ctx, pid) if n.endswith(".out")),
                              timeout=15)
    files = _files(ctx, pid)
    wait_for_condition(lambda: last in _read(files[name]), timeout=15)
    sizes = {n: os.path.getsize(p) for n, p in _files(ctx, pid).items()}
    assert set(sizes) == {name, name + ".1", name + ".2", name[:-3] + "err"}, sizes
    assert all(size <= 4096 for size in sizes.values()), sizes
    assert _read(files[name] + ".1").splitlines()[-1] == LINE  # older lines, whole
    listed = {f["name"]: f for _, f in _listed(pid)}
    assert listed[name + ".2"]["rotated"] and not listed[name]["rotated"]


def test_a_bad_rotation_setting_is_refused_naming_it(shutdown_only, monkeypatch, tmp_path):
    monkeypatch.setenv(ROTATE_BYTES_ENV, "lots")
    spill = tmp_path / "spill"
    with pytest.raises(Exception, match=ROTATE_BYTES_ENV):
        shoal.init(num_cpus=1, include_dashboard=False, object_spilling_directory=str(spill))
    assert not spill.exists()  # refused before the node made its store


def test_log_file_rotation_and_chunked_reads(tmp_path):
    path = str(tmp_path / "w.out")
    f = LogFile(path, max_bytes=1024, backups=1)
    for i in range(30):
        f.write(f"{i:03d} {'y' * 95}\n".encode())  # 100 bytes each
    f.close()
    assert os.path.getsize(path) <= 1024 and os.path.getsize(path + ".1") <= 1024
    assert not os.path.exists(path + ".2")
    with open(path) as fh:
        assert fh.read().splitlines()[-1].startswith("029 ")
    # reads: whole lines, a tail starts at a line, an offset past the end restarts
    first = read_chunk(path, 0, 250)
    assert first["data"].endswith(b"\n") and len(first["data"]) == 200
    rest = read_chunk(path, first["next"], 1 << 20)
    assert rest["next"] == rest["size"] and not rest["reset"]
    tail = read_chunk(path, -1, 150)
    assert len(tail["data"]) == 100 and tail["data"].startswith(b"029 ")
    again = read_chunk(path, rest["size"] + 500, 100)
    assert again["reset"] and again["offset"] == 0
    # one line longer than a whole file is split rather than let the file grow past it
    long = LogFile(str(tmp_path / "long.out"), max_bytes=1024, backups=3)
    long.write(b"z" * 2500 + b"\n")
    long.close()
    parts = [tmp_path / name for name in ("long.out.2", "long.out.1", "long.out")]
    assert [p.stat().st_size for p in parts] == [1024, 1024, 453]
    assert b"".join(p.read_bytes() for p in parts) == b"z" * 2500 + b"\n"
