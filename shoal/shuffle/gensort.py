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

NUMBER_AT = 12  # first byte of the record number's hex digits
FILLER_AT = 48
FILLER_DIGITS = 12
BREAKS = ((10, b"\x00\x11"), (44, b"\x88\x99\xaa\xbb"), (96, b"\xcc\xdd\xee\xff"))
_U = np.uint64


def _template() -> np.ndarray:
    """The bytes every record shares: the breaks and the record number's high digits."""
    row = np.zeros(RECORD_BYTES, dtype=np.uint8)
    for at, pattern in BREAKS:
        row[at:at + len(pattern)] = np.frombuffer(pattern, dtype=np.uint8)
    row[NUMBER_AT:NUMBER_AT + 16] = ord("0")  # the number's high 64 bits are zero
    return row


TEMPLATE = _template()


def _be_bytes(values: np.ndarray) -> np.ndarray:
    """``uint64`` values as ``(n, 8)`` big-endian bytes."""
    return values.astype(">u8").view(np.uint8).reshape(len(values), 8)


def _hex8(values: np.ndarray) -> np.ndarray:
    """The low 32 bits of each ``uint64`` as 8 upper-case hex digits, one per byte,
    packed in a ``uint64`` whose big-endian bytes read in order (all in registers:
    the nibbles are spread one per byte, then offset to '0'..'9' or 'A'..'F')."""
    y = values & _U(0xFFFFFFFF)
    y = (y | (y << _U(16))) & _U(0x0000FFFF0000FFFF)
    y = (y | (y << _U(8))) & _U(0x00FF00FF00FF00FF)
    y = (y | (y << _U(4))) & _U(0x0F0F0F0F0F0F0F0F)  # nibble k in byte k
    letters = ((y + _U(0x0606060606060606)) >> _U(4)) & _U(0x0101010101010101)
    return y + _U(0x3030303030303030) + letters * _U(7)


def _hex_columns(words: list[np.ndarray]) -> np.ndarray:
    """``(n, 8 * len(words))`` bytes: the words' hex digits side by side."""
    out = np.empty((len(words[0]), len(words)), dtype=">u8")
    for i, word in enumerate(words):
        out[:, i] = word
    return out.view(np.uint8).reshape(len(words[0]), 8 * len(words))


def make_records(start: int, count: int, seed: int) -> np.ndarray:
    """Records ``start .. start + count - 1`` of the data set ``seed``."""
    if start < 0 or count < 0:
        raise ValueError(f"start and count must be >= 0, got {start}, {count}")
    rng = np.random.default_rng([seed, start])
    high, low = rng.integers(0, 1 << 64, size=(2, count), dtype=np.uint64)
    out = np.empty((count, RECORD_BYTES), dtype=np.uint8)
    out[:] = TEMPLATE
    out[:, :8] = _be_bytes(high)
    out[:, 8:KEY_BYTES] = _be_bytes(low)[:, :2]
    numbers = np.arange(start, start + count, dtype=np.uint64)
    out[:, NUMBER_AT + 16:NUMBER_AT + 32] = _hex_columns(
        [_hex8(numbers >> _U(32)), _hex8(numbers)])
    # filler: the 12 hex digits of low's 48 low bits, each written 4 times
    digits = _hex_columns([_hex8(low >> _U(16)), _hex8(low) << _U(32)])[:, :FILLER_DIGITS]
    fours = digits.astype(np.uint32) * np.uint32(0x01010101)
    out[:, FILLER_AT:FILLER_AT + 4 * FILLER_DIGITS] = fours.view(np.uint8)
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
