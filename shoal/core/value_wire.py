"""A stored value's wire form (GET_OBJECT replies, RECOVER_OBJECT, task returns):
the one encoding every core part shares, kept below them so that none imports
another to reach it."""

from __future__ import annotations

import os

from shoal.core.serialization import Serialized, serialize_error
from shoal.core.value_table import StoredValue

# The placement rule: a value whose serialized size is at most this stays inline
# (in the owner's value table, carried in messages); a larger one goes to the
# node's shared-memory store (docs/design.md section 11).
INLINE_THRESHOLD = int(os.environ.get("SHOAL_INLINE_THRESHOLD", 100 * 1024))

# GET_OBJECT replies
VALUE_INLINE = 0
VALUE_PLASMA = 1
VALUE_UNKNOWN = 2


def value_to_wire(value: StoredValue) -> list:
    if value.inline is not None:
        return [VALUE_INLINE, value.inline.to_inline()]
    return [VALUE_PLASMA, value.node_id, value.size, list(value.locations)]


def value_from_wire(wire: list) -> StoredValue:
    if wire[0] == VALUE_INLINE:
        return StoredValue(inline=Serialized.from_inline(wire[1]))
    locations = {wire[1], *wire[3]} if len(wire) > 3 else {wire[1]}
    return StoredValue(node_id=wire[1], size=wire[2], locations=locations)


def error_value(exc: BaseException) -> StoredValue:
    return StoredValue(inline=serialize_error(exc))


def detach(data: Serialized) -> Serialized:
    """Copy buffers so later changes to the caller's arrays do not leak in."""
    if not data.buffers:
        return data
    return Serialized(data.inband, [memoryview(bytes(b)) for b in data.buffers],
                      data.contained, data.flags)
