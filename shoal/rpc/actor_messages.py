"""The control store's actor messages, with named fields (they were positional
lists with optional trailing fields and ``""`` for "no stale address").

On the wire each is a msgpack map; a field left at its default is not sent, and
``from_wire`` refuses a body that is not a map or lacks a required field,
naming what was wrong (``lease_messages`` does the same for leases).  These
are sent when an actor is looked up, killed or its process dies: off the
per-call path.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.rpc.lease_messages import body_map


@dataclass(frozen=True)
class GetActorBody:
    """GET_ACTOR: the actor's record, once it is placed or dead -- but not the
    incarnation the caller saw fail (``stale_address`` with ``seen_restarts``),
    and with ``wait_restart`` not while it restarts."""

    actor_id: str
    stale_address: str | None = None  # the address the caller saw fail; None: none did
    wait_restart: bool = False
    seen_restarts: int | None = None  # that incarnation's num_restarts; None: any

    def to_wire(self) -> dict:
        wire: dict = {"actor_id": self.actor_id}
        if self.stale_address:
            wire["stale_address"] = self.stale_address
        if self.wait_restart:
            wire["wait_restart"] = True
        if self.seen_restarts is not None:
            wire["seen_restarts"] = self.seen_restarts
        return wire

    @classmethod
    def from_wire(cls, body: object) -> GetActorBody:
        w = body_map(body, "GET_ACTOR", ("actor_id",))
        return cls(w["actor_id"], w.get("stale_address") or None,
                   bool(w.get("wait_restart", False)), w.get("seen_restarts"))


@dataclass(frozen=True)
class KillActorBody:
    """KILL_ACTOR: kill for good (``no_restart``), or kill the process and let the
    actor restart if restarts remain."""

    actor_id: str
    no_restart: bool
    cause: str | None = None  # the death cause its callers see; None: "killed by kill()"
    exiting: bool = False  # exit_actor(): it ends its own process (its atexit hooks run)

    def to_wire(self) -> dict:
        wire: dict = {"actor_id": self.actor_id, "no_restart": self.no_restart}
        if self.cause:
            wire["cause"] = self.cause
        if self.exiting:
            wire["exiting"] = True
        return wire

    @classmethod
    def from_wire(cls, body: object) -> KillActorBody:
        w = body_map(body, "KILL_ACTOR", ("actor_id", "no_restart"))
        return cls(w["actor_id"], bool(w["no_restart"]), w.get("cause") or None,
                   bool(w.get("exiting", False)))


@dataclass(frozen=True)
class WorkerDiedBody:
    """WORKER_DIED (node agent -> control store): a worker process exited."""

    worker_id: str
    node_id: str
    actor_id: str | None = None  # the actor it hosted
    exit_code: int | None = None  # None: unknown
    address: str | None = None  # its core worker's: the objects it owned are gone

    def to_wire(self) -> dict:
        wire: dict = {"worker_id": self.worker_id, "node_id": self.node_id}
        if self.actor_id is not None:
            wire["actor_id"] = self.actor_id
        if self.exit_code is not None:
            wire["exit_code"] = self.exit_code
        if self.address:
            wire["address"] = self.address
        return wire

    @classmethod
    def from_wire(cls, body: object) -> WorkerDiedBody:
        w = body_map(body, "WORKER_DIED", ("worker_id", "node_id"))
        return cls(w["worker_id"], w["node_id"], w.get("actor_id"), w.get("exit_code"),
                   w.get("address") or None)


@dataclass(frozen=True)
class ActorInstanceBody:
    """CREATE_ACTOR_INSTANCE (node agent -> the leased worker): run the actor's
    constructor here, and host the actor for this worker's life."""

    actor_id: str
    creation: bytes  # the pickled constructor call
    num_restarts: int = 0  # > 0: a restart (its runtime context says so)
    accelerators: dict | None = None  # {"GPU": [ids]} it holds for its whole life
    placement: list | None = None  # [pg_id, bundle index, capture child tasks]

    def to_wire(self) -> dict:
        wire: dict = {"actor_id": self.actor_id, "creation": self.creation}
        if self.num_restarts:
            wire["num_restarts"] = self.num_restarts
        if self.accelerators:
            wire["accelerators"] = self.accelerators
        if self.placement is not None:
            wire["placement"] = self.placement
        return wire

    @classmethod
    def from_wire(cls, body: object) -> ActorInstanceBody:
        w = body_map(body, "CREATE_ACTOR_INSTANCE", ("actor_id", "creation"))
        return cls(w["actor_id"], w["creation"], w.get("num_restarts", 0),
                   w.get("accelerators") or None, w.get("placement"))
