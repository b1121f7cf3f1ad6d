"""Worker and node log files of the nodes whose log folders this dashboard can
read (those on its machine), listed and tailed."""

from __future__ import annotations

import os

TAIL_BYTES = 64 * 1024


def list_logs(log_dirs: list[str]) -> list[dict]:
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


def tail(log_dirs: list[str], name: str, max_bytes: int = TAIL_BYTES) -> str | None:
    """The last ``max_bytes`` of the log called ``name``; None if there is none.
    Only plain names listed in the folders are served (no paths)."""
    if os.path.basename(name) != name or name in ("", ".", ".."):
        return None
    for folder in log_dirs:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode(errors="replace")
    return None
