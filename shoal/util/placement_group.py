"""Placement groups with Ray's names: ``shoal.util.placement_group(bundles,
strategy=, name=, lifetime=)``, ``remove_placement_group``,
``get_placement_group``, ``placement_group_table``,
``get_current_placement_group``.

A group reserves its bundles atomically across the cluster (two-phase commit
run by the control store: :mod:`shoal.control.placement_state`).  Creation is
asynchronous, as in Ray: ``pg.ready()`` is a ref that resolves once every bundle
is reserved, ``pg.wait(timeout_seconds)`` blocks for it.  Tasks and actors run
inside a bundle with ``scheduling_strategy=PlacementGroupSchedulingStrategy(pg,
placement_group_bundle_index=i)`` (or the older ``.options(placement_group=pg,
placement_group_bundle_index=i)``).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from shoal.control.placement_state import STRATEGIES, PgState
from shoal.rpc.messages import Method


class PlacementGroupID:
    """A placement group's id (Ray's PlacementGroupID: ``hex()``, ``binary()``)."""

    __slots__ = ("_hex",)

    def __init__(self, hex_id: str) -> None:
        self._hex = hex_id

    def hex(self) -> str:
        return self._hex

    def binary(self) -> bytes:
        return bytes.fromhex(self._hex)

    def is_nil(self) -> bool:
        return not self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self._hex})"

    def __reduce__(self):
        return PlacementGroupID, (self._hex,)


class PlacementGroup:
    """A handle to a placement group; it can be passed to tasks and actors."""

    def __init__(self, id: PlacementGroupID | str,  # noqa: A002 (Ray's name)
                 bundle_cache: list[dict] | None = None) -> None:
        self.id = id if isinstance(id, PlacementGroupID) else PlacementGroupID(id)
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(""))

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    def ready(self) -> Any:
        """An ObjectRef that resolves (to this group) once every bundle is reserved."""
        from shoal.api.session import ensure_worker
        from shoal.core.placement_client import ready_ref

        return ready_ref(ensure_worker(), self)

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """Block until the group is placed; False if ``timeout_seconds`` pass first."""
        if timeout_seconds is None or timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be a number >= 0, got {timeout_seconds!r}")
        record = _control(Method.GET_PLACEMENT_GROUP, [self.id.hex(), float(timeout_seconds)],
                          timeout=float(timeout_seconds) + 30)
        return record is not None and PgState(record["state"]) is PgState.CREATED

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles' resource dicts, in order."""
        if self.bundle_cache is None:
            record = _control(Method.GET_PLACEMENT_GROUP, [self.id.hex(), 0])
            if record is None:
                raise ValueError(f"unknown placement group {self.id.hex()}")
            self.bundle_cache = record["bundles"]
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"

    def __reduce__(self):
        return PlacementGroup, (self.id, self.bundle_cache)


def _control(method: Method, body: Any, timeout: float = 30) -> Any:
    """A control-store request sent from this thread, its reply awaited on a lock:
    no hop through the event loop (``wait`` on many groups is a loop of these)."""
    from shoal import exceptions
    from shoal.api.session import ensure_worker

    worker = ensure_worker()
    if worker.in_loop():
        raise RuntimeError("blocking shoal call made from the event loop thread")
    answered = threading.Lock()
    answered.acquire()
    box: list = []

    def on_reply(answer: Any) -> None:
        box.append(answer)
        answered.release()

    worker.control.call_from_thread(method, body, on_reply)
    if not answered.acquire(timeout=timeout):
        raise exceptions.GetTimeoutError(
            f"the control store did not answer {method.name} within {timeout:g} s")
    return box[0].result()


