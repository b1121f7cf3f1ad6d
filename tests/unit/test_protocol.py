"""Unit tests for shoal.rpc.protocol: handshake checks and the Decoder (no I/O)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.rpc import protocol as p
from shoal.rpc.protocol import (
    MAX_HANDSHAKE_BYTES,
    AuthenticationError,
    ConnectionState,
    Decoder,
    Kind,
    ProtocolError,
)

TOKEN = "s3cret-token"


# ---- handshake encode / check ------------------------------------------------------


def test_handshake_round_trip_with_right_token_returns_info():
    info = {"name": "worker-1", "pid": 42}
    message = p.unpack(p.encode_handshake(TOKEN, info))
    assert message == [p.MAGIC, p.PROTOCOL_VERSION, TOKEN, info]
    assert p.check_handshake(message, TOKEN) == info


def test_handshake_non_dict_info_is_replaced_by_empty_dict():
    message = [p.MAGIC, p.PROTOCOL_VERSION, TOKEN, "not a dict"]
    assert p.check_handshake(message, TOKEN) == {}


@pytest.mark.parametrize(
    "presented", ["wrong", "", TOKEN + "x", TOKEN[:-1], None, 123, b"s3cret-token"]
)
def test_handshake_wrong_or_missing_token_raises_authentication_error(presented):
    message = [p.MAGIC, p.PROTOCOL_VERSION, presented, {}]
    with pytest.raises(AuthenticationError):
        p.check_handshake(message, TOKEN)


def test_authentication_error_is_a_protocol_error():
    assert issubclass(AuthenticationError, ProtocolError)


@pytest.mark.parametrize("version", [0, p.PROTOCOL_VERSION + 1, "1", None])
def test_handshake_wrong_version_is_protocol_error_not_auth_error(version):
    message = [p.MAGIC, version, TOKEN, {}]
    with pytest.raises(ProtocolError, match="version") as info:
        p.check_handshake(message, TOKEN)
    assert not isinstance(info.value, AuthenticationError)


@pytest.mark.parametrize(
    "message",
    [
        None,
        42,
        "shoal",
        b"garbage",
        [],
        ["shoal", 1, TOKEN],  # too short
        ["shoal", 1, TOKEN, {}, "extra"],  # too long
        ["SHOAL", 1, TOKEN, {}],  # wrong magic
        ("shoal", 1, TOKEN, {}),  # tuple, not a decoded msgpack list
        {"shoal": 1},
    ],
)
def test_handshake_garbage_is_protocol_error_not_auth_error(message):
    with pytest.raises(ProtocolError) as info:
        p.check_handshake(message, TOKEN)
    assert not isinstance(info.value, AuthenticationError)


def test_handshake_reply_ok_returns_server_info():
    reply = p.unpack(p.encode_handshake_reply({"name": "head"}))
    assert reply == [p.MAGIC, "ok", {"name": "head"}]
    assert p.check_handshake_reply(reply) == {"name": "head"}
    assert p.check_handshake_reply([p.MAGIC, "ok", None]) == {}


def test_handshake_reply_refusal_is_authentication_error():
    with pytest.raises(AuthenticationError, match="denied"):
        p.check_handshake_reply([p.MAGIC, "denied", {}])


@pytest.mark.parametrize("reply", [None, [], ["nope", "ok", {}], [p.MAGIC, "ok"], "ok"])
def test_handshake_reply_garbage_is_protocol_error(reply):
    with pytest.raises(ProtocolError) as info:
        p.check_handshake_reply(reply)
    assert not isinstance(info.value, AuthenticationError)


# ---- message encoders ----------------------------------------------------------------


def test_message_encoders_produce_documented_layout():
    assert p.unpack(p.encode_request(7, 31, {"a": b"\x00\x01"})) == [
        Kind.REQUEST,
        7,
        31,
        {"a": b"\x00\x01"},
    ]
    assert p.unpack(p.encode_response(7, [1, 2])) == [Kind.RESPONSE, 7, [1, 2]]
    assert p.unpack(p.encode_error(7, "ValueError", "bad")) == [Kind.ERROR, 7, "ValueError", "bad"]
    assert p.unpack(p.encode_notify(90, None)) == [Kind.NOTIFY, 90, None]


def test_pack_keeps_bytes_and_str_distinct_and_allows_int_map_keys():
    value = {1: b"raw", "s": "text"}
    assert p.unpack(p.pack(value)) == value


# ---- Decoder: handshake mode ---------------------------------------------------------


def test_decoder_starts_in_handshake_mode_or_open_when_asked():
    assert Decoder().state is ConnectionState.HANDSHAKE
    assert Decoder(handshake=False).state is ConnectionState.OPEN


def test_handshake_message_is_none_until_complete():
    data = p.encode_handshake(TOKEN, {"name": "x"})
    decoder = Decoder()
    assert decoder.handshake_message() is None
    for i in range(len(data) - 1):
        decoder.feed(data[i : i + 1])
        assert decoder.handshake_message() is None
    decoder.feed(data[-1:])
    assert decoder.handshake_message() == [p.MAGIC, p.PROTOCOL_VERSION, TOKEN, {"name": "x"}]
    assert decoder.state is ConnectionState.HANDSHAKE


def test_feeding_more_than_cap_in_one_chunk_raises_and_closes():
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00" * (MAX_HANDSHAKE_BYTES + 1))
    assert decoder.state is ConnectionState.CLOSED


def test_incomplete_handshake_over_cap_across_feeds_raises():
    # One huge string: nothing can be parsed until it is complete.
    data = p.pack([p.MAGIC, p.PROTOCOL_VERSION, "x" * (2 * MAX_HANDSHAKE_BYTES), {}])
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        for start in range(0, len(data), 4096):
            decoder.feed(data[start : start + 4096])
            assert decoder.handshake_message() is None
    assert decoder.state is ConnectionState.CLOSED
    # It failed close to the cap, not after swallowing everything.
    assert start <= MAX_HANDSHAKE_BYTES


def test_handshake_cap_allows_exactly_cap_bytes_in_one_feed():
    decoder = Decoder()
    decoder.feed(
        b"\xdb" + (MAX_HANDSHAKE_BYTES).to_bytes(4, "big") + b"a" * (MAX_HANDSHAKE_BYTES - 5)
    )
    assert decoder.handshake_message() is None
    assert decoder.state is ConnectionState.HANDSHAKE


def test_handshake_cap_holds_for_incrementally_parsable_handshake():
    # ~300 KB of small nested arrays, i.e. > 4x MAX_HANDSHAKE_BYTES.
    info = {"x": [list(range(100, 1100)) for _ in range(100)]}
    data = p.encode_handshake(TOKEN, info)
    assert len(data) > 4 * MAX_HANDSHAKE_BYTES
    decoder = Decoder()
    # Fed the way Connection.data_received does it: feed, then try to decode.
    # msgpack parses (and discards) the nested arrays as they arrive, so its own
    # buffer limit never trips; the decoder must still refuse past the cap.
    with pytest.raises(ProtocolError):
        for start in range(0, len(data), 4096):
            decoder.feed(data[start : start + 4096])
            assert decoder.handshake_message() is None
    assert decoder.state is ConnectionState.CLOSED
    assert start <= MAX_HANDSHAKE_BYTES


@pytest.mark.parametrize("garbage", [b"\xc1", b"\xc1\x00\x00"])
def test_malformed_handshake_raises_protocol_error_and_closes(garbage):
    decoder = Decoder()
    decoder.feed(garbage)
    with pytest.raises(ProtocolError, match="malformed handshake"):
        decoder.handshake_message()
    assert decoder.state is ConnectionState.CLOSED


def test_bytes_following_the_handshake_in_the_same_feed_are_kept_for_open_mode():
    handshake = p.encode_handshake(TOKEN, {})
    request = p.encode_request(1, 31, {"k": b"v"})
    notify = p.encode_notify(90, [1, 2, 3])
    decoder = Decoder()
    decoder.feed(handshake + request + notify)
    assert p.check_handshake(decoder.handshake_message(), TOKEN) == {}
    decoder.open()
    assert decoder.state is ConnectionState.OPEN
    assert list(decoder.messages()) == [
        [Kind.REQUEST, 1, 31, {"k": b"v"}],
        [Kind.NOTIFY, 90, [1, 2, 3]],
    ]


def test_partial_message_after_handshake_is_completed_after_open():
    handshake = p.encode_handshake(TOKEN, {})
    request = p.encode_request(5, 1, "body")
    decoder = Decoder()
    decoder.feed(handshake + request[:3])
    assert decoder.handshake_message() is not None
    decoder.open()
    assert list(decoder.messages()) == []
    decoder.feed(request[3:])
    assert list(decoder.messages()) == [[Kind.REQUEST, 5, 1, "body"]]


def test_open_with_nothing_buffered():
    decoder = Decoder()
    decoder.feed(p.encode_handshake(TOKEN, {}))
    assert decoder.handshake_message() is not None
    decoder.open()
    assert list(decoder.messages()) == []
    decoder.feed(p.encode_response(1, None))
    assert list(decoder.messages()) == [[Kind.RESPONSE, 1, None]]


# ---- Decoder: open mode ----------------------------------------------------------------


def test_open_mode_accepts_messages_larger_than_handshake_cap():
    body = b"z" * (4 * MAX_HANDSHAKE_BYTES)
    data = p.encode_request(2, 36, body)
    decoder = Decoder(handshake=False)
    for start in range(0, len(data), 10_000):
        decoder.feed(data[start : start + 10_000])
    messages = list(decoder.messages())
    assert messages == [[Kind.REQUEST, 2, 36, body]]


def test_open_mode_after_handshake_accepts_large_messages():
    decoder = Decoder()
    decoder.feed(p.encode_handshake(TOKEN, {}))
    assert decoder.handshake_message() is not None
    decoder.open()
    body = b"q" * (2 * MAX_HANDSHAKE_BYTES)
    decoder.feed(p.encode_response(9, body))
    assert list(decoder.messages()) == [[Kind.RESPONSE, 9, body]]


def test_malformed_message_in_open_mode_raises_protocol_error_and_closes():
    decoder = Decoder(handshake=False)
    decoder.feed(p.encode_notify(1, None) + b"\xc1")
    with pytest.raises(ProtocolError, match="malformed message"):
        list(decoder.messages())
    assert decoder.state is ConnectionState.CLOSED


_text = st.text(alphabet="abcxyz\u00e9\u4e2d", max_size=8)
_bodies = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    _text,
    st.binary(max_size=64),
    st.lists(st.integers(-5, 300), max_size=4),
    st.dictionaries(_text, st.binary(max_size=8), max_size=3),
)

_messages = st.one_of(
    st.builds(
        lambda i, m, b: ("req", i, m, b), st.integers(0, 2**31), st.integers(0, 100), _bodies
    ),
    st.builds(lambda i, b: ("resp", i, b), st.integers(0, 2**31), _bodies),
    st.builds(lambda i, t, s: ("err", i, t, s), st.integers(0, 2**31), _text, _text),
    st.builds(lambda m, b: ("notify", m, b), st.integers(0, 100), _bodies),
)


def _encode(message):
    kind = message[0]
    if kind == "req":
        return p.encode_request(*message[1:]), [Kind.REQUEST, *message[1:]]
    if kind == "resp":
        return p.encode_response(*message[1:]), [Kind.RESPONSE, *message[1:]]
    if kind == "err":
        return p.encode_error(*message[1:]), [Kind.ERROR, *message[1:]]
    return p.encode_notify(*message[1:]), [Kind.NOTIFY, *message[1:]]


@settings(max_examples=100, deadline=None, database=None)
@given(
    messages=st.lists(_messages, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    info=st.dictionaries(_text, st.integers(-(2**63), 2**63 - 1), max_size=3),
)
def test_messages_split_at_arbitrary_chunk_boundaries_decode_correctly(messages, cuts, info):
    encoded = [_encode(m) for m in messages]
    handshake = p.encode_handshake(TOKEN, info)
    stream = handshake + b"".join(data for data, _ in encoded)
    boundaries = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(boundaries, boundaries[1:], strict=False)]

    decoder = Decoder()
    got = []
    handshake_seen = None
    for chunk in chunks:
        decoder.feed(chunk)
        if decoder.state is ConnectionState.HANDSHAKE:
            handshake_seen = decoder.handshake_message()
            if handshake_seen is None:
                continue
            decoder.open()
        got.extend(decoder.messages())
    assert handshake_seen is not None
    assert p.check_handshake(handshake_seen, TOKEN) == info
    assert decoder.state is ConnectionState.OPEN
    assert got == [expected for _, expected in encoded]


def test_decoder_uses_msgpack_semantics_for_bin_vs_str():
    decoder = Decoder(handshake=False)
    decoder.feed(msgpack.packb([Kind.NOTIFY, 1, [b"bin", "str"]], use_bin_type=True))
    assert list(decoder.messages()) == [[Kind.NOTIFY, 1, [b"bin", "str"]]]
