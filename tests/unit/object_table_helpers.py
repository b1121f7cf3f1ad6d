"""Shared by the object table's unit tests: ids, sealed objects, finished
spills, and the table's book-keeping invariants."""

from __future__ import annotations

from shoal.node.object_store.allocator import ALIGNMENT, align
from shoal.node.object_store.table import ActionKind, CopyKind, ObjectState, ObjectTable

A = ALIGNMENT
ALICE = "client-alice"
BOB = "client-bob"
MiB = 1 << 20
DISK = 1 << 40  # room on disk: plenty


def oid(n: int) -> bytes:
    return n.to_bytes(4, "big") * 7


def sealed(table: ObjectTable, n: int, size: int = 100, creator: object = ALICE,
           kind: CopyKind = CopyKind.PRIMARY, owner: str = "") -> bytes:
    key = oid(n)
    table.create(key, size, creator, owner, kind)
    table.seal(key)
    return key


def kinds(table: ObjectTable) -> list[ActionKind]:
    return [a.kind for a in table.take_actions()]


def spill_all(table: ObjectTable, path: str = "/spill/f1") -> list:
    """Complete every SPILL action as the I/O layer would; returns the batches."""
    batches = [a for a in table.take_actions() if a.kind is ActionKind.SPILL]
    for n, action in enumerate(batches):
        offsets, pos = [], 0
        for item in action.items:
            offsets.append(pos)
            pos += item.size
        table.spill_done(action.batch_id, f"{path}.{n}", offsets)
    return batches


def check_invariants(table: ObjectTable) -> None:
    held = [o for o in table.objects.values()] + [o for objs in table.freed.values()
                                                  for o in objs]
    in_arena = [o for o in held if o.offset >= 0]
    assert table.used == sum(align(max(o.size, 1)) for o in in_arena)
    assert {o.offset: o for o in in_arena} == table.at
    spans = sorted((o.offset, o.offset + align(max(o.size, 1))) for o in in_arena)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # no overlap
    assert table.cached == sum(align(max(o.size, 1)) for o in in_arena if o.disk is not None)
    live_disk = {o.disk.seq: o.oid for o in table.objects.values() if o.disk is not None}
    assert table.spill_order.oid == live_disk and len(table.spill_order) == len(live_disk)
    for obj in table.objects.values():
        assert obj.state is not ObjectState.FREED
        if obj.state is ObjectState.SPILLED:
            assert obj.offset == -1 and obj.disk is not None
        if obj.state in (ObjectState.SPILLING, ObjectState.RESTORING):
            assert obj.io
        if obj.disk is not None:
            assert obj.oid in obj.disk.file.live and obj.disk.file.path in table.files
    for objs in table.freed.values():
        for obj in objs:
            assert obj.state is ObjectState.FREED and (obj.pinned or obj.io)
