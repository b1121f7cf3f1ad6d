"""Identifiers.  A task id is a per-process random prefix plus a counter, so
ids are unique without coordination and cheap to make; an object id is its
task's id plus the return index (puts get a fresh pseudo-task each).

The prefix also holds the job of the process (Ray's ids name their job:
``ObjectRef.job_id()``), once it is known: ``[6 random][4 job][6 counter]``;
an actor id is ``[12 random][4 job]``, as Ray's."""

from __future__ import annotations

import itertools
import os

TASK_ID_LEN = 16
OBJECT_ID_LEN = 20


JOB_ID_LEN = 4
_JOB_AT = slice(6, 6 + JOB_ID_LEN)  # of a task (or object) id


def job_bytes(job_id: str | None) -> bytes:
    """A job id (8 hex digits) as the 4 bytes ids carry; zeros if there is none."""
    try:
        raw = bytes.fromhex(job_id or "")
    except ValueError:
        raw = b""
    return raw[-JOB_ID_LEN:].rjust(JOB_ID_LEN, b"\0")


def job_of(task_or_object_id: bytes) -> bytes:
    return task_or_object_id[_JOB_AT]


def actor_id_hex(job_id: str | None) -> str:
    """A new actor id naming its job (Ray's layout: the job in the last 4 bytes)."""
    return (os.urandom(12) + job_bytes(job_id)).hex()


class IdGenerator:
    def __init__(self, job_id: str | None = None) -> None:
        self._counter = itertools.count(1)
        self.set_job(job_id)

    def set_job(self, job_id: str | None) -> None:
        """The process now works for ``job_id``: the ids it makes from now on name it
        (a fresh random part; the counter goes on, so no id repeats)."""
        self._prefix = os.urandom(6) + job_bytes(job_id)

    def task_id(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(6, "big")


def object_id(task_id: bytes, index: int) -> bytes:
    return task_id + index.to_bytes(4, "big")


def task_of(oid: bytes) -> bytes:
    return oid[:TASK_ID_LEN]


def index_of(oid: bytes) -> int:
    """The return index (1...); 0 for puts and for large arguments stored by value."""
    return int.from_bytes(oid[TASK_ID_LEN:], "big")


def random_hex(nbytes: int = 16) -> str:
    return os.urandom(nbytes).hex()
