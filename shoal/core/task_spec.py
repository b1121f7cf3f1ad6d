"""What a task is, on the wire.

A spec is built by the owner, sent in PUSH_TASK to the executing worker and
kept by the owner for retries.  The function travels as pickled bytes only
the first time a connection sees it (``function_id`` identifies it after).

Arguments on the wire (arrays, read through the named indices below: a task
with 10k ref arguments sends 10k of them, where a map per argument would cost
its keys each time)::

    [ARG_VALUE, [flags, inband, [buffers]]]        small value, inline
    [ARG_REF, object_id, owner_address, node]      fetch it: ``node`` names the
                                                    node holding a copy, or says
                                                    why none is named (NODE_*)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

ARG_VALUE = 0
ARG_REF = 1
ARG_INLINE = 1  # of an ARG_VALUE argument: the value, [flags, inband, [buffers]]
REF_OBJECT, REF_OWNER, REF_NODE = 1, 2, 3  # of an ARG_REF argument
NODE_UNRESOLVED = ""  # the owner has not looked the object up yet: it does before queueing
NODE_UNKNOWN = "?"  # looked up, no node's copy known (inline, or lost): ask the owner


def ref_arg(object_id: bytes, owner: str, node: str = NODE_UNRESOLVED) -> list:
    return [ARG_REF, object_id, owner, node]


def names_a_node(node: str) -> bool:
    """Whether an ARG_REF's ``node`` is a node id (else one of the NODE_* words)."""
    return node != NODE_UNRESOLVED and node != NODE_UNKNOWN

STREAMING = -1  # num_returns="streaming"
DYNAMIC = -2  # num_returns="dynamic"


class TaskKind(enum.IntEnum):
    NORMAL = 0
    ACTOR_CREATION = 1
    ACTOR_TASK = 2


@dataclass(slots=True)
class TaskSpec:
    """One task, named field by field.  Only :meth:`to_wire` and
    :meth:`from_wire` know the wire layout.

    On the wire: the 11 fields every task has, in a fixed order, then -- only if
    any of the others is set -- one msgpack map of those, by short key
    (``_WIRE_KEYS``).  A plain task thus sends 11 values and no names; an actor
    call adds ``{"a": actor, "m": method, "q": seq}``.  A field absent from
    the map is at its default (None / False / 0), so no placeholder is ever sent
    and a new optional field takes a new key, not a position.
    """

    task_id: bytes
    kind: TaskKind
    name: str
    function_id: bytes
    args: list
    kwarg_names: list[str]
    num_returns: int
    owner: str  # address of the owner (the submitting core worker)
    job_id: str
    resources: dict = field(default_factory=dict)
    function_bytes: bytes | None = None  # the pickled function, the first time only
    # optional: sent in the trailing map only when set
    actor_id: str | None = None  # an actor call's (and its creation's) actor
    method: str | None = None  # an actor call's method name
    seq: int = 0  # an actor call's number in its caller's order
    placement: list | None = None  # [pg_id, bundle index, capture child tasks]
    accelerators: dict | None = None  # {"GPU": [ids]} of the lease it is pushed on
    concurrency_group: str | None = None  # a call's group from .options() (None: its method's)
    cold_returns: bool = False  # ``_cold_returns``: its stored returns spill first
    args_in_place: bool = False  # ``_read_args_in_place``: spilled args are not restored
    # a streaming generator pauses once this many yielded items are unconsumed (0: never)
    backpressure: int = 0
    max_calls: int = 0  # its worker leaves after running the function this often (0: never)
    # owner-side only, never sent
    parent_task_id: bytes = b""

    def to_wire(self, include_function: bool) -> list:
        """The wire form (see the class docstring); ``include_function``: send the
        pickled function too (the first time this connection sees it)."""
        wire = [self.task_id, int(self.kind), self.name, self.function_id,
                self.function_bytes if include_function else None, self.args,
                self.kwarg_names, self.num_returns, self.owner, self.job_id, self.resources]
        optional = {}
        if self.actor_id is not None:
            optional["a"] = self.actor_id
        if self.method is not None:
            optional["m"] = self.method
        if self.seq:
            optional["q"] = self.seq
        if self.placement is not None:
            optional["pg"] = self.placement
        if self.accelerators is not None:
            optional["acc"] = self.accelerators
        if self.concurrency_group is not None:
            optional["cg"] = self.concurrency_group
        if self.cold_returns:
            optional["cold"] = True
        if self.args_in_place:
            optional["inpl"] = True
        if self.backpressure:
            optional["bp"] = self.backpressure
        if self.max_calls:
            optional["calls"] = self.max_calls
        if optional:
            wire.append(optional)
        return wire

    @classmethod
    def from_wire(cls, w: list) -> TaskSpec:
        """A spec from :meth:`to_wire`'s form; a malformed one raises naming what
        was wrong."""
        if not isinstance(w, list) or not _FIXED <= len(w) <= _FIXED + 1:
            raise ValueError(f"a task spec is a list of {_FIXED} fields and an optional "
                             f"map, got {type(w).__name__} {w!r:.80}")
        spec = cls(w[0], _KINDS[w[1]], w[2], w[3], w[5], w[6], w[7], w[8], w[9], w[10], w[4])
        if len(w) > _FIXED:
            for key, value in w[_FIXED].items():
                attr = _WIRE_KEYS.get(key)
                if attr is None:
                    raise ValueError(f"task spec has an unknown optional field {key!r}")
                setattr(spec, attr, value)
        return spec

    def is_generator(self) -> bool:
        return self.num_returns in (STREAMING, DYNAMIC)


_FIXED = 11  # fields every task sends, in to_wire's order
_KINDS = tuple(TaskKind)  # wire int -> TaskKind, cheaper than TaskKind(n) per task
# the optional fields' short wire keys -> TaskSpec attribute
_WIRE_KEYS = {"a": "actor_id", "m": "method", "q": "seq", "pg": "placement",
              "acc": "accelerators", "cg": "concurrency_group", "cold": "cold_returns",
              "inpl": "args_in_place", "bp": "backpressure", "calls": "max_calls"}


def strategy_to_wire(strategy: object) -> list | None:
    """A ``scheduling_strategy`` option as agents and the control store read it:
    None (DEFAULT), ``["SPREAD"]``, ``["NODE_AFFINITY", node_id, soft]`` or
    ``["PG", pg_id, bundle_index, capture_child_tasks]``."""
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return ["SPREAD"]
    node_id = getattr(strategy, "node_id", None)
    if node_id is not None:
        return ["NODE_AFFINITY", str(node_id), bool(getattr(strategy, "soft", False))]
    group = getattr(strategy, "placement_group", None)
    if group is not None:
        return ["PG", group.id.hex(), int(strategy.placement_group_bundle_index),
                bool(strategy.placement_group_capture_child_tasks)]
    return None
