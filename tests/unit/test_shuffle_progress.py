"""The shuffle's progress bars: on for a long shuffle in a terminal by default."""

from __future__ import annotations

import io
import sys

import pytest

from shoal.shuffle import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "maps", "reduces", "shown"), [
    (True, 32, 32, True),    # long, in a terminal
    (True, 8, 8, False),     # short
    (False, 32, 32, False),  # not a terminal (a pipe, a file, a worker)
])
def test_bars_by_default_only_for_a_long_shuffle_in_a_terminal(monkeypatch, tty, maps,
                                                                reduces, shown):
    monkeypatch.setattr(sys, "stdout", _Terminal() if tty else io.StringIO())
    bars = progress.Progress("sort", maps, None, reduces)
    try:
        assert bool(bars.bars) is shown
    finally:
        bars.close()


def test_explicit_choice_wins(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    bars = progress.Progress("sort", 2, 0, 2, enabled=True)
    try:
        assert set(bars.bars) == {"maps", "reduces"}
    finally:
        bars.close()
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert not progress.Progress("sort", 100, 10, 100, enabled=False).bars
