"""A non-detached actor ends when the last strong handle to it, in any process, is gone
(shoal/core/actor_scope.py); detached actors and weak handles are not counted."""

from __future__ import annotations

import os

import pytest

import shoal
from tests.utils import pid_gone, wait_for_condition

GET_TIMEOUT = 60


@shoal.remote
class Holder:
    def pid(self):
        return os.getpid()

    def take_self(self, handle):
        pass

    def keep_current(self):
        self.me = shoal.get_runtime_context().current_actor


@shoal.remote
class Signal:
    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def send(self):
        self.event.set()


@shoal.remote
def call_later(actor, signal):
    shoal.get(signal.wait.remote(), timeout=GET_TIMEOUT)
    return shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)


def test_actor_exits_after_its_last_handle_is_deleted(shoal_cluster):
    actor = Holder.remote()
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    del actor
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_a_handle_held_by_a_task_keeps_the_actor_alive(shoal_cluster):
    signal = Signal.remote()
    actor = Holder.remote()
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    ref = call_later.remote(actor, signal)
    del actor
    # the task's copy of the handle is the last one: the actor is still there for it
    assert not pid_gone(pid)
    shoal.get(signal.send.remote(), timeout=GET_TIMEOUT)
    assert shoal.get(ref, timeout=GET_TIMEOUT) == pid
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_a_detached_actor_survives_its_handles(shoal_cluster):
    actor = Holder.options(name="scope-detached", lifetime="detached").remote()
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    del actor
    again = shoal.get_actor("scope-detached")
    try:
        # a later call reaches the same process: it was never terminated
        assert shoal.get(again.pid.remote(), timeout=GET_TIMEOUT) == pid
    finally:
        shoal.kill(again)


def test_a_named_actor_dies_with_its_last_handle_and_frees_its_name(shoal_cluster):
    actor = Holder.options(name="scope-named").remote()
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    looked_up = shoal.get_actor("scope-named")  # weak, as Ray's get_actor handles
    assert shoal.get(looked_up.pid.remote(), timeout=GET_TIMEOUT) == pid
    del actor
    wait_for_condition(lambda: pid_gone(pid), timeout=30)

    def name_freed() -> bool:
        try:
            shoal.get_actor("scope-named")
        except ValueError:
            return True
        return False

    wait_for_condition(name_freed, timeout=30)
    fresh = Holder.options(name="scope-named").remote()  # the name can be used again
    assert shoal.get(fresh.pid.remote(), timeout=GET_TIMEOUT) != pid


def test_an_actors_handles_to_itself_do_not_keep_it_alive(shoal_cluster):
    actor = Holder.remote()
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    for _ in range(3):
        shoal.get(actor.take_self.remote(actor), timeout=GET_TIMEOUT)
    shoal.get(actor.keep_current.remote(), timeout=GET_TIMEOUT)
    del actor
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_pending_calls_finish_before_the_actor_ends(shoal_cluster):
    signal = Signal.remote()

    @shoal.remote
    class Waiter:
        def wait_then_pid(self, signal):
            shoal.get(signal.wait.remote(), timeout=GET_TIMEOUT)
            return os.getpid()

    actor = Waiter.remote()
    ref = actor.wait_then_pid.remote(signal)
    del actor
    shoal.get(signal.send.remote(), timeout=GET_TIMEOUT)
    pid = shoal.get(ref, timeout=GET_TIMEOUT)  # not ActorDiedError
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
