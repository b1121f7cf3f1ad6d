"""split's row assignment (shoal/data/locality.py, pure): quotas are met exactly,
every row is used once, and with hints a piece takes its node's blocks first."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.data.locality import Span, assign


def _rows_of(pieces) -> list[list[tuple[int, int]]]:
    return [[(s.block, r) for s in p for r in range(s.start, s.end)] for p in pieces]


def test_without_hints_pieces_are_contiguous_runs():
    assert assign([4, 4, 4], [6, 6]) == [[Span(0, 0, 4), Span(1, 0, 2)],
                                         [Span(1, 2, 4), Span(2, 0, 4)]]


def test_each_piece_takes_its_nodes_blocks_first():
    pieces = assign([4, 4, 4, 4], [8, 8], ["a", "b", "a", "b"], ["b", "a"])
    assert pieces == [[Span(1, 0, 4), Span(3, 0, 4)], [Span(0, 0, 4), Span(2, 0, 4)]]


def test_a_local_block_larger_than_the_quota_is_cut():
    pieces = assign([10, 2], [6, 6], ["a", "b"], ["a", "b"])
    assert pieces == [[Span(0, 0, 6)], [Span(0, 6, 10), Span(1, 0, 2)]]


def test_unknown_nodes_fall_back_to_order():
    assert assign([3, 3], [3, 3], [None, None], [None, "a"]) == [[Span(0, 0, 3)],
                                                                   [Span(1, 0, 3)]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=12), st.integers(1, 5), st.booleans(),
       st.data())
def test_quotas_met_and_rows_used_once(rows, n, equal, data):
    total = sum(rows)
    quotas = [total // n] * n if equal else [total // n + (i < total % n) for i in range(n)]
    nodes = data.draw(st.lists(st.sampled_from(["a", "b", None]), min_size=len(rows),
                               max_size=len(rows)))
    hints = data.draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    pieces = _rows_of(assign(rows, quotas, nodes, hints))
    assert [len(p) for p in pieces] == quotas
    used = [r for p in pieces for r in p]
    assert len(used) == len(set(used))
    for i, node in enumerate(hints):  # local rows: as many as the quota and node allow
        local = sum(1 for b, _ in pieces[i] if node is not None and nodes[b] == node)
        available = sum(rows[b] for b in range(len(rows)) if nodes[b] == node)
        if node is not None and hints.count(node) == 1:
            assert local == min(quotas[i], available)
