"""The bodies of the lease requests between an owner and a node agent, with
named fields (they were positional lists with ``""`` placeholders).

On the wire each body is a msgpack map; a field left at its default is not
sent.  ``from_wire`` refuses a body that is not a map or lacks a required field,
naming what was wrong.  The grant reply is still the positional list
``[lease id, worker id, worker address, node id, shape, accelerators]``.
"""

from __future__ import annotations

from dataclasses import dataclass


def _map(body: object, what: str, required: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise TypeError(f"{what} body must be a map of named fields, got "
                        f"{type(body).__name__}")
    missing = [name for name in required if name not in body]
    if missing:
        raise ValueError(f"{what} body lacks {', '.join(missing)}")
    return body


@dataclass(frozen=True)
class LeaseRequestBody:
    """REQUEST_LEASE: lend me a worker with this shape."""

    job_id: str
    shape: dict  # resource name -> amount (floats, as the user wrote them)
    label: str = ""  # what the worker will run (its title); owners leave it empty
    strategy: list | None = None  # task_spec.strategy_to_wire form
    spilled: bool = False  # queue it here, never redirect it (already redirected, or PG)
    runtime_env: dict | None = None  # resolved (runtime_env.spec); None: default workers

    def to_wire(self) -> dict:
        wire: dict = {"job_id": self.job_id, "shape": self.shape}
        if self.label:
            wire["label"] = self.label
        if self.strategy is not None:
            wire["strategy"] = self.strategy
        if self.spilled:
            wire["spilled"] = True
        if self.runtime_env:
            wire["runtime_env"] = self.runtime_env
        return wire

    @classmethod
    def from_wire(cls, body: object) -> LeaseRequestBody:
        w = _map(body, "REQUEST_LEASE", ("job_id", "shape"))
        return cls(w["job_id"], w["shape"], w.get("label", ""), w.get("strategy"),
                   bool(w.get("spilled", False)), w.get("runtime_env") or None)


@dataclass(frozen=True)
class ReturnLeaseBody:
    """RETURN_LEASE: the owner is done with the lease."""

    lease_id: int
    kill: bool = False  # end the worker (the owner could not reach it)
    retire: bool = False  # the worker ran its max_calls: it leaves (core/retire.py)

    def to_wire(self) -> dict:
        wire: dict = {"lease_id": self.lease_id}
        if self.kill:
            wire["kill"] = True
        if self.retire:
            wire["retire"] = True
        return wire

    @classmethod
    def from_wire(cls, body: object) -> ReturnLeaseBody:
        w = _map(body, "RETURN_LEASE", ("lease_id",))
        return cls(w["lease_id"], bool(w.get("kill", False)), bool(w.get("retire", False)))
