"""The main demo: ``python -m shoal demo`` on a local embedded cluster."""

from __future__ import annotations

import time

import numpy as np

import shoal


@shoal.remote
def square(x: int) -> int:
    return x * x


@shoal.remote
def tree_sum(lo: int, hi: int) -> int:
    """Nested parallelism: split the range and sum the halves in sub-tasks."""
    if hi - lo <= 16:
        return sum(range(lo, hi))
    mid = (lo + hi) // 2
    return sum(shoal.get([tree_sum.remote(lo, mid), tree_sum.remote(mid, hi)]))


@shoal.remote
def column_means(matrix: np.ndarray) -> np.ndarray:
    return matrix.mean(axis=0)


@shoal.remote
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> int:
        self.value += n
        return self.value


def main() -> None:
    t0 = time.perf_counter()
    shoal.init()
    first = shoal.get(square.remote(7))
    t1 = time.perf_counter()
    print(f"init + first task: {t1 - t0:.3f} s (result {first})")
    print("cluster:", {k: v for k, v in shoal.cluster_resources().items() if k == "CPU"})

    refs = [square.remote(i) for i in range(1000)]
    t = time.perf_counter()
    total = sum(shoal.get(refs))
    print(f"1000 tasks: sum of squares = {total} in {time.perf_counter() - t:.3f} s")

    print("nested tasks: sum(range(64)) =", shoal.get(tree_sum.remote(0, 64)))

    matrix = np.random.default_rng(0).random((4096, 1024))  # 32 MiB
    ref = shoal.put(matrix)
    view = shoal.get(ref)
    print(f"32 MiB array: zero-copy read-only view from shared memory: "
          f"{not view.flags.writeable}, same values: {np.array_equal(view, matrix)}")
    print("column means computed remotely match:",
          np.allclose(shoal.get(column_means.remote(ref)), matrix.mean(axis=0)))

    counter = Counter.remote()
    results = shoal.get([counter.add.remote(1) for _ in range(100)])
    print("actor calls run in order:", results[:5], "...", results[-1])

    ready, pending = shoal.wait([square.remote(i) for i in range(10)], num_returns=5)
    print(f"wait: {len(ready)} ready, {len(pending)} not yet")
    shoal.shutdown()
    print(f"done in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
