"""Sync actor calls.  The waiting thread reads its reply off the actor's connection
itself (shoal.rpc.read_lending), and an idle sync actor's main thread reads its
callers' connections (shoal.core.idle_reads): every kind of reply, timeouts,
interleaving with unawaited calls, values freed afterwards, several callers,
and the loop still reading while a method runs (cancel, object requests)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import shoal
from shoal.api import runtime
from tests.utils import open_gate, wait_for_condition

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

    def spin_until_cancelled(self, started):
        # a running actor call is not interrupted by cancel (Ray): it checks the flag
        open(started, "w").close()
        while not shoal.get_runtime_context().is_canceled():
            time.sleep(0.01)
        return "saw the cancel"

    def block_on(self, gate):
        while not os.path.exists(gate):
            time.sleep(0.01)
        return "unblocked"


@shoal.remote
def call_in_order(actor, tag, n):
    """Another process's sync calls to the same actor: each answer is its own."""
    return [shoal.get(actor.echo.remote((tag, i))) for i in range(n)]


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
    store = runtime.ensure_worker().value_table
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


def test_several_processes_calling_one_actor_each_get_their_own_answers(shoal_cluster):
    actor = Replies.remote()
    refs = [call_in_order.remote(actor, tag, 100) for tag in range(3)]
    local = [shoal.get(actor.echo.remote(("driver", i))) for i in range(100)]
    assert local == [("driver", i) for i in range(100)]
    for tag, answers in enumerate(shoal.get(refs, timeout=60)):
        assert answers == [(tag, i) for i in range(100)]


@pytest.mark.parametrize("burst", [0, 3], ids=["after-one-call", "ending-a-burst"])
def test_a_running_method_can_be_cancelled(shoal_cluster, tmp_path, burst):
    """After reading several calls at once the actor's main thread hands the reads
    back lazily (the loop re-arms them within a tick); the cancel must get through
    either way."""
    actor = Replies.remote()
    assert shoal.get(actor.echo.remote(1)) == 1  # the actor's main thread now idles reading
    started = tmp_path / "started"
    earlier = [actor.echo.remote(i) for i in range(burst)]  # sent with the next call
    ref = actor.spin_until_cancelled.remote(str(started))
    wait_for_condition(started.exists, timeout=30)
    shoal.cancel(ref)  # read by the actor's loop: its main thread is in the method
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=10)
    assert shoal.get(earlier, timeout=10) == list(range(burst))
    assert shoal.get(actor.echo.remote(2), timeout=10) == 2


def test_objects_an_actor_owns_are_served_while_its_method_runs(shoal_cluster, tmp_path):
    actor = Replies.remote()
    (inner,) = shoal.get(actor.holds_ref.remote("owned by the actor"))
    gate = tmp_path / "gate"
    blocked = actor.block_on.remote(str(gate))
    try:
        # the value is asked of the actor's process while its main thread is busy
        assert shoal.get(inner, timeout=10) == "owned by the actor"
    finally:
        open_gate(gate)
    assert shoal.get(blocked, timeout=30) == "unblocked"
