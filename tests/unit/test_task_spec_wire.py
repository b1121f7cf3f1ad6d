"""TaskSpec's wire form: the optional trailing fields (placement 14, accelerators
15, concurrency group 16) survive a round trip in every combination, and a spec
without them stays at the 14 fixed fields."""

import itertools

import pytest

from shoal.core.task_spec import TaskKind, TaskSpec

PLACEMENTS = [None, ["ab" * 8, 1, True]]
ACCELERATORS = [None, {"GPU": [0, 1]}]
GROUPS = ["", "io"]


def spec(**fields) -> TaskSpec:
    return TaskSpec(b"t" * 16, TaskKind.ACTOR_TASK, "A.f", b"fid", [1], [], 1, "owner", "job",
                    resources={"CPU": 1.0}, actor_id="a" * 32, method="f", seq=7, **fields)


@pytest.mark.parametrize("placement,accelerators,group",
                         list(itertools.product(PLACEMENTS, ACCELERATORS, GROUPS)))
def test_optional_fields_round_trip(placement, accelerators, group):
    original = spec(placement=placement, accelerators=accelerators, concurrency_group=group)
    back = TaskSpec.from_wire(original.to_wire(include_function=False))
    assert (back.placement, back.accelerators, back.concurrency_group) == (
        placement, accelerators, group)
    assert (back.task_id, back.kind, back.method, back.seq, back.resources) == (
        original.task_id, original.kind, original.method, original.seq, original.resources)


def test_wire_length_grows_only_with_the_fields_set():
    assert len(spec().to_wire(False)) == 14
    assert len(spec(accelerators={"GPU": [0]}).to_wire(False)) == 16
    wire = spec(concurrency_group="io").to_wire(False)
    assert len(wire) == 17 and wire[14] is None and wire[15] is None and wire[16] == "io"


def test_concurrency_group_is_not_read_as_placement():
    back = TaskSpec.from_wire(spec(concurrency_group="io").to_wire(False))
    assert back.placement is None and back.concurrency_group == "io"
