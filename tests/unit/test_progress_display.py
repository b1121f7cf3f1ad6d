"""tqdm_ray's wire format and the driver's bar display, without a cluster: a
state line round-trips; in a pipe each bar prints one final line; on a
terminal bars are redrawn in place and other lines scroll above them."""

from __future__ import annotations

import io
import re

import pytest

from shoal.experimental import progress_wire
from shoal.experimental.progress_display import BarDisplay
from shoal.experimental.progress_wire import BarState
from shoal.experimental.tqdm_ray import tqdm

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_state_lines_round_trip_and_other_lines_are_not_states():
    state = BarState(id="b1", desc="load: x", n=3, total=10, unit="rows", closed=True)
    line = progress_wire.encode(state)
    assert "\n" not in line and progress_wire.is_progress_line(line.encode())
    assert progress_wire.decode(line) == state
    assert progress_wire.decode("hello") is None
    assert progress_wire.decode(progress_wire.PREFIX + "{not json") is None
    assert progress_wire.decode(progress_wire.PREFIX + '{"n": 1}') is None  # no id


def test_in_a_pipe_each_bar_prints_its_final_line_once():
    out = io.StringIO()
    display = BarDisplay(out)
    for n in range(0, 11):
        display.apply(BarState("a", "alpha", n, 10))
    display.write("a worker line", out)
    assert out.getvalue() == "a worker line\n"  # nothing drawn while it runs
    display.apply(BarState("a", "alpha", 10, 10, closed=True))
    lines = out.getvalue().splitlines()
    assert lines[0] == "a worker line" and lines[1].startswith("alpha: 100%")
    assert "10/10" in lines[1] and len(lines) == 2 and "\r" not in out.getvalue()
    assert display.open_bars == 0 and [s.n for s in display.finished] == [10]


def test_on_a_terminal_bars_redraw_and_lines_scroll_above_them():
    term = Terminal()
    display = BarDisplay(term)
    display.apply(BarState("a", "alpha", 0, 4))
    display.apply(BarState("b", "beta", 0, 2))
    display.apply(BarState("a", "alpha", 2, 4))
    display.write("printed between", term)
    display.apply(BarState("b", "beta", 2, 2, closed=True))
    display.apply(BarState("a", "alpha", 3, 4))
    screen = term.getvalue()
    pieces = [ANSI.sub("", p) for p in re.split(r"[\r\n]", screen)]
    assert any(p.startswith("alpha:  50%") for p in pieces)  # redrawn as it advanced
    assert "printed between" in pieces  # a whole line of its own
    assert any(p.startswith("beta: 100%") and "2/2" in p for p in pieces)
    assert pieces.index("printed between") < next(
        i for i, p in enumerate(pieces) if p.startswith("alpha:  75%"))
    assert display.open_bars == 1
    display.close_all()  # the driver leaves: the open bar ends as it stands
    assert display.open_bars == 0 and "3/4" in term.getvalue().splitlines()[-1]


def test_tqdm_api_in_the_driver_goes_to_the_display(capsys):
    with tqdm(total=5, desc="local", unit="job") as bar:
        bar.update(2)
        bar.set_description("local-2")
        bar.update(3)
    for _ in tqdm(range(3), desc="iterated"):
        pass
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("local-2: 100%") and "5/5" in line and "job" in line
               for line in err), err
    assert any(line.startswith("iterated: 100%") and "3/3" in line for line in err), err
    with pytest.raises(ValueError, match="total"):
        tqdm(total=-1)
