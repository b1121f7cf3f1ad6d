"""Old session folders are pruned as new ones are made (shoal/launch/sessions.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from shoal.launch import sessions


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _make(root, stamp: str, pid: int) -> str:
    name = f"{stamp}-{pid}-abcdef"
    os.makedirs(os.path.join(root, name, "logs"))
    return name


def test_prune_keeps_the_newest_and_the_live_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    dead = _dead_pid()
    old_dead = [_make(tmp_path, f"20200101-0000{i:02d}", dead) for i in range(5)]
    old_live = _make(tmp_path, "20200101-000010", os.getpid())
    newest = [_make(tmp_path, f"20200102-0000{i:02d}", dead) for i in range(3)]
    os.makedirs(tmp_path / "clusters")

    removed = sessions.prune_sessions(keep=3, limit=2)
    assert removed == old_dead[:2]  # oldest first, at most ``limit``
    assert sorted(sessions.prune_sessions(keep=3)) == old_dead[2:]
    left = set(os.listdir(tmp_path))
    assert left == {old_live, "clusters", *newest}


def test_a_session_a_running_shoal_start_uses_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    used = _make(tmp_path, "20200101-000000", _dead_pid())  # its maker (the CLI) exited
    sessions.record_started({"pid": os.getpid(), "session": used})
    assert sessions.prune_sessions(keep=0) == []


def test_new_session_makes_its_log_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    name, log_dir = sessions.new_session()
    assert os.path.isdir(log_dir) and log_dir == os.path.join(tmp_path, name, "logs")
    assert name.split("-")[2] == str(os.getpid())
