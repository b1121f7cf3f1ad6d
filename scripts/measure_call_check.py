"""Cost of binding a call's arguments at ``.remote()`` for docs/design.md
(section 18, "Arguments are bound at .remote()").

    python scripts/measure_call_check.py [--calls 3000] [--rounds 15]

An A/B in one process: rounds alternate the check on and off (off = the cached
check replaced by None, so the rest of the submission path is the same), each
round times ``--calls`` submissions and then drains them.  Prints the median and
best rate of each side, then the cost of the check alone.  Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable

import shoal
from shoal.api.call_check import CallCheck, function_params


@shoal.remote
def f(x, y=1):
    return x


@shoal.remote
class A:
    def m(self, x, y=1):
        return x


def rate(call: Callable[[int], object], calls: int) -> float:
    started = time.perf_counter()
    refs = [call(i) for i in range(calls)]
    elapsed = time.perf_counter() - started
    shoal.get(refs, timeout=120)
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    shoal.init(num_cpus=2)
    actor = A.remote()
    shoal.get([actor.m.remote(0), f.remote(0)], timeout=60)
    f_check, meta = f._call_check, actor._meta
    m_check = meta.call_check("m")
    cases = [
        ("f.remote(i)", lambda i: f.remote(i),
         lambda on: setattr(f, "_call_check", f_check if on else None)),
        ("f.remote(i, y=2)", lambda i: f.remote(i, y=2),
         lambda on: setattr(f, "_call_check", f_check if on else None)),
        ("a.m.remote(i)", lambda i: actor.m.remote(i),
         lambda on: meta._checks.__setitem__("m", m_check if on else None)),
    ]
    for name, call, switch in cases:
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for on in ((True, False) if r % 2 else (False, True)):
                switch(on)
                rates[on].append(rate(call, args.calls))
        switch(True)
        print(f"{name:18s} on: median {statistics.median(rates[True]):>7,.0f}/s best "
              f"{max(rates[True]):>7,.0f}/s | off: median {statistics.median(rates[False]):>7,.0f}"
              f"/s best {max(rates[False]):>7,.0f}/s")
    shoal.shutdown()
    check = CallCheck(function_params(lambda x, y=1: x), "f")
    n = 200_000
    for label, kwargs in (("positional only", {}), ("with a keyword (shape seen)", {"y": 2})):
        cost = timeit.timeit(lambda kwargs=kwargs: check((1,), kwargs), number=n) / n
        print(f"check alone, {label}: {cost * 1e6:.2f} us")


if __name__ == "__main__":
    main()
