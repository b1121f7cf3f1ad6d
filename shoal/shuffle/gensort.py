"""Records in gensort's binary layout, made deterministically from a seed (numpy).

gensort (sortbenchmark.org) writes 100-byte records::

    bytes  0-9   key: the high 10 bytes of a 128-bit random number
    bytes 10-11  0x00 0x11
    bytes 12-43  the 128-bit record number, 32 upper-case hex digits
    bytes 44-47  0x88 0x99 0xAA 0xBB
    bytes 48-95  12 hex digits of the random number's low 48 bits, each 4 times
    bytes 96-99  0xCC 0xDD 0xEE 0xFF

These functions write exactly that layout.  The 128-bit random numbers come
from numpy's PCG64 seeded with ``(seed, first record number)``, not from
gensort's own generator, so the keys differ from gensort's for the same
record numbers (valsort accepts either; nothing here depends on gensort's
stream).  ``make_records(start, count, seed)`` is a pure function of its
arguments: a task that makes it again after a node loss makes the same bytes.
"""

from __future__ import annotations

import numpy as np

from shoal.shuffle.records import KEY_BYTES, RECORD_BYTES

HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
NUMBER_AT = 12  # first byte of the record number's hex digits
FILLER_AT = 48
FILLER_DIGITS = 12
BREAKS = ((10, b"\x00\x11"), (44, b"\x88\x99\xaa\xbb"), (96, b"\xcc\xdd\xee\xff"))


def make_records(start: int, count: int, seed: int) -> np.ndarray:
    """Records ``start .. start + count - 1`` of the data set ``seed``."""
    if start < 0 or count < 0:
        raise ValueError(f"start and count must be >= 0, got {start}, {count}")
    rng = np.random.default_rng([seed, start])
    high, low = rng.integers(0, 1 << 64, size=(2, count), dtype=np.uint64)
    out = np.empty((count, RECORD_BYTES), dtype=np.uint8)
    out[:, :8] = high.astype(">u8").view(np.uint8).reshape(count, 8)
    out[:, 8:KEY_BYTES] = low.astype(">u8").view(np.uint8).reshape(count, 8)[:, :2]
    for at, pattern in BREAKS:
        out[:, at:at + len(pattern)] = np.frombuffer(pattern, dtype=np.uint8)
    numbers = np.arange(start, start + count, dtype=np.uint64)
    out[:, NUMBER_AT:NUMBER_AT + 16] = ord("0")  # the number's high 64 bits are zero
    for digit in range(16):
        nibble = (numbers >> np.uint64(60 - 4 * digit)) & np.uint64(15)
        out[:, NUMBER_AT + 16 + digit] = HEX[nibble]
    for digit in range(FILLER_DIGITS):
        nibble = (low >> np.uint64(44 - 4 * digit)) & np.uint64(15)
        at = FILLER_AT + 4 * digit
        out[:, at:at + 4] = HEX[nibble][:, None]
    return out


def skewed_records(start: int, count: int, seed: int, power: float = 4.0) -> np.ndarray:
    """Like ``make_records`` but with keys crowded towards 0 (prefix = u**power of
    a uniform u), for testing that range partitioning balances skewed keys."""
    out = make_records(start, count, seed)
    rng = np.random.default_rng([seed, start, 1])
    u = rng.random(count) ** power
    prefix = np.minimum(u * 2.0**64, 2.0**64 - 2**12).astype(np.uint64)
    out[:, :8] = prefix.astype(">u8").view(np.uint8).reshape(count, 8)
    return out
