"""Unit tests for the error envelope (shoal.core.error_envelope): a task's
exception, pickled as the worker pickles it and read back as ``get`` reads it,
keeps its class, message, attributes, chain and traceback, or becomes an
UnserializableException naming it; never an unrelated error."""

from __future__ import annotations

import errno
import pickle
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.api.object_ref import ObjectRef
from shoal.core import serialization as ser
from shoal.core.error_envelope import blank_exception, dumps, pack_cause, unpack_cause
from shoal.exceptions import (
    ObjectLostError,
    ObjectStoreFullError,
    RaySystemError,
    ShoalError,
    TaskError,
    UnserializableException,
)
from tests.error_shapes import (
    BrokenReduce,
    Halt,
    KeywordOnlyInit,
    MyKeyError,
    MyMemoryError,
    MyOSError,
    PositionalInit,
    WithLock,
)

TRACEBACK = "Traceback (most recent call last):\n  File \"job.py\", line 3, in work\nX: y\n"


def raise_and_capture(exc: BaseException) -> BaseException:
    """``exc`` as a task leaves it: raised, so it has a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def through_get(exc: BaseException, name: str = "work") -> TaskError:
    """What ``get`` raises for a task ``name`` that raised ``exc``: the executor's
    TaskError, through serialize_error and the reading side's deserialize_values."""
    err = TaskError(name, TRACEBACK, raise_and_capture(exc), pid=4242, actor_repr=None)
    data = ser.serialize_error(err)
    back = ser.Serialized.from_inline(data.to_inline())
    with pytest.raises(TaskError) as info:
        ser.deserialize_values([(b"oid", back)], FakeWorker())
    return info.value


class FakeWorker:
    def post(self, *args):
        pass

    post_lazy = post


# ---- shapes of exception classes -------------------------------------------------------


class DefaultedInit(Exception):
    """Python's own pickle rebuilds it as ``cls(*args)``: wrong message, not an error."""

    def __init__(self, code, msg="default"):
        super().__init__(f"{code}: {msg}")


class Slotted(Exception):
    __slots__ = ("code",)

    def __init__(self, code):
        super().__init__("slotted")
        self.code = code


def _explode_on_load(msg):
    raise ValueError(f"cannot rebuild: {msg}")


class FailsOnLoad(Exception):
    def __reduce__(self):
        return _explode_on_load, (str(self),)


class CustomReduce(Exception):
    """A class that says how to rebuild itself gets exactly that."""

    def __init__(self, a, b):
        super().__init__(a, b)
        self.rebuilt_by_reduce = False

    def __reduce__(self):
        return _custom_rebuild, (self.args,)


def _custom_rebuild(args):
    exc = CustomReduce(*args)
    exc.rebuilt_by_reduce = True
    return exc


def test_custom_positional_init_reaches_get_whole():
    err = through_get(PositionalInit(7, "boom"))
    assert isinstance(err, TaskError) and isinstance(err, PositionalInit)
    assert err.function_name == "work" and err.pid == 4242
    assert err.traceback_str == TRACEBACK and TRACEBACK in str(err)
    assert err.args == ("7: boom",) and err.code == 7
    assert type(err.cause) is PositionalInit and err.cause.code == 7
    assert str(err.cause) == "7: boom"


def test_keyword_only_init():
    err = through_get(KeywordOnlyInit(code=3, msg="kw"))
    assert isinstance(err, KeywordOnlyInit) and isinstance(err, ValueError)
    assert err.cause.code == 3 and str(err.cause) == "kw"


def test_defaulted_init_is_not_garbled_by_rerunning_it():
    err = through_get(DefaultedInit(5, "given"))
    assert str(err.cause) == "5: given"


def test_memory_error_subclass():
    err = through_get(MyMemoryError(10))
    assert isinstance(err, MemoryError) and isinstance(err, MyMemoryError)
    assert err.needed == 10 and str(err.cause) == "needed 10 bytes"


def test_object_store_full_error_from_a_worker_is_readable():
    # shoal's own MemoryError: a worker whose return value does not fit raises it
    err = through_get(ObjectStoreFullError("object of 9 bytes is larger than the store"))
    assert isinstance(err, ObjectStoreFullError) and isinstance(err, MemoryError)
    assert "larger than the store" in str(err.cause)


