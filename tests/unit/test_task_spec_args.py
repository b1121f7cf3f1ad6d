"""A ref argument's fields are read by name (shoal.core.task_spec)."""

from __future__ import annotations

from shoal.core.task_spec import (
    ARG_REF,
    NODE_UNKNOWN,
    NODE_UNRESOLVED,
    REF_NODE,
    REF_OBJECT,
    REF_OWNER,
    names_a_node,
    ref_arg,
)


def test_a_ref_argument_reads_by_name():
    arg = ref_arg(b"o" * 20, "owner:1", "node-a")
    assert arg[0] == ARG_REF
    assert (arg[REF_OBJECT], arg[REF_OWNER], arg[REF_NODE]) == (b"o" * 20, "owner:1", "node-a")
    assert ref_arg(b"o" * 20, "owner:1")[REF_NODE] == NODE_UNRESOLVED


def test_only_a_node_id_names_a_node():
    assert names_a_node("node-a")
    assert not names_a_node(NODE_UNRESOLVED)
    assert not names_a_node(NODE_UNKNOWN)
