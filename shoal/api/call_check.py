"""Checking a remote call's arguments against the callee's signature at
``.remote()``, as Ray does, instead of failing in the worker at ``get``.

Remote functions, actor constructors and actor methods each get a
:class:`CallCheck`, made once and cached (per function, per actor class, per
method name in the handle's metadata).  A call must cost next to nothing: one
with positional arguments only, whose count the signature allows, passes on
two integer comparisons.  Whether arguments bind depends only on their shape
(how many positional, which keywords in which order), never on their values,
so a shape that bound once is remembered and passes on one set lookup; a new
shape goes through ``Signature.bind`` (~3 µs), whose error becomes the message.

A signature is kept as :data:`Params`, a tuple of (name, kind, has default):
what binding needs and nothing else (no default values, no annotations), so it
pickles small inside an actor handle and reads short in an error.  A callee
whose signature cannot be read (a builtin, an odd descriptor) is not checked.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

Params = tuple[tuple[str, int, bool], ...]
MAX_SHAPES = 64  # call shapes remembered per callee

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class _Default:
    """Stands for a default value in a signature shown in an error."""

    def __repr__(self) -> str:
        return "..."


_DEFAULT = _Default()


def params_of(signature: inspect.Signature, drop_first: bool = False) -> Params:
    """The :data:`Params` of a signature (without its first parameter: ``self``)."""
    parameters = list(signature.parameters.values())[1 if drop_first else 0:]
    return tuple((p.name, int(p.kind), p.default is not inspect.Parameter.empty)
                 for p in parameters)


def function_params(fn: Any) -> Params | None:
    try:
        return params_of(inspect.signature(fn))
    except (TypeError, ValueError):
        return None


def constructor_params(cls: type) -> Params | None:
    """What ``cls(...)`` accepts (its ``__init__`` / ``__new__`` less ``self``)."""
    return function_params(cls)


def method_params(cls: type, name: str) -> Params | None:
    """What ``instance.name(...)`` accepts, read from the class."""
    try:
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, staticmethod):
            return params_of(inspect.signature(attr.__func__))
        if isinstance(attr, classmethod):
            return params_of(inspect.signature(attr.__func__), drop_first=True)
        if inspect.isfunction(attr):
            return params_of(inspect.signature(attr), drop_first=True)
    except (TypeError, ValueError, AttributeError, IndexError):
        pass
    return None


_PARAMETER_KIND = type(inspect.Parameter.POSITIONAL_ONLY)  # inspect._ParameterKind


class CallCheck:
    """Raises TypeError at ``.remote()`` if the arguments do not bind to ``params``."""

    __slots__ = ("_signature", "_what", "_low", "_high", "_shapes")

    def __init__(self, params: Params, what: str) -> None:
        kinds = [_PARAMETER_KIND(kind) for _n, kind, _d in params]
        self._signature = inspect.Signature([
            inspect.Parameter(name, kind, default=_DEFAULT if has_default
                              else inspect.Parameter.empty)
            for (name, _k, has_default), kind in zip(params, kinds, strict=True)])
        self._what = what
        self._shapes: set[tuple] = set()  # (positional count, *keywords) that bound
        positional = [d for (_n, _k, d), kind in zip(params, kinds, strict=True)
                      if kind in _POSITIONAL]
        self._low = positional.count(False)
        self._high: float = len(positional)
        if inspect.Parameter.VAR_POSITIONAL in kinds:
            self._high = math.inf
        if any(kind is inspect.Parameter.KEYWORD_ONLY and not d
               for (_n, _k, d), kind in zip(params, kinds, strict=True)):
            self._low, self._high = 1, 0  # a required keyword: always bind

    def __call__(self, args: tuple, kwargs: dict) -> None:
        if not kwargs and self._low <= len(args) <= self._high:
            return
        shape = (len(args), *kwargs)
        if shape in self._shapes:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._what}.remote(): {exc} (the signature is "
                            f"{self._what}{self._signature})") from None
        if len(self._shapes) < MAX_SHAPES:
            self._shapes.add(shape)


def make_check(params: Params | None, what: str) -> CallCheck | None:
    return None if params is None else CallCheck(params, what)
