"""How a progress bar's state travels from a task to the driver (pure).

A bar in a worker (:mod:`shoal.experimental.tqdm_ray`) prints its state as one
line on the worker's stdout: ``PREFIX`` then a JSON object.  The line takes the
path every other line of worker output takes (agent -> control store -> the
job's driver, see :mod:`shoal.node.worker_pool`), and the driver draws the bar
instead of printing the line (:mod:`shoal.experimental.progress_display`).  The
agent leaves these lines out of the worker's log files.

State fields: ``id`` (unique per bar), ``desc``, ``n``, ``total`` (or null),
``unit``, ``closed``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

PREFIX = "__shoal_progress__ "
_PREFIX_BYTES = PREFIX.encode()


@dataclass
class BarState:
    id: str
    desc: str = ""
    n: int = 0
    total: int | None = None
    unit: str = "it"
    closed: bool = False


def encode(state: BarState) -> str:
    """The line (without its newline) that carries ``state``."""
    return PREFIX + json.dumps(asdict(state), separators=(",", ":"))


def decode(text: str) -> BarState | None:
    """The state a line carries, or None if it is not a (well-formed) progress line."""
    if not text.startswith(PREFIX):
        return None
    try:
        fields = json.loads(text[len(PREFIX):])
        return BarState(id=str(fields["id"]), desc=str(fields.get("desc") or ""),
                        n=int(fields.get("n") or 0),
                        total=None if fields.get("total") is None else int(fields["total"]),
                        unit=str(fields.get("unit") or "it"),
                        closed=bool(fields.get("closed")))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def is_progress_line(line: bytes) -> bool:
    return line.startswith(_PREFIX_BYTES)
