"""Ray's id classes (``shoal.NodeID``, ``JobID``, ...): typed wrappers of the byte
strings shoal uses as ids, with Ray's conversions (``hex``, ``binary``,
``from_hex``, ``from_random``, ``nil``).  The APIs that take an id accept these
or the hex string."""

from __future__ import annotations

import os
from typing import Any


class BaseID:
    """An id of a fixed size in bytes (``SIZE``); all zero bytes is nil."""

    SIZE = 16

    __slots__ = ("_bytes",)

    def __init__(self, id_bytes: bytes) -> None:
        if not isinstance(id_bytes, (bytes, bytearray)):
            raise TypeError(f"{type(self).__name__} needs bytes, got {type(id_bytes).__name__}")
        if len(id_bytes) != self.SIZE:
            raise ValueError(f"{type(self).__name__} must be {self.SIZE} bytes, "
                             f"got {len(id_bytes)}")
        self._bytes = bytes(id_bytes)

    @classmethod
    def size(cls) -> int:
        return cls.SIZE

    @classmethod
    def from_binary(cls, id_bytes: bytes) -> Any:
        return cls(id_bytes)

    @classmethod
    def from_hex(cls, hex_id: str | bytes) -> Any:
        if isinstance(hex_id, bytes):
            hex_id = hex_id.decode()
        try:
            raw = bytes.fromhex(hex_id)
        except (TypeError, ValueError):
            raise ValueError(f"{cls.__name__}.from_hex: {hex_id!r} is not a hex string") from None
        return cls(raw)

    @classmethod
    def from_random(cls) -> Any:
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def nil(cls) -> Any:
        return cls(bytes(cls.SIZE))

    def is_nil(self) -> bool:
        return not any(self._bytes)

    def binary(self) -> bytes:
        return self._bytes

    def hex(self) -> str:
        return self._bytes.hex()

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._bytes))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._bytes == self._bytes  # type: ignore[attr-defined]

    def __reduce__(self):
        return (type(self), (self._bytes,))


class HexId(str):
    """An id kept as its hex string (as shoal's messages carry it) that also answers
    Ray's ``hex()``/``binary()`` (e.g. ``handle._actor_id.hex()``)."""

    __slots__ = ()

    def hex(self) -> str:
        return str(self)

    def binary(self) -> bytes:
        return bytes.fromhex(self)


class ActorIdHex(HexId):
    """An actor's id as a hex string; ``job_id`` is the job it names (Ray's
    ``ActorID.job_id``: its last 4 bytes)."""

    __slots__ = ()

    @property
    def job_id(self) -> JobID:
        return JobID(self.binary()[-JobID.SIZE:])


class JobID(BaseID):
    SIZE = 4

    @classmethod
    def from_int(cls, value: int) -> JobID:
        return cls(value.to_bytes(cls.SIZE, "big"))

    def int(self) -> int:
        return int.from_bytes(self._bytes, "big")


class NodeID(BaseID):
    SIZE = 14


class WorkerID(BaseID):
    SIZE = 8


class ActorID(BaseID):
    SIZE = 16


class TaskID(BaseID):
    SIZE = 16


class PlacementGroupID(BaseID):
    SIZE = 16


__all__ = ["ActorID", "ActorIdHex", "BaseID", "HexId", "JobID", "NodeID", "PlacementGroupID",
           "TaskID", "WorkerID"]
