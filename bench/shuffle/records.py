"""The records every system sorts, and the checks every run passes (plain numpy, so
the same code runs under shoal's, Ray's and Dask's interpreters).

Records are gensort's 100-byte layout, byte for byte what ``shoal sort`` makes
(``shoal.shuffle.gensort.make_records``; a unit test compares the two):

    bytes  0-9   key: the high 10 bytes of a 128-bit random number
    bytes 10-11  00 11
    bytes 12-43  the record number, 32 upper-case hex digits
    bytes 44-47  88 99 AA BB
    bytes 48-95  the random number's low 48 bits as 12 hex digits, each 4 times
    bytes 96-99  CC DD EE FF

The random numbers come from numpy's PCG64 seeded with ``(seed, first record)``,
so an input partition is a pure function of ``(start, count, seed)``.  shoal's
module cannot be imported here (importing it starts from ``shoal/__init__``,
whose dependencies Ray's and Dask's virtualenvs do not have), hence this copy
in a simpler form; speed does not matter, generation is never timed.

Validation reuses ``bench/sort_core.py``: a partition's summary (count, order,
first and last key, an order-independent checksum) and the check of the
summaries in partition order against the input's count and checksum.
"""

from __future__ import annotations

import numpy as np

from bench.sort_core import KEY, MASK64, RECORD, check_parts, checksum, validate_task

__all__ = ["KEY", "MASK64", "RECORD", "check_parts", "checksum", "input_counts",
           "make_records", "summarize"]

_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_BREAKS = ((10, b"\x00\x11"), (44, b"\x88\x99\xaa\xbb"), (96, b"\xcc\xdd\xee\xff"))


def _hex_digits(values: np.ndarray, digits: int) -> np.ndarray:
    """``(n, digits)`` upper-case hex digits of the low ``4 * digits`` bits."""
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    return _HEX[(values[:, None] >> shifts[None, :]) & np.uint64(15)]


def make_records(start: int, count: int, seed: int) -> np.ndarray:
    """Records ``start .. start + count - 1`` of data set ``seed``, ``(count, 100) uint8``."""
    rng = np.random.default_rng([seed, start])
    high, low = rng.integers(0, 1 << 64, size=(2, count), dtype=np.uint64)
    out = np.empty((count, RECORD), dtype=np.uint8)
    for at, pattern in _BREAKS:
        out[:, at:at + len(pattern)] = np.frombuffer(pattern, dtype=np.uint8)
    out[:, :8] = high.astype(">u8").view(np.uint8).reshape(count, 8)
    out[:, 8:KEY] = low.astype(">u8").view(np.uint8).reshape(count, 8)[:, :2]
    out[:, 12:28] = ord("0")  # record numbers stay below 2**64
    numbers = np.arange(start, start + count, dtype=np.uint64)
    out[:, 28:44] = _hex_digits(numbers, 16)
    out[:, 48:96] = np.repeat(_hex_digits(low & np.uint64((1 << 48) - 1), 12), 4, axis=1)
    return out


def input_counts(total_bytes: int, maps: int) -> list[int]:
    """Records per input partition (as ``shoal sort``: the first get one more)."""
    records = total_bytes // RECORD
    return [records // maps + (i < records % maps) for i in range(maps)]


def summarize(records: np.ndarray) -> dict:
    """One output partition's summary for ``check_parts``."""
    return validate_task(records)


def generate(start: int, count: int, seed: int) -> tuple[np.ndarray, int]:
    """An input partition and its checksum (the body of every system's generate task)."""
    records = make_records(start, count, seed)
    return records, checksum(records)


def generate_stored(api, total_bytes: int, maps: int, timeout: float) -> tuple[list, int, int]:
    """Generate the inputs in tasks of ``api`` (``ray`` or ``shoal``, the same calls)
    and wait until all are stored: (input refs, number of records, checksum)."""
    remote_generate = api.remote(num_returns=2)(generate)
    inputs, sums, start = [], [], 0
    for count in input_counts(total_bytes, maps):
        data, total = remote_generate.remote(start, count, 0)
        inputs.append(data)
        sums.append(total)
        start += count
    api.wait(inputs, num_returns=len(inputs), timeout=timeout)
    return inputs, start, sum(api.get(sums, timeout=timeout)) & MASK64
