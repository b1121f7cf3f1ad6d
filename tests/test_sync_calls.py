"""Sync actor calls, whose reply the waiting thread reads off the actor's
connection itself (shoal.rpc.read_lending): every kind of reply, timeouts,
interleaving with unawaited calls, and the values being freed afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import shoal
from shoal.api import runtime
from tests.utils import wait_for_condition

pytestmark = pytest.mark.timeout(60)

BIG = 1 << 20  # stored in shared memory, not inline


@shoal.remote
class Replies:
    def echo(self, x):
        return x

    def big(self, n):
        return b"b" * n

    def raises(self, message):
        raise ValueError(message)

    @shoal.method(num_returns=2)
    def two(self, a, b):
        return a, b

    def holds_ref(self, x):
        return [shoal.put(x)]

    def slow(self, seconds):
        time.sleep(seconds)
        return "slow"

    def pid(self):
        return os.getpid()


def test_every_kind_of_reply_to_a_sync_call(shoal_cluster):
    actor = Replies.remote()
    for i in range(3):  # the read path is taken again and again, in any order
        assert shoal.get(actor.echo.remote(i)) == i
        assert shoal.get(actor.big.remote(BIG)) == b"b" * BIG
        with pytest.raises(ValueError, match=f"boom {i}"):
            shoal.get(actor.raises.remote(f"boom {i}"))
        first, second = actor.two.remote("a", i)
        assert shoal.get(first) == "a" and shoal.get(second) == i
        (inner,) = shoal.get(actor.holds_ref.remote(i))
        assert shoal.get(inner) == i
        assert shoal.get(actor.echo.remote({"k": [i] * 3})) == {"k": [i] * 3}


def test_replies_of_unawaited_calls_arrive_ahead_of_the_awaited_one(shoal_cluster):
    actor = Replies.remote()
    for round_ in range(20):
        early = [actor.echo.remote((round_, j)) for j in range(5)]
        assert shoal.get(actor.echo.remote(("last", round_))) == ("last", round_)
        assert shoal.get(early) == [(round_, j) for j in range(5)]


def test_a_timed_out_sync_get_leaves_the_reply_readable(shoal_cluster):
    actor = Replies.remote()
    ref = actor.slow.remote(1.0)
    start = time.monotonic()
    with pytest.raises(shoal.exceptions.GetTimeoutError):
        shoal.get(ref, timeout=0.2)
    assert time.monotonic() - start < 0.9
    assert shoal.get(ref, timeout=30) == "slow"  # read by the loop this time
    assert shoal.get(actor.echo.remote("after"), timeout=30) == "after"


def test_sync_call_values_are_freed_once_dropped(shoal_cluster):
    actor = Replies.remote()
    store = runtime.ensure_worker().memory_store
    shoal.get(actor.echo.remote(0))
    before = len(store)
    for i in range(300):
        assert shoal.get(actor.echo.remote(i)) == i
    # the loop finishes each call later; then the dropped values go
    wait_for_condition(lambda: len(store) <= before,
                       message=f"{len(store) - before} values of dropped refs stayed")


def test_actor_killed_during_a_sync_get_raises_promptly(shoal_cluster):
    actor = Replies.options(max_restarts=0).remote()
    pid = shoal.get(actor.pid.remote())
    ref = actor.slow.remote(30)
    start = time.monotonic()
    # most likely while the get reads the connection (either way it must raise)
    killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(shoal.exceptions.ActorDiedError):
            shoal.get(ref, timeout=20)
    finally:
        killer.join()
    assert time.monotonic() - start < 10