def test_shoal_memory_error_pickles_on_its_own():
    back = pickle.loads(pickle.dumps(ObjectStoreFullError("full")))
    assert type(back) is ObjectStoreFullError and back.args == ("full",)


def test_os_error_subclass_keeps_errno_and_filename():
    err = through_get(MyOSError("/nowhere"))
    assert isinstance(err, OSError) and isinstance(err, MyOSError)
    for exc in (err, err.cause):
        assert exc.errno == errno.EACCES and exc.filename == "/nowhere"
        assert exc.strerror == "not allowed"


def test_key_error_subclass():
    err = through_get(MyKeyError("k", where="cache"))
    assert isinstance(err, KeyError) and err.cause.args == ("k",) and err.where == "cache"


def test_base_exception_subclass():
    err = through_get(Halt("stop", hard=True))
    assert isinstance(err, Halt) and isinstance(err, TaskError)
    assert err.cause.hard is True and str(err.cause) == "stop"


def test_slots_travel():
    err = through_get(Slotted(9))
    assert err.cause.code == 9 and err.code == 9


def test_builtin_exception_fields():
    err = through_get(FileNotFoundError(errno.ENOENT, "gone", "/a"))
    assert isinstance(err, FileNotFoundError) and err.filename == "/a"
    stop = through_get(StopIteration(41))
    assert stop.cause.value == 41
    decode = through_get(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad byte"))
    assert decode.cause.reason == "bad byte" and decode.cause.object == b"\xff"


def test_attribute_error_object_is_dropped_if_it_does_not_pickle():
    exc = AttributeError("no attribute x", name="x", obj=threading.Lock())
    err = through_get(exc)
    assert isinstance(err, AttributeError) and err.cause.name == "x"
    assert err.cause.obj is None


class OwnSetstate(Exception):
    def __init__(self, a, b):
        super().__init__(a + b)
        self.parts = (a, b)

    def __setstate__(self, state):
        self.__dict__.update(state, restored=True)


def test_class_with_own_setstate_gets_its_state_through_it():
    err = through_get(OwnSetstate("x", "y"))
    assert err.cause.restored and err.cause.parts == ("x", "y") and str(err.cause) == "xy"


def test_class_with_own_reduce_is_rebuilt_by_it():
    err = through_get(CustomReduce(1, 2))
    assert isinstance(err, CustomReduce) and err.cause.rebuilt_by_reduce


def test_shoal_error_with_fields_before_message():
    err = through_get(ObjectLostError("abc", "lost it"))
    assert isinstance(err, ObjectLostError) and err.cause.object_id == "abc"


# ---- chains and groups -------------------------------------------------------------------


def test_cause_and_context_survive():
    def fail():
        try:
            raise PositionalInit(1, "inner")
        except PositionalInit as inner:
            try:
                raise KeyError("middle")
            except KeyError:
                raise MyMemoryError(3) from inner

    try:
        fail()
    except MyMemoryError as exc:
        raised = exc
    err = through_get(raised)  # (inside the except, raising would set a new __context__)
    assert isinstance(err, MyMemoryError)
    for exc in (err, err.cause):
        assert type(exc.__cause__) is PositionalInit and exc.__cause__.code == 1
        assert type(exc.__context__) is KeyError and exc.__context__.args == ("middle",)
        assert exc.__suppress_context__
    assert err.cause.__traceback__ is None


def test_unpicklable_context_is_dropped_but_the_exception_survives():
    try:
        try:
            raise WithLock("context")
        except WithLock:
            raise PositionalInit(2, "outer") from None
    except PositionalInit as exc:
        raised = exc
    err = through_get(raised)
    assert isinstance(err, PositionalInit) and err.cause.code == 2
    assert err.cause.__context__ is None


def test_exception_group_of_custom_classes():
    group = ExceptionGroup("several", [PositionalInit(1, "a"), MyOSError("/b"),
                                       ExceptionGroup("nested", [MyKeyError("k", "w")])])
    err = through_get(group)
    assert isinstance(err, ExceptionGroup) and isinstance(err, TaskError)
    assert err.message == "several"
    first, second, nested = err.exceptions
    assert type(first) is PositionalInit and first.code == 1
    assert type(second) is MyOSError and second.filename == "/b"
    assert type(nested.exceptions[0]) is MyKeyError and nested.exceptions[0].where == "w"
    matched, rest = err.cause.split(PositionalInit)
    assert matched.exceptions[0].code == 1


def test_base_exception_group_falls_back_to_a_plain_task_error():
    group = BaseExceptionGroup("mixed", [Halt("h", hard=False), ValueError("v")])
    err = through_get(group)
    # TaskError is an Exception, which a group of BaseExceptions cannot be
    assert type(err) is TaskError and type(err.cause) is BaseExceptionGroup
    assert err.cause.exceptions[0].hard is False


class Final(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code

    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")


def test_final_class_comes_back_as_a_plain_task_error_with_its_cause():
    err = through_get(Final(4, "final"))
    assert type(err) is TaskError and type(err.cause) is Final and err.cause.code == 4
    assert "Final in work()" in str(err)


# ---- what cannot be rebuilt ----------------------------------------------------------------


@pytest.mark.parametrize("exc, why", [
    (WithLock("locked"), "lock"),
    (BrokenReduce("broken"), "reduce exploded"),
    (FailsOnLoad("on load"), "cannot rebuild"),
])
def test_unrebuildable_exception_becomes_unserializable(exc, why):
    err = through_get(exc)
    assert isinstance(err, TaskError) and isinstance(err, UnserializableException)
    assert not isinstance(err, type(exc))
    cause = err.cause
    assert isinstance(cause, UnserializableException)
    assert cause.class_name == f"{type(exc).__module__}.{type(exc).__qualname__}"
    assert cause.message == str(exc)
    assert cause.original_stack_trace == TRACEBACK
    assert why in cause.reason and "where it was raised" in cause.reason
    text = str(err)
    assert type(exc).__qualname__ in text and "UnserializableException" in text
    assert TRACEBACK in text and err.function_name == "work"


def test_class_missing_here_becomes_unserializable(tmp_path, monkeypatch):
    """The blob loads where it was raised, but its class's module is not importable
    where it is read."""
    (tmp_path / "only_on_worker.py").write_text(
        "class Remote(Exception):\n    def __init__(self, a, b):\n"
        "        super().__init__(a + b)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_on_worker

    err = TaskError("work", TRACEBACK, raise_and_capture(only_on_worker.Remote("x", "y")))
    blob = pickle.dumps(err)
    monkeypatch.delitem(sys.modules, "only_on_worker")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    back = pickle.loads(blob).as_instanceof_cause()
    assert isinstance(back, UnserializableException) and isinstance(back, TaskError)
    assert back.cause.class_name == "only_on_worker.Remote"
    assert back.cause.message == "xy" and "could not be unpickled here" in back.cause.reason
    assert "ModuleNotFoundError" in back.cause.reason


def test_unserializable_exception_itself_round_trips():
    exc = UnserializableException("tb", "m.C", "msg", "why")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.original_stack_trace, back.class_name, back.message, back.reason) == (
        "tb", "m.C", "msg", "why")
    assert isinstance(back, ShoalError)


def test_broken_str_does_not_break_the_envelope():
    class BadStr(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    carried = pack_cause(BadStr())
    assert "str() of BadStr raised RuntimeError" in carried.message
    assert carried.blob is not None


def test_error_value_that_does_not_load_is_a_system_error_not_the_raw_failure():
    data = ser.serialize_error(ValueError("x"))
    data.inband = data.inband[:-3]  # truncated
    with pytest.raises(RaySystemError, match="could not deserialize an error"):
        ser.deserialize_values([(b"oid", data)], FakeWorker())


# ---- the trial load and ObjectRefs -----------------------------------------------------------


class CountingWorker:
    def __init__(self):
        self.created = []

    def ref_created(self, object_id, owner):
        self.created.append(object_id)

    def ref_deleted(self, object_id):
        pass


def test_trial_load_counts_no_refs(monkeypatch):
    worker = CountingWorker()
    from shoal.core import context

    monkeypatch.setattr(context, "current_worker_or_none", lambda: worker)
    exc = PositionalInit(1, "with ref")
    exc.ref = ObjectRef(b"r" * 20, "owner:1")
    refs: list = []
    ser._context.refs = refs
    try:
        carried = pack_cause(exc)
    finally:
        ser._context.refs = None
    assert carried.blob is not None
    assert [r.object_id for r in refs] == [b"r" * 20]  # contained in the error value, once
    assert worker.created == []  # the trial load made no counted ref
    back = unpack_cause(carried, "")
    assert back.ref.object_id == b"r" * 20


def test_blank_exception_never_runs_init():
    class Loud(MemoryError):
        def __init__(self, *args):
            raise AssertionError("ran __init__")

    exc = blank_exception(Loud, ("a",))
    assert type(exc) is Loud and exc.args == ("a",)


# ---- property: any shape of class, any attributes --------------------------------------------

BASES = [Exception, ValueError, KeyError, LookupError, RuntimeError, MemoryError, OSError,
         FileNotFoundError, ArithmeticError, BaseException, ShoalError]
PLAIN = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                  st.binary(max_size=20), st.lists(st.integers(), max_size=3))
ATTR_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in ("args", "cause", "pid", "errno", "strerror", "filename",
                        "filename2", "characters_written"))


def _positional(self, code, msg):
    type(self).__mro__[1].__init__(self, f"{code}: {msg}")


def _keyword_only(self, *, code, msg):
    type(self).__mro__[1].__init__(self, msg)


def _transforming(self, *args):
    type(self).__mro__[1].__init__(self, *[f"<{a}>" for a in args])


INITS = {"positional": _positional, "keyword_only": _keyword_only,
         "transforming": _transforming, "inherited": None}


@st.composite
def exceptions(draw):
    base = draw(st.sampled_from(BASES))
    init_name = draw(st.sampled_from(sorted(INITS)))
    body = {} if INITS[init_name] is None else {"__init__": INITS[init_name]}
    cls = type(f"Gen{base.__name__}{init_name.title()}", (base,), body)
    code, msg = draw(st.integers()), draw(st.text(max_size=30))
    if init_name == "keyword_only":
        exc = cls(code=code, msg=msg)
    elif init_name == "positional":
        exc = cls(code, msg)
    else:
        exc = cls(msg, code)
    for name, value in draw(st.dictionaries(ATTR_NAMES, PLAIN, max_size=3)).items():
        setattr(exc, name, value)
    if draw(st.booleans()):
        exc.__cause__ = PositionalInit(draw(st.integers()), "cause")
    return exc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exceptions())