def _check_bundles(bundles: Any) -> list[dict]:
    if not isinstance(bundles, list | tuple) or not bundles:
        raise ValueError("bundles must be a non-empty list of resource dicts, for example "
                         f'[{{"CPU": 1}}, {{"GPU": 1}}]; got {bundles!r}')
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict):
            raise ValueError(f"bundle {i} must be a dict of resource names to amounts, "
                             f"got {bundle!r}")
        clean = {}
        for key, value in bundle.items():
            if not isinstance(key, str):
                raise ValueError(f"bundle {i}: resource names must be strings, got {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or value < 0:
                raise ValueError(f"bundle {i}: the amount of {key!r} must be a number >= 0, "
                                 f"got {value!r}")
            if value:
                clean[key] = float(value)
        if not clean:
            raise ValueError(f"bundle {i} is empty or has only zero amounts ({bundle!r}); "
                             "every bundle must reserve something")
        out.append(clean)
    return out


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK",
                    name: str = "", lifetime: str | None = None,
                    _soft_target_node_id: str | None = None,
                    bundle_label_selector: Any = None) -> PlacementGroup:
    """Create a placement group (asynchronously: see ``ready`` and ``wait``)."""
    from shoal.api.session import ensure_worker

    checked = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"invalid placement group strategy {strategy!r}; supported "
                         f"strategies are {', '.join(STRATEGIES)}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"lifetime must be None or 'detached', got {lifetime!r}")
    worker = ensure_worker()
    pg_id = os.urandom(18).hex()
    body = {"pg_id": pg_id, "bundles": checked, "strategy": strategy, "name": name,
            "namespace": worker.namespace, "detached": lifetime == "detached",
            "job_id": worker.job_id}
    if name:  # a taken name must raise here
        worker.control_call(Method.CREATE_PLACEMENT_GROUP, body)
    else:  # nothing left to refuse: no round trip (later calls on this connection see it)
        worker.control.notify_from_thread(Method.CREATE_PLACEMENT_GROUP, body)
    return PlacementGroup(PlacementGroupID(pg_id), checked)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Free the group's reservations; the tasks and actors running in it are killed."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group takes a PlacementGroup, got "
                        f"{placement_group!r}")
    from shoal.api.session import ensure_worker

    # no reply to wait for: later calls on this connection see it removed
    ensure_worker().control.notify_from_thread(Method.REMOVE_PLACEMENT_GROUP,
                                               [placement_group.id.hex()])


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named so in the caller's namespace; ValueError if none."""
    from shoal.api.session import ensure_worker

    worker = ensure_worker()
    record = worker.control_call(Method.GET_NAMED_PLACEMENT_GROUP,
                                 [placement_group_name, worker.namespace])
    if record is None:
        raise ValueError(f"Failed to look up placement group with name: "
                         f"{placement_group_name} (no such group in namespace "
                         f"{worker.namespace!r})")
    return PlacementGroup(PlacementGroupID(record["placement_group_id"]), record["bundles"])


def table_entry(record: dict) -> dict:
    """A record as Ray's placement_group_table shows it (bundles keyed by index)."""
    return {
        "placement_group_id": record["placement_group_id"],
        "name": record["name"],
        "bundles": dict(enumerate(record["bundles"])),
        "bundles_to_node_id": {i: n for i, n in enumerate(record["bundles_to_node_id"]) if n},
        "strategy": record["strategy"],
        "state": record["state"],
        "stats": record["stats"],
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """One group's state, or every group's keyed by id."""
    if placement_group is not None:
        record = _control(Method.GET_PLACEMENT_GROUP, [placement_group.id.hex(), 0])
        return table_entry(record) if record is not None else {}
    return {r["placement_group_id"]: table_entry(r)
            for r in _control(Method.LIST_PLACEMENT_GROUPS, None)}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in the driver or outside one."""
    from shoal.api.session import ensure_worker
    from shoal.core.placement_client import current_placement

    placement = current_placement(ensure_worker())
    return PlacementGroup(PlacementGroupID(placement[0])) if placement else None


__all__ = ["PlacementGroup", "PlacementGroupID", "get_current_placement_group",
           "get_placement_group", "placement_group", "placement_group_table",
           "remove_placement_group"]
