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

# status of a PUSH_TASK reply [status, returns, info]
STATUS_OK = 0
STATUS_APP_ERROR = 1
STATUS_CANCELLED = 2
STATUS_STOLEN = 3  # the worker handed the task back unstarted (work stealing)
# the worker handed the task back unstarted: no live node had a copy of an argument
# (info: {"lost": [object id, ...]}); its owner recovers them, then queues it again
STATUS_ARGS_LOST = 4

STREAMING = -1  # num_returns="streaming"
DYNAMIC = -2  # num_returns="dynamic"


class TaskKind(enum.IntEnum):
    NORMAL = 0
    ACTOR_CREATION = 1
    ACTOR_TASK = 2


@dataclass
class TaskSpec:
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
    actor_id: str = ""
    method: str = ""
    seq: int = 0
    function_bytes: bytes | None = None
    parent_task_id: bytes = b""
    placement: list | None = None  # [pg_id, bundle index, capture child tasks]
    accelerators: dict | None = None  # {"GPU": [ids]} of the lease it is pushed on
    concurrency_group: str = ""  # an actor call's group from .options() ("": its method's)
    cold_returns: bool = False  # ``_cold_returns``: its stored returns spill first
    args_in_place: bool = False  # ``_read_args_in_place``: spilled args are not restored
    # a streaming generator pauses once this many yielded items are unconsumed (0: never)
    backpressure: int = 0
    max_calls: int = 0  # its worker leaves after running the function this often (0: never)

    def to_wire(self, include_function: bool) -> list:
        """The optional fields trail the 14 fixed ones (placement 14, accelerators
        15, concurrency group 16, cold returns 17, args in place 18, backpressure
        19, 20 reserved (always None here), max calls 21) and are sent only up to
        the last one set."""
        wire = self._wire(include_function)
        optional = [self.placement, self.accelerators, self.concurrency_group,
                    self.cold_returns, self.args_in_place, self.backpressure, None,
                    self.max_calls]
        defaults = [None, None, "", False, False, 0, None, 0]
        last = max((i + 1 for i, (v, d) in enumerate(zip(optional, defaults, strict=True))
                    if v != d), default=0)
        return wire + optional[:last]

    def _wire(self, include_function: bool) -> list:
        return [
            self.task_id,
            int(self.kind),
            self.name,
            self.function_id,
            self.function_bytes if include_function else None,
            self.args,
            self.kwarg_names,
            self.num_returns,
            self.owner,
            self.job_id,
            self.resources,
            self.actor_id,
            self.method,
            self.seq,
        ]

    @classmethod
    def from_wire(cls, w: list) -> TaskSpec:
        return cls(
            task_id=w[0],
            kind=TaskKind(w[1]),
            name=w[2],
            function_id=w[3],
            function_bytes=w[4],
            args=w[5],
            kwarg_names=w[6],
            num_returns=w[7],
            owner=w[8],
            job_id=w[9],
            resources=w[10],
            actor_id=w[11],
            method=w[12],
            seq=w[13],
            placement=w[14] if len(w) > 14 else None,
            accelerators=w[15] if len(w) > 15 else None,
            concurrency_group=w[16] if len(w) > 16 else "",
            cold_returns=bool(w[17]) if len(w) > 17 else False,
            args_in_place=bool(w[18]) if len(w) > 18 else False,
            backpressure=w[19] if len(w) > 19 else 0,
            max_calls=w[21] if len(w) > 21 else 0,
        )

    def is_generator(self) -> bool:
        return self.num_returns in (STREAMING, DYNAMIC)


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
