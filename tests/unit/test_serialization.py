"""Unit tests for shoal.core.serialization: inline and shared-memory forms."""

from __future__ import annotations

import mmap
import threading

import numpy as np
import pytest

from shoal.api.object_ref import ObjectRef
from shoal.core import serialization as ser
from shoal.core.serialization import (
    ALIGN,
    BIG_BUFFER,
    FLAG_ERROR,
    PAGE,
    SerializationError,
    Serialized,
    deserialize,
    read_from,
    serialize,
    serialize_error,
)
from shoal.exceptions import RaySystemError
from shoal.rpc import protocol


def via_inline(value):
    """Serialize, ship through msgpack as the inline form, deserialize."""
    s = serialize(value)
    wire = protocol.unpack(protocol.pack(s.to_inline()))
    return deserialize(Serialized.from_inline(wire))


def via_store(value):
    """Serialize, write the shared-memory layout, read it back as views."""
    s = serialize(value)
    arena = bytearray(s.store_size())
    s.write_to(memoryview(arena))
    return deserialize(read_from(memoryview(arena))), arena


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


VALUES = [
    None,
    True,
    0,
    -(2**70),
    3.5,
    "text \u00e9\u4e2d",
    b"\x00\x01bytes",
    [1, [2, [3]]],
    (1, "two"),
    {"a": 1, 2: [None]},
    {1, 2, 3},
    Point(1, 2),
    ValueError("boom"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_round_trip_inline(value):
    result = via_inline(value)
    if isinstance(value, Exception):
        assert type(result) is type(value) and result.args == value.args
    else:
        assert result == value and type(result) is type(value)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_round_trip_through_store_layout(value):
    result, _ = via_store(value)
    if isinstance(value, Exception):
        assert type(result) is type(value) and result.args == value.args
    else:
        assert result == value


def test_lambda_and_local_function_round_trip():
    factor = 3
    fn = serialize(lambda x: x * factor)
    assert deserialize(fn)(2) == 6


def test_fast_types_have_no_buffers_or_refs():
    for value in (1, 1.5, "s", True, None):
        s = serialize(value)
        assert not s.buffers and not s.contained and s.flags == 0
        assert not s.is_error
        assert s.data_size() == len(s.inband)


# ---- numpy: out-of-band buffers --------------------------------------------------------------


def test_numpy_array_is_out_of_band():
    array = np.arange(10_000, dtype=np.float64)
    s = serialize(array)
    assert len(s.buffers) == 1
    assert s.buffers[0].nbytes == array.nbytes
    assert len(s.inband) < 1000  # only metadata in band
    assert array.tobytes() not in s.inband
    assert bytes(s.buffers[0]) == array.tobytes()
    assert s.data_size() == len(s.inband) + array.nbytes


def test_numpy_round_trip_inline():
    value = {"a": np.arange(100, dtype=np.int32).reshape(10, 10), "b": np.linspace(0, 1, 7), "n": 5}
    s = serialize(value)
    assert len(s.buffers) == 2
    inline = s.to_inline()
    assert inline[0] == 0 and all(isinstance(b, bytes) for b in inline[2])
    result = deserialize(Serialized.from_inline(protocol.unpack(protocol.pack(inline))))
    assert result["n"] == 5
    for key in ("a", "b"):
        np.testing.assert_array_equal(result[key], value[key])
        assert result[key].dtype == value[key].dtype
        assert result[key].shape == value[key].shape


def test_numpy_round_trip_through_store_is_zero_copy_view():
    a = np.arange(1000, dtype=np.float64)
    b = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
    c = np.zeros(0, dtype=np.uint8)
    result, arena = via_store([a, b, c, "tail"])
    np.testing.assert_array_equal(result[0], a)
    np.testing.assert_array_equal(result[1], b)
    assert result[1].flags.f_contiguous
    assert result[2].shape == (0,)
    assert result[3] == "tail"
    # The array data lives in the arena itself, not in a copy.
    backing = np.frombuffer(arena, dtype=np.uint8)
    assert np.shares_memory(result[0], backing)


def test_non_contiguous_numpy_array_round_trips():
    base = np.arange(20, dtype=np.int64)
    view = base[::3]
    result, _ = via_store(view)
    np.testing.assert_array_equal(result, view)
    np.testing.assert_array_equal(via_inline(view), view)


def test_store_layout_is_64_byte_aligned():
    arrays = [np.arange(n, dtype=np.uint8) for n in (1, 63, 64, 65, 200)]
    s = serialize(arrays)
    assert len(s.buffers) == len(arrays)
    size = s.store_size()
    assert size % ALIGN == 0
    arena = bytearray(size)
    s.write_to(memoryview(arena))
    back = read_from(memoryview(arena))
    assert back.flags == s.flags
    assert bytes(back.inband) == s.inband
    base = np.frombuffer(arena, dtype=np.uint8).ctypes.data
    assert len(back.buffers) == len(s.buffers)
    for original, view in zip(s.buffers, back.buffers, strict=True):
        assert bytes(view) == bytes(original)
        address = np.frombuffer(view, dtype=np.uint8).ctypes.data if view.nbytes else None
        if address is not None:
            assert (address - base) % ALIGN == 0
    # header: u32 length then msgpack [flags, inband_pos, inband_len, [len...], [pos...]]
    header_len = int.from_bytes(arena[0:4], "little")
    flags, inband_pos, inband_len, lens, positions = protocol.unpack(
        bytes(arena[4 : 4 + header_len])
    )
    assert (flags, inband_len, lens) == (0, len(s.inband), [b.nbytes for b in s.buffers])
    assert inband_pos >= 4 + header_len and all(p % ALIGN == 0 for p in positions)


@pytest.mark.parametrize("base", [0, 64, 4032, 8192 + 448])
@pytest.mark.parametrize("source_shift", [0, 16, 40, 4000])
def test_large_buffers_land_page_congruent_to_their_source(base, source_shift):
    """memcpy to an address a few dozen bytes off modulo 4 KiB is ~8x slower (4K aliasing)."""
    backing = np.arange(BIG_BUFFER + 5000, dtype=np.uint8)
    array = backing[source_shift : source_shift + BIG_BUFFER + 7]
    s = serialize([array, np.arange(10, dtype=np.int64)])
    arena = mmap.mmap(-1, base + s.store_size())  # page-aligned, like the shared arena
    window = memoryview(arena)[base : base + s.store_size()]
    s.write_to(window, base)
    back = read_from(window)
    dest = np.frombuffer(back.buffers[0], dtype=np.uint8)
    assert (dest.ctypes.data - array.ctypes.data) % PAGE == 0
    result = deserialize(back)
    np.testing.assert_array_equal(result[0], array)
    np.testing.assert_array_equal(result[1], np.arange(10))
    del result, back, dest, window


def test_store_layout_at_an_offset_inside_a_bigger_arena():
    value = {"x": np.arange(50, dtype=np.float32), "y": "z"}
    s = serialize(value)
    arena = bytearray(4096 + s.store_size() + 128)
    window = memoryview(arena)[4096 : 4096 + s.store_size()]
    s.write_to(window)
    result = deserialize(read_from(window))
    np.testing.assert_array_equal(result["x"], value["x"])
    assert result["y"] == "z"
    assert not any(arena[:4096]) and not any(arena[4096 + s.store_size() :])


def test_write_to_then_read_from_preserves_error_flag():
    s = serialize_error(KeyError("k"))
    arena = bytearray(s.store_size())
    s.write_to(memoryview(arena))
    back = read_from(memoryview(arena))
    assert back.is_error and back.flags == FLAG_ERROR
    result = deserialize(back)
    assert isinstance(result, KeyError) and result.args == ("k",)


def test_from_inline_round_trip_keeps_flags():
    s = serialize_error(ValueError("v"))
    back = Serialized.from_inline(s.to_inline())
    assert back.is_error
    assert isinstance(deserialize(back), ValueError)


# ---- errors ------------------------------------------------------------------------------------


def test_unpicklable_value_raises_serialization_error_naming_type():
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        serialize({"lock": lock}, "argument 'x'")
    message = str(info.value)
    assert "argument 'x'" in message
    assert "dict" in message  # the value's own type
    assert "lock" in message  # ...and the underlying pickling error
    assert isinstance(info.value, TypeError)
    assert info.value.__cause__ is not None


def test_unpicklable_object_named_by_qualified_type():
    class Holder:
        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(SerializationError, match=r"of type .*test_serialization\..*Holder"):
        serialize(Holder())


def test_serialization_error_with_unrepresentable_value():
    class BadRepr:
        def __repr__(self):
            raise RuntimeError("no repr")

        def __reduce__(self):
            raise TypeError("no pickle")

    with pytest.raises(SerializationError, match="<unrepresentable> of type .*BadRepr"):
        serialize(BadRepr())


def test_long_repr_is_truncated_in_error():
    class Long:
        def __repr__(self):
            return "L" * 10_000

        def __reduce__(self):
            raise TypeError("no pickle")

    with pytest.raises(SerializationError) as info:
        serialize(Long())
    assert "L" * 200 + "..." in str(info.value)
    assert len(str(info.value)) < 1000


def test_serialize_error_sets_error_flag():
    s = serialize_error(ValueError("bad"))
    assert s.is_error and s.flags & FLAG_ERROR
    assert not serialize(ValueError("bad")).is_error
    result = deserialize(s)
    assert isinstance(result, ValueError) and str(result) == "bad"


def test_serialize_error_of_unpicklable_exception_falls_back_to_system_error():
    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("cannot pickle me")

    s = serialize_error(Unpicklable("details"))
    assert s.is_error
    result = deserialize(s)
    assert isinstance(result, RaySystemError)
    assert "Unpicklable" in str(result) and "details" in str(result)


# ---- contained ObjectRefs -------------------------------------------------------------------


class FakeWorker:
    def __init__(self):
        self.created = []
        self.deleted = []

    def ref_created(self, object_id, owner):
        self.created.append((object_id, owner))

    def ref_deleted(self, object_id):
        self.deleted.append(object_id)


def test_refs_inside_a_value_are_collected_while_pickling():
    r1 = ObjectRef(b"a" * 28, "owner:1")
    r2 = ObjectRef(b"b" * 28, "owner:2")
    s = serialize({"refs": [r1, r2], "n": 1})
    assert s.contained == [r1, r2]
    assert ser.collecting_refs() is None  # context restored
    assert serialize([1, 2]).contained == []


def test_refs_are_rebuilt_attached_to_the_given_worker():
    ref = ObjectRef(b"c" * 28, "owner:3")
    s = serialize([ref])
    worker = FakeWorker()
    (rebuilt,) = deserialize(s, worker=worker)
    assert rebuilt == ref and rebuilt is not ref
    assert rebuilt.owner_address == "owner:3"
    assert rebuilt._worker is worker
    assert worker.created == [(b"c" * 28, "owner:3")]
    assert ser._context.worker is None  # restored after deserialize
    del rebuilt
    assert worker.deleted == [b"c" * 28]


def test_context_restored_after_failed_serialize():
    ref = ObjectRef(b"d" * 28, "o")
    with pytest.raises(SerializationError):
        serialize([ref, threading.Lock()])
    assert ser.collecting_refs() is None
    assert serialize([ref]).contained == [ref]


def test_nested_serialize_keeps_outer_collection():
    inner_ref = ObjectRef(b"i" * 28, "o")
    before = ObjectRef(b"o" * 28, "o")
    after = ObjectRef(b"p" * 28, "o")

    class SerializesDuringPickle:
        def __reduce__(self):
            nested = serialize([inner_ref])
            assert nested.contained == [inner_ref]
            return (bytes, (b"x",))

    s = serialize([before, SerializesDuringPickle(), after])
    assert s.contained == [before, after]


class PostingWorker(FakeWorker):
    """Records the loop commands deserialize_values posts (as the core worker would run)."""

    def __init__(self):
        super().__init__()
        self.posted = []

    def count_rebuilt(self, container, refs):
        pass

    def post(self, fn, *args):
        self.posted.append((fn.__name__, args))

    post_lazy = post


def test_deserialize_values_counts_refs_per_value_that_holds_them():
    r1, r2 = ObjectRef(b"1" * 28, "o"), ObjectRef(b"2" * 28, "o")
    worker = PostingWorker()
    items = [(b"A", serialize([r1, r2])), (b"B", serialize(5)), (b"C", serialize({"r": r1}))]
    first, five, third = ser.deserialize_values(items, worker)
    assert five == 5 and first == [r1, r2] and third == {"r": r1}
    assert [(name, c, [r.object_id for r in refs]) for name, (c, refs) in worker.posted] == [
        ("count_rebuilt", b"A", [r1.object_id, r2.object_id]),
        ("count_rebuilt", b"C", [r1.object_id])]
    assert worker.created == []  # rebuilt uncounted: the posted command counts them
    assert ser._context.worker is None and ser._context.rebuilt is None


def test_deserialize_values_raises_a_stored_error():
    worker = PostingWorker()
    items = [(b"A", serialize(1)), (b"E", serialize_error(ValueError("boom")))]
    with pytest.raises(ValueError, match="boom"):
        ser.deserialize_values(items, worker)
    assert ser._context.worker is None


def test_pickle_plain_only_takes_small_plain_values():
    assert ser.pickle_plain(7, 100) is not None
    assert deserialize(Serialized(ser.pickle_plain("x", 100))) == "x"
    assert ser.pickle_plain("x" * 200, 100) is None
    assert ser.pickle_plain([1], 100) is None
