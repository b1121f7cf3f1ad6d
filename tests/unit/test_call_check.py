"""Unit tests for shoal.api.call_check: a remote call's arguments are bound to
the callee's signature at ``.remote()``, and the common case costs no bind."""

from __future__ import annotations

import pickle

import pytest

from shoal.api.call_check import (
    CallCheck,
    constructor_params,
    function_params,
    make_check,
    method_params,
)


def f(x, y=1, *, z=2):
    return x


def varargs(a, *rest, **named):
    return a


def needs_keyword(a, *, key):
    return a


class Thing:
    def __init__(self, start, step=1):
        self.start = start

    def add(self, n):
        return n

    @staticmethod
    def static(a, b):
        return a

    @classmethod
    def klass(cls, a):
        return a

    async def later(self, q=None):
        return q


def check_for(fn, name="f"):
    return CallCheck(function_params(fn), name)


@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}), ((1, 2), {}), ((), {"x": 1}), ((1,), {"z": 3}), ((1,), {"y": 2, "z": 3}),
])
def test_arguments_that_bind_pass(args, kwargs):
    check_for(f)(args, kwargs)


@pytest.mark.parametrize("args, kwargs, error", [
    ((), {}, "missing a required argument: 'x'"),
    ((1, 2, 3), {}, "too many positional arguments"),
    ((1,), {"w": 3}, "got an unexpected keyword argument 'w'"),
    ((1,), {"x": 1}, "multiple values for argument 'x'"),
])
def test_arguments_that_do_not_bind_name_the_function_and_the_error(args, kwargs, error):
    with pytest.raises(TypeError) as info:
        check_for(f)(args, kwargs)
    text = str(info.value)
    assert text.startswith(f"f.remote(): {error}")
    assert "(the signature is f(x, y=..., *, z=...))" in text


def test_a_shape_that_bound_is_remembered_and_one_that_failed_is_not():
    check = check_for(f)
    check((1,), {"y": 2})
    assert (1, "y") in check._shapes
    for _ in range(2):  # a failing shape fails every time
        with pytest.raises(TypeError):
            check((1,), {"w": 2})
    assert (1, "w") not in check._shapes


def test_varargs_and_required_keywords():
    check = check_for(varargs, "varargs")
    check((1, 2, 3, 4), {"anything": 1})
    with pytest.raises(TypeError, match="missing a required argument: 'a'"):
        check((), {})
    required = check_for(needs_keyword, "needs_keyword")
    with pytest.raises(TypeError, match="missing a required argument: 'key'"):
        required((1,), {})  # positional count is fine: the keyword is not
    required((1,), {"key": 2})


def test_constructor_and_method_params_leave_out_self_and_cls():
    init = CallCheck(constructor_params(Thing), "Thing")
    init((1,), {})
    with pytest.raises(TypeError, match=r"Thing.remote\(\): missing .*'start'.*Thing\(start, "
                                        r"step=...\)"):
        init((), {})
    for name, good, bad in [("add", (1,), ()), ("static", (1, 2), (1,)),
                            ("klass", (1,), (1, 2)), ("later", (), (1, 2))]:
        check = CallCheck(method_params(Thing, name), f"Thing.{name}")
        check(good, {})
        with pytest.raises(TypeError, match=rf"^Thing\.{name}\.remote\(\): "):
            check(bad, {})


def test_callees_without_a_readable_signature_are_not_checked():
    assert make_check(None, "x") is None
    assert method_params(Thing, "__dict__") is None  # not a function
    assert method_params(Thing, "missing") is None


def test_params_are_small_and_picklable():
    params = method_params(Thing, "add")
    assert params == (("n", 1, False),)
    assert pickle.loads(pickle.dumps(params)) == params
