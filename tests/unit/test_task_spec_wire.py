"""TaskSpec's wire form: 11 fixed fields, then one map of the optional fields
set, by short key.  Every optional field survives a round trip alone and in
combination, a field left at its default is not sent, a plain task sends no
map, and a malformed spec is refused naming what was wrong."""

import itertools

import msgpack
import pytest

from shoal.core.task_spec import TaskKind, TaskSpec

PLACEMENTS = [None, ["ab" * 8, 1, True]]
ACCELERATORS = [None, {"GPU": [0, 1]}]
GROUPS = [None, "io"]

# every optional field with a value that is not its default
SET = {"actor_id": "a" * 32, "method": "f", "seq": 7, "placement": ["ab" * 8, 1, True],
       "accelerators": {"GPU": [0]}, "concurrency_group": "io", "cold_returns": True,
       "args_in_place": True, "backpressure": 3, "max_calls": 2}


def plain(**fields) -> TaskSpec:
    return TaskSpec(b"t" * 16, TaskKind.NORMAL, "f", b"fid", [1], [], 1, "owner", "job",
                    resources={"CPU": 1.0}, **fields)


def actor_call(**fields) -> TaskSpec:
    return plain(actor_id="a" * 32, method="f", seq=7, **fields)


def through_msgpack(spec: TaskSpec, include_function: bool = False) -> TaskSpec:
    data = msgpack.packb(spec.to_wire(include_function), use_bin_type=True)
    return TaskSpec.from_wire(msgpack.unpackb(data, raw=False, strict_map_key=False))


@pytest.mark.parametrize("placement,accelerators,group",
                         list(itertools.product(PLACEMENTS, ACCELERATORS, GROUPS)))
def test_optional_fields_round_trip_in_combination(placement, accelerators, group):
    original = actor_call(placement=placement, accelerators=accelerators,
                          concurrency_group=group)
    back = through_msgpack(original)
    assert (back.placement, back.accelerators, back.concurrency_group) == (
        placement, accelerators, group)
    assert (back.task_id, back.kind, back.actor_id, back.method, back.seq, back.resources) == (
        original.task_id, original.kind, original.actor_id, original.method, original.seq,
        original.resources)


@pytest.mark.parametrize("name", sorted(SET))
def test_each_optional_field_round_trips_alone(name):
    back = through_msgpack(plain(**{name: SET[name]}))
    assert getattr(back, name) == SET[name]
    for other in SET.keys() - {name}:  # the others stay at their defaults
        assert getattr(back, other) == getattr(plain(), other), other


def test_all_fields_round_trip_and_the_function_only_when_asked():
    original = plain(function_bytes=b"pickled", **SET)
    back = through_msgpack(original, include_function=True)
    assert back == original
    assert through_msgpack(original).function_bytes is None


def test_unset_fields_are_none_not_placeholders():
    back = through_msgpack(plain())
    assert (back.actor_id, back.method, back.concurrency_group, back.placement,
            back.accelerators) == (None, None, None, None, None)
    assert back.kind is TaskKind.NORMAL


def test_a_plain_task_sends_no_map_and_an_actor_call_only_its_keys():
    assert len(plain().to_wire(False)) == 11
    wire = actor_call().to_wire(False)
    assert len(wire) == 12 and wire[11] == {"a": "a" * 32, "m": "f", "q": 7}
    assert plain(concurrency_group="io").to_wire(False)[11] == {"cg": "io"}


def test_malformed_specs_are_refused_by_name():
    with pytest.raises(ValueError, match="list of 11 fields"):
        TaskSpec.from_wire(plain().to_wire(False)[:5])
    with pytest.raises(ValueError, match="list of 11 fields"):
        TaskSpec.from_wire({"task_id": b"t"})
    with pytest.raises(ValueError, match="unknown optional field 'zz'"):
        TaskSpec.from_wire([*plain().to_wire(False), {"zz": 1}])
