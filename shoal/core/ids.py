"""Identifiers.  A task id is a per-process random prefix plus a counter, so
ids are unique without coordination and cheap to make; an object id is its
task's id plus the return index (puts get a fresh pseudo-task each)."""

from __future__ import annotations

import itertools
import os

TASK_ID_LEN = 16
OBJECT_ID_LEN = 20


class IdGenerator:
    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = itertools.count(1)

    def task_id(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(8, "big")


def object_id(task_id: bytes, index: int) -> bytes:
    return task_id + index.to_bytes(4, "big")


def task_of(oid: bytes) -> bytes:
    return oid[:TASK_ID_LEN]


def index_of(oid: bytes) -> int:
    """The return index (1...); 0 for puts and for large arguments stored by value."""
    return int.from_bytes(oid[TASK_ID_LEN:], "big")


def random_hex(nbytes: int = 16) -> str:
    return os.urandom(nbytes).hex()