def test_property_any_class_comes_back_whole(exc):
    err = through_get(exc)
    assert isinstance(err, TaskError) and isinstance(err, type(exc))
    cause = err.cause
    assert type(cause) is type(exc)
    assert cause.args == exc.args and str(cause) == str(exc)
    assert vars(cause) == vars(exc)
    if isinstance(exc, OSError):
        assert (cause.errno, cause.strerror) == (exc.errno, exc.strerror)
    if exc.__cause__ is not None:
        assert type(err.__cause__) is PositionalInit
        assert err.__cause__.args == exc.__cause__.args
    assert err.traceback_str == TRACEBACK and err.function_name == "work"


UNPICKLABLE = st.sampled_from([threading.Lock, lambda: (x for x in ()), threading.Event])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exceptions(), ATTR_NAMES, UNPICKLABLE)
def test_property_unpicklable_attribute_gives_unserializable_naming_it(exc, name, make):
    setattr(exc, name, make())
    err = through_get(exc)
    assert isinstance(err, TaskError) and isinstance(err.cause, UnserializableException)
    assert err.cause.class_name.endswith(type(exc).__qualname__)
    assert err.cause.message == str(exc)
    assert err.cause.original_stack_trace == TRACEBACK


def test_dumps_of_an_exception_loads_without_shoal_context():
    blob = dumps(PositionalInit(1, "plain pickle"))
    back = pickle.loads(blob)
    assert type(back) is PositionalInit and back.code == 1
