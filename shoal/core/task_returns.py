"""The values of a task declared with ``num_returns=n`` (n > 1), and the cap on a
generator task's items: Ray's rules, pure."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger("shoal.core")

# Ray's cap on the items of one generator task (its RAY_max_num_generator_returns),
# read once per worker: a runaway generator fails instead of filling the store.
MAX_GENERATOR_RETURNS_VARIABLES = ("SHOAL_MAX_NUM_GENERATOR_RETURNS",
                                   "RAY_max_num_generator_returns")
DEFAULT_MAX_GENERATOR_RETURNS = 100_000_000


def max_generator_returns(environ: dict | None = None) -> int:
    env = os.environ if environ is None else environ
    for name in MAX_GENERATOR_RETURNS_VARIABLES:
        value = env.get(name)
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                log.warning("%s=%r is not an integer; ignored", name, value)
    return DEFAULT_MAX_GENERATOR_RETURNS


def check_generator_count(name: str, count: int, limit: int) -> None:
    """Item ``count`` (1...) of generator task ``name`` is about to be sent."""
    if count > limit:
        raise ValueError(
            f"generator task {name} yielded more than {limit} values, the most one "
            "generator task may return (SHOAL_MAX_NUM_GENERATOR_RETURNS or Ray's "
            "RAY_max_num_generator_returns)")


def split_returns(name: str, result: Any, n: int) -> list:
    """The ``n`` values a task declared with ``num_returns=n`` (n > 1) returned
    (not a generator: see ``pack_yielded``), or an error that names the task and
    says what it must return."""
    what = type(result).__name__
    if not isinstance(result, (str, bytes, bytearray, dict)):
        try:
            values = list(result)
        except TypeError:
            pass
        else:
            if len(values) == n:
                return values
            what = f"{what} of {len(values)} value{'s' if len(values) != 1 else ''}"
            raise ValueError(f"task {name} declared num_returns={n} but returned a {what}; "
                             f"it must return an iterable of {n} values")
    raise TypeError(f"task {name} declared num_returns={n} but returned {what}; it must "
                    f"return an iterable of {n} values (a tuple or a list)")


async def drain_async_generator(agen: Any, passthrough: tuple) -> Any:
    """An async generator method's items (num_returns=N) as a plain iterator for
    the packer; an error it raised comes after the items it yielded (exceptions
    in ``passthrough`` end the call instead)."""
    items = []
    try:
        async for item in agen:
            items.append(item)
    except passthrough:
        raise
    except BaseException as exc:
        return _then_raise(items, exc)
    return iter(items)


def _then_raise(items: list, exc: BaseException):
    yield from items
    raise exc


def pack_yielded(name: str, gen: Any, n: int, pack: Callable[[int, Any], None],
                 passthrough: tuple) -> BaseException | None:
    """Hand the values of generator task ``name`` (declared ``num_returns=n``) to
    ``pack(index, value)`` as each is yielded: as in Ray, the task holds one value
    at a time (its documented way to keep a task's heap small), so a shuffle map
    making n large blocks never holds them all.

    Returns the error the generator raised after its values, if it did (Ray:
    what it yielded stays; the other returns are the error).  Too few values
    raises ValueError; values past the n-th are dropped (logged) and never drawn
    past the first extra one, so an endless generator ends too.  Exceptions in
    ``passthrough`` end the call."""
    count = 0
    while True:
        try:
            value = next(gen)
        except StopIteration:
            break
        except passthrough:
            raise
        except BaseException as exc:
            return exc
        if count == n:
            log.error("generator task %s declared num_returns=%d but yielded more values; "
                      "the values after the first %d are dropped", name, n, n)
            break
        count += 1
        pack(count, value)
        del value
    if count < n:
        raise ValueError(f"generator task {name} declared num_returns={n} but yielded "
                         f"{count} values; it must yield exactly {n} (or use "
                         "num_returns='streaming' for any number)")
    return None
