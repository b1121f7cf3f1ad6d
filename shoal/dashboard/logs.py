"""The logs page's data: every node's log files, and chunks of one, read by offset.

Each node's agent lists its files (worker stdout/stderr, rotated backups, its
own log: :mod:`shoal.node.worker_logs`) in its part of a LIST_STATE ``logs``
query, and serves chunks of them (READ_NODE_LOG, forwarded by the control
store), so files on other machines are listed and streamed like the head's.
The files in the dashboard's own log folders that no node lists (the head's
process output, the dashboard's own, files of nodes that are gone) are listed
under node ``""`` and read here.  The page streams a file by asking for the
bytes after the last offset it got (``next``) every second.

:func:`log_rows` is pure; the folder helpers touch only the given folders and
serve only plain names found in them.
"""

from __future__ import annotations

import os
from typing import Any

from shoal.node.worker_logs import read_chunk

TAIL_BYTES = 64 * 1024  # what a first look at a file shows
TASK_NAMES_SHOWN = 5


def list_local(log_dirs: list[str]) -> list[dict]:
    """The plain files in ``log_dirs`` (name and size)."""
    out = []
    for folder in log_dirs:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                out.append({"name": name, "size": os.path.getsize(path)})
    return out


def read_local(log_dirs: list[str], name: str, offset: int, max_bytes: int) -> dict | None:
    """A chunk of the file called ``name`` in one of ``log_dirs`` (see
    ``worker_logs.read_chunk``); None if there is none.  Plain names only."""
    if os.path.basename(name) != name or name in ("", ".", ".."):
        return None
    for folder in log_dirs:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return read_chunk(path, offset, max_bytes)
    return None


def _worker_facts(tasks: list[dict], actors: list[dict]) -> tuple[dict, dict]:
    """``{worker id: [task names, newest first]}`` and ``{actor id: class name}``."""
    ran: dict[str, list[str]] = {}
    newest_first = sorted(tasks, key=lambda t: -(t.get("start_time_ms") or 0))
    for t in newest_first:
        worker, name = t.get("worker_id"), t.get("name")
        if worker and name and t.get("type") != "ACTOR_CREATION_TASK":
            names = ran.setdefault(worker, [])
            if name not in names:
                names.append(name)
    return ran, {a["actor_id"]: a.get("class_name") or "" for a in actors}


def log_rows(logs_reply: dict, tasks: list[dict], actors: list[dict],
             local: list[dict]) -> list[dict]:
    """One row per file: node, file, stream, size, worker id, pid, and what ran in
    that worker (its actor, else the names of the tasks it ran, as far as the task
    records know); then the local folder's files no node listed."""
    ran, classes = _worker_facts(tasks, actors)
    rows: list[dict[str, Any]] = []
    claimed = set()
    for ns in logs_reply.get("node_states", ()):
        node_id, address = ns.get("node_id") or "", ns.get("address") or ""
        for f in ns.get("logs", ()):
            claimed.add(f["name"])
            worker, actor = f.get("worker_id"), f.get("actor_id")
            rows.append({"node_id": node_id, "node_address": address, "name": f["name"],
                         "stream": f.get("stream"), "size": f.get("size", 0),
                         "worker_id": worker, "pid": f.get("pid"), "actor_id": actor,
                         "actor": classes.get(actor or "", f.get("label") or "") if actor
                         else "", "tasks": ran.get(worker or "", [])[:TASK_NAMES_SHOWN],
                         "alive": bool(f.get("alive")), "rotated": bool(f.get("rotated"))})
    for f in local:
        if f["name"] not in claimed:
            rows.append({"node_id": "", "node_address": "", "name": f["name"],
                         "stream": "file", "size": f["size"], "worker_id": None, "pid": None,
                         "actor_id": None, "actor": "", "tasks": [], "alive": False,
                         "rotated": False})
    return rows


def chunk_json(chunk: dict) -> dict:
    """A chunk as the page gets it: the bytes as text."""
    return {**chunk, "data": bytes(chunk["data"]).decode(errors="replace")}
