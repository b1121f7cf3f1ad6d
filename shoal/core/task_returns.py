"""The values of a task declared with ``num_returns=n`` (n > 1): Ray's rules, pure."""

from __future__ import annotations

import inspect
import itertools
import logging
from typing import Any

log = logging.getLogger("shoal.core")


def split_returns(name: str, result: Any, n: int) -> list:
    """The ``n`` values a task declared with ``num_returns=n`` (n > 1) returned,
    or an error that names the task and says what it must return."""
    what = type(result).__name__
    if inspect.isgenerator(result):
        # Ray's rule: too few values is an error; extra values are dropped (logged),
        # and never drawn past the first extra one, so an endless generator ends too
        values = list(itertools.islice(result, n + 1))
        if len(values) > n:
            log.error("generator task %s declared num_returns=%d but yielded more values; "
                      "the values after the first %d are dropped", name, n, n)
            return values[:n]
        if len(values) == n:
            return values
        raise ValueError(f"generator task {name} declared num_returns={n} but yielded "
                         f"{len(values)} values; it must yield exactly {n} (or use "
                         "num_returns='streaming' for any number)")
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
