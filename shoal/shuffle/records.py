"""Gensort records as numpy arrays: keys, the sort kernel, checksums (pure numpy).

A batch of records is a C-contiguous ``(n, 100) uint8`` array; the first 10
bytes of a row are its key, compared as unsigned big-endian bytes.  A key is
handled as two numbers: its *prefix* (bytes 0-7 as a big-endian ``uint64``)
and its *tail* (bytes 8-9 as a big-endian ``uint16``); comparing
``(prefix, tail)`` pairs compares keys.

Sorting (``sort_order``) avoids a comparison sort of 10-byte keys, the
slowest way numpy offers: the prefixes, reduced to the top ``log2(n) + 8``
bits of their actual span (rounded up to 16: 32 bits for up to 16 M rows),
are ordered by least-significant-digit radix passes (numpy's stable sort of
``uint16`` is a radix sort, ~10 ns a row), then rows whose digits tie, a few
hundred per million for random keys, are re-sorted exactly by the full key.  Measured figures are in
docs/design.md ("Exoshuffle").
"""

from __future__ import annotations

import numpy as np

RECORD_BYTES = 100
KEY_BYTES = 10
PREFIX_BYTES = 8
RADIX_BITS = 16
SORT_BITS = 48  # at most this many prefix bits are radix-sorted; ties are settled after
TIE_MARGIN_BITS = 8  # digits get log2(n) + 8 bits (rounded up to 16): ~n/512 rows tie
SMALL_SORT = 2048  # below this many rows a lexsort is as fast and simpler
CHECKSUM_CHUNK = 1 << 15  # rows hashed at once (a temporary of 256 KiB)
MASK64 = (1 << 64) - 1

