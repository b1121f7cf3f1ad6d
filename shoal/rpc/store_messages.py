"""STORE_CREATE (core worker -> its node agent), with named fields: the request
was ``[oid, size, owner, cold]`` read by length, and "a copy is already here"
came back as ``["exists", size]``, a list a file location could be mistaken
for.

The request is a map of named fields, as the lease and actor messages.  The
reply is the object's location (``shoal.objects.arena``: an arena offset, or a
file location for disk-backed memory), or an :class:`AlreadyStored` map.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.rpc.lease_messages import body_map


@dataclass(frozen=True)
class StoreCreateBody:
    """Room for a new object of ``size`` bytes, which we will write and seal."""

    object_id: bytes
    size: int
    owner: str  # the core worker that owns it: its death frees the copy
    cold: bool = False  # no reader wants it soon: the first to spill

    def to_wire(self) -> dict:
        wire: dict = {"object_id": self.object_id, "size": self.size, "owner": self.owner}
        if self.cold:
            wire["cold"] = True
        return wire

    @classmethod
    def from_wire(cls, body: object) -> StoreCreateBody:
        w = body_map(body, "STORE_CREATE", ("object_id", "size", "owner"))
        return cls(w["object_id"], w["size"], w["owner"], bool(w.get("cold", False)))


@dataclass(frozen=True)
class AlreadyStored:
    """STORE_CREATE's answer when a valid copy is already here (a retried or
    rebuilt task writing its return again): do not write."""

    size: int

    def to_wire(self) -> dict:
        return {"already_stored": self.size}

    @classmethod
    def from_reply(cls, reply: object) -> AlreadyStored | None:
        """The reply as an AlreadyStored, or None if it is a location."""
        if isinstance(reply, dict) and "already_stored" in reply:
            return cls(reply["already_stored"])
        return None
