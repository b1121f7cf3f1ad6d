"""``inspect_serializability``: find what in an object cannot be pickled.

Sending a function or an object to a task pickles it (cloudpickle); when that
fails the error names only the innermost type.  This walks the object (a
function's globals and closure, an object's attributes) to ``depth`` levels and
reports each member that fails on its own, so the culprit is named.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import cloudpickle


@dataclass(frozen=True)
class FailureTuple:
    """One member that failed to pickle: the object, its name, and its parent's name."""

    obj: Any
    name: str
    parent: Any

    def __hash__(self) -> int:
        return hash((self.name, id(self.obj)))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FailureTuple) and other.name == self.name
                and other.obj is self.obj)

    def __repr__(self) -> str:
        return f"FailureTuple(name={self.name!r}, obj={self.obj!r}, parent={self.parent!r})"


def _pickles(obj: Any) -> bool:
    try:
        cloudpickle.dumps(obj)
        return True
    except Exception:
        return False


def _members(obj: Any) -> list[tuple[str, Any]]:
    """What pickling ``obj`` also pickles: a function's referenced globals and
    closure cells, else an object's attributes."""
    if inspect.isfunction(obj):
        out = []
        if obj.__closure__:
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__, strict=False):
                try:
                    out.append((name, cell.cell_contents))
                except ValueError:  # an empty cell
                    pass
        for name in obj.__code__.co_names:
            if name in obj.__globals__:
                out.append((name, obj.__globals__[name]))
        return out
    if inspect.ismethod(obj):
        return [("__self__", obj.__self__), ("__func__", obj.__func__)]
    state = getattr(obj, "__dict__", None)
    return list(state.items()) if isinstance(state, dict) else []


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: TextIO | None = None
                            ) -> tuple[bool, set[FailureTuple]]:
    """Whether ``base_obj`` pickles, and the innermost members (within ``depth``
    levels) that do not; a report is printed to ``print_file`` (stdout)."""
    out = print_file if print_file is not None else sys.stdout
    name = name or getattr(base_obj, "__name__", None) or repr(base_obj)[:60]
    failures: set[FailureTuple] = set()
    ok = _walk(base_obj, name, None, depth, failures, out, 0, set())
    if ok:
        print(f"{name!s} is serializable", file=out)
    else:
        print(f"{name!s} is not serializable; the members that fail:", file=out)
        for failure in sorted(failures, key=lambda f: f.name):
            print(f"    {failure.name}: {type(failure.obj).__name__} "
                  f"(in {failure.parent})", file=out)
    return ok, failures


def _walk(obj: Any, name: str, parent: Any, depth: int, failures: set, out: TextIO,
          level: int, seen: set) -> bool:
    if _pickles(obj):
        return True
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    before = len(failures)
    if depth > 0:
        for member_name, member in _members(obj):
            _walk(member, member_name, name, depth - 1, failures, out, level + 1, seen)
    if len(failures) == before:  # none of its members fails on its own: it is the culprit
        failures.add(FailureTuple(obj, name, parent))
    return False


__all__ = ["FailureTuple", "inspect_serializability"]
