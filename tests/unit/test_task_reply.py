"""The PUSH_TASK reply with named fields (shoal/core/task_reply.py): every field
survives msgpack, the rare ones travel only when set, an unset one reads as
None/False (no placeholder), and a malformed reply is refused by name."""

from __future__ import annotations

import msgpack
import pytest

from shoal.core.task_reply import ReplyStatus, TaskReply


def through_msgpack(reply: TaskReply) -> TaskReply:
    data = msgpack.packb(reply.to_wire(), use_bin_type=True)
    return TaskReply.from_wire(msgpack.unpackb(data, raw=False, strict_map_key=False))


def test_a_plain_reply_round_trips_with_no_info():
    reply = TaskReply(ReplyStatus.OK, [b"pickle", [2, [0, b"x"], []]])
    reply.ran = [1.5, 2.5]
    assert reply.to_wire()[3] is None  # nothing rare: no map
    back = through_msgpack(reply)
    assert back == reply
    assert back.status is ReplyStatus.OK
    assert (back.item_count, back.lost, back.retire) == (None, None, False)


@pytest.mark.parametrize("fields", [{"item_count": 0}, {"item_count": 3},
                                    {"lost": [b"o" * 20]}, {"retire": True},
                                    {"item_count": 2, "retire": True}])
def test_each_rare_field_round_trips(fields):
    reply = TaskReply(ReplyStatus.APP_ERROR, [], **fields)
    assert through_msgpack(reply) == reply


def test_every_status_round_trips_as_the_enum():
    for status in ReplyStatus:
        assert through_msgpack(TaskReply(status)).status is status


def test_a_reply_that_never_ran_has_no_times():
    back = through_msgpack(TaskReply(ReplyStatus.STOLEN))
    assert back.ran is None and back.returns == []


def test_malformed_replies_are_refused_by_name():
    with pytest.raises(ValueError, match=r"\[status, returns, ran, info\]"):
        TaskReply.from_wire([0, [], None])  # the old three-field form
    with pytest.raises(ValueError, match="got dict"):
        TaskReply.from_wire({"status": 0})