# per-word weights of the record hash: odd 64-bit constants
_WEIGHTS = (np.arange(1, RECORD_BYTES // 4 + 1, dtype=np.uint64)
            * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


def check_records(records: object, what: str = "records") -> np.ndarray:
    """``records`` as a ``(n, 100) uint8`` array, or a TypeError/ValueError naming
    what is wrong with it."""
    if not isinstance(records, np.ndarray):
        raise TypeError(f"{what} must be a numpy array of gensort records, "
                        f"got {type(records).__name__}")
    if records.dtype != np.uint8 or records.ndim != 2 or records.shape[1] != RECORD_BYTES:
        raise ValueError(f"{what} must have shape (n, {RECORD_BYTES}) and dtype uint8 "
                         f"(gensort records), got shape {records.shape} dtype {records.dtype}")
    return np.ascontiguousarray(records)


def _column(records: np.ndarray, dtype: str, offset: int) -> np.ndarray:
    """A strided view of one big-endian field of every row (no copy)."""
    if len(records) == 0:
        return np.zeros(0, dtype=dtype)
    return np.ndarray((len(records),), dtype=dtype, buffer=records,
                      offset=offset, strides=(records.strides[0],))


def key_prefix(records: np.ndarray) -> np.ndarray:
    """Bytes 0-7 of every key as native ``uint64`` (one strided, byte-swapping pass)."""
    return _column(records, ">u8", 0).astype(np.uint64)


def key_tail(records: np.ndarray) -> np.ndarray:
    """Bytes 8-9 of every key as native ``uint16``."""
    return _column(records, ">u2", PREFIX_BYTES).astype(np.uint16)


def sort_order(prefix: np.ndarray, tail_of: object) -> np.ndarray:
    """The permutation that sorts rows by key.  ``tail_of(rows)`` returns the tails
    of the given row numbers; it is called only for rows whose radix digits tie,
    which for random keys are a few dozen in a million."""
    n = len(prefix)
    if n < SMALL_SORT:
        rows = np.arange(n)
        return np.lexsort((tail_of(rows), prefix)) if n else rows
    low = prefix.min()
    span_bits = int(prefix.max() - low).bit_length()
    bits = min(SORT_BITS, span_bits, _round_up(n.bit_length() + TIE_MARGIN_BITS))
    digits = (prefix - low) >> np.uint64(span_bits - bits)
    if bits <= 32:
        digits = digits.astype(np.uint32)
    order = _radix_order(digits, bits)
    return _settle_ties(order, prefix, digits, tail_of)


def _round_up(bits: int) -> int:
    return -(-bits // RADIX_BITS) * RADIX_BITS


def _radix_order(digits: np.ndarray, bits: int) -> np.ndarray:
    """Stable LSD radix argsort of ``digits`` (< 2**bits), 16 bits a pass."""
    mask = digits.dtype.type((1 << RADIX_BITS) - 1)
    columns = [((digits >> digits.dtype.type(shift)) & mask).astype(np.uint16)
               for shift in range(0, max(bits, 1), RADIX_BITS)]
    order = np.argsort(columns[0], kind="stable")
    for column in columns[1:]:
        order = order[np.argsort(column[order], kind="stable")]
    return order


def _settle_ties(order: np.ndarray, prefix: np.ndarray, digits: np.ndarray,
                 tail_of: object) -> np.ndarray:
    """Re-sort exactly the runs of rows whose radix digits are equal (their order
    came from the input, not from the key)."""
    ordered = digits[order]
    tied_after = np.flatnonzero(ordered[1:] == ordered[:-1])  # i ties with i + 1
    if not len(tied_after):
        return order
    spots = np.union1d(tied_after, tied_after + 1)  # positions in a tie run, sorted
    starts = ~np.isin(spots - 1, tied_after)  # tied with no predecessor: a run begins
    run = np.cumsum(starts)
    rows = order[spots]
    fixed = np.lexsort((tail_of(rows), prefix[rows], run))
    order[spots] = rows[fixed]
    return order


def sort_records(records: np.ndarray) -> np.ndarray:
    """A new array with ``records``' rows ordered by key."""
    order = sort_order(key_prefix(records), lambda rows: key_tail(records[rows]))
    out = np.empty_like(records)
    np.take(records, order, axis=0, out=out, mode="clip")  # 'clip': no bounds pass
    return out


def concat(blocks: list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
    """One array of all the rows of ``blocks`` (a single block is returned as is)."""
    blocks = [b for b in blocks if len(b)] or list(blocks[:1])
    if not blocks:
        return np.zeros((0, RECORD_BYTES), dtype=np.uint8)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def checksum(records: np.ndarray) -> int:
    """A 64-bit sum of one hash per record: independent of the records' order,
    changed by a lost, repeated or altered record (valsort's idea; not its CRC)."""
    total = 0
    words = records.view(np.uint32)  # (n, 25): rows are 4-byte aligned in length
    for start in range(0, len(records), CHECKSUM_CHUNK):
        h = words[start:start + CHECKSUM_CHUNK] @ _WEIGHTS
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
        total = (total + int(h.sum(dtype=np.uint64))) & MASK64
    return total


def keys_ordered(records: np.ndarray) -> bool:
    """True if every key is <= the next one."""
    if len(records) < 2:
        return True
    prefix = key_prefix(records)
    up = prefix[1:] > prefix[:-1]
    if up.all():
        return True
    same = np.flatnonzero(prefix[1:] == prefix[:-1])
    if len(same) + int(up.sum()) != len(records) - 1:
        return False  # some prefix goes down
    tail = key_tail(records)
    return bool((tail[same + 1] >= tail[same]).all())


def duplicate_keys(records: np.ndarray) -> int:
    """Rows of sorted ``records`` whose key equals the previous row's."""
    if len(records) < 2:
        return 0
    prefix = key_prefix(records)
    same = np.flatnonzero(prefix[1:] == prefix[:-1])
    if not len(same):
        return 0
    tail = key_tail(records)
    return int((tail[same + 1] == tail[same]).sum())


def key_bytes(records: np.ndarray, row: int) -> bytes:
    return bytes(records[row, :KEY_BYTES])
