"""A task's error that the program drops unread is logged (Ray's "Unhandled
error"), once; an error that was read, or any error with
SHOAL_IGNORE_UNHANDLED_ERRORS=1, is not.  A canary error dropped last shows that
the earlier ones had their chance to be reported (reports come in order)."""

from __future__ import annotations

import logging
import os
import time

import pytest

import shoal
from shoal.core import context
from tests.utils import open_gate, wait_for_condition, wait_for_file

pytestmark = pytest.mark.timeout(120)


@shoal.remote
def fail(message: str) -> None:
    raise ValueError(message)


@shoal.remote
class Failer:
    def fail(self, message: str) -> None:
        raise KeyError(message)


@pytest.fixture
def reported(shoal_cluster):
    seen: list[BaseException] = []
    tracker = context.current_worker_or_none().unhandled
    before = tracker.handler
    tracker.handler = seen.append
    try:
        yield seen
    finally:
        tracker.handler = before


def messages(reported: list) -> list[str]:
    return [str(e.cause.args[0]) for e in reported]


def drop_canary(reported: list) -> None:
    canary = fail.remote("canary")
    del canary
    wait_for_condition(lambda: "canary" in messages(reported), timeout=30)


def test_errors_dropped_unread_are_reported(reported):
    actor = Failer.remote()
    early = fail.remote("early")
    del early  # dropped before the task ended
    late = actor.fail.remote("late")
    shoal.wait([late], timeout=30)
    del late  # dropped after the error arrived
    wait_for_condition(lambda: len(reported) == 2, timeout=30)
    assert sorted(messages(reported)) == ["early", "late"]
    assert all(isinstance(e, shoal.exceptions.TaskError) for e in reported)
    assert {type(e.cause) for e in reported} == {ValueError, KeyError}


@shoal.remote
def fail_after_gate(message: str, gate: str, done: str) -> None:
    while not os.path.exists(gate):
        time.sleep(0.01)
    open_gate(done)
    raise ValueError(message)


def test_errors_that_were_read_are_not_reported(reported, tmp_path):
    gate, done = str(tmp_path / "gate"), str(tmp_path / "done")
    one, two = fail.remote("one"), fail_after_gate.remote("two", gate, done)
    with pytest.raises(shoal.exceptions.TaskError):
        shoal.get([one, two], timeout=30)  # raises on one: the batch was seen
    del one, two  # two's error arrives after its ref is gone
    open_gate(gate)
    wait_for_file(done, timeout=30)
    drop_canary(reported)
    assert messages(reported) == ["canary"]


@shoal.remote
def fine() -> int:
    return 1


def test_reporting_can_be_switched_off(reported, monkeypatch):
    monkeypatch.setenv("SHOAL_IGNORE_UNHANDLED_ERRORS", "1")
    ref = fail.remote("quiet")
    shoal.wait([ref], timeout=30)
    del ref
    assert shoal.get(fine.remote(), timeout=30) == 1  # the drop is processed by now
    monkeypatch.delenv("SHOAL_IGNORE_UNHANDLED_ERRORS")  # read at each report
    drop_canary(reported)
    assert messages(reported) == ["canary"]


def test_the_default_handler_logs_it(shoal_cluster, caplog):
    with caplog.at_level(logging.ERROR, logger="shoal"):
        ref = fail.remote("logged")
        shoal.wait([ref], timeout=30)
        del ref
        wait_for_condition(lambda: "Unhandled error" in caplog.text, timeout=30)
    assert "logged" in caplog.text
