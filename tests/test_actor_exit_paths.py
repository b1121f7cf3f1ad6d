"""exit_actor() from the places Ray allows it besides a method's body: the
constructor, a method that catches the SystemExit, and a task an async actor
spawned itself.  In each the process ends (atexit handlers run) and the actor is
dead for its callers."""

from __future__ import annotations

import asyncio
import atexit
import time

import pytest

import shoal
from shoal.actor import exit_actor
from shoal.exceptions import ActorDiedError
from tests.utils import wait_for_condition


def _touch_at_exit(path: str, after: float = 0.0) -> None:
    """``after`` seconds of work in the handler: nothing may kill the process
    while its atexit handlers run."""
    def touch() -> None:
        time.sleep(after)
        open(path, "w").close()

    atexit.register(touch)


def test_exit_actor_in_the_constructor_runs_atexit_and_kills_the_actor(shoal_cluster,
                                                                       tmp_path):
    marker = str(tmp_path / "atexit")
    after = tmp_path / "after"

    @shoal.remote
    class ExitsAtBirth:
        def __init__(self, marker, after):
            _touch_at_exit(marker, after=1.0)
            exit_actor()
            open(after, "w").close()

        def ping(self):
            return 1

    actor = ExitsAtBirth.remote(marker, str(after))
    wait_for_condition(lambda: (tmp_path / "atexit").exists(), timeout=30)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        shoal.get(actor.ping.remote(), timeout=30)
    assert not after.exists()


def test_a_caught_exit_still_ends_the_actor_and_its_call_gets_no_result(shoal_cluster,
                                                                         tmp_path):
    @shoal.remote
    class Stubborn:
        def exit(self):
            try:
                exit_actor()
            except SystemExit:
                pass
            return "survived"

        def ping(self):
            return 1

    actor = Stubborn.remote()
    shoal.get(actor.ping.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(actor.exit.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(actor.ping.remote(), timeout=30)


def test_exit_actor_in_a_task_an_async_actor_spawned_ends_it(shoal_cluster, tmp_path):
    marker = str(tmp_path / "atexit")

    @shoal.remote
    class Spawner:
        def __init__(self, marker):
            _touch_at_exit(marker)

        async def start(self):
            async def later():
                await asyncio.sleep(0.1)
                exit_actor()

            asyncio.get_running_loop().create_task(later())
            return "started"

    actor = Spawner.remote(marker)
    assert shoal.get(actor.start.remote(), timeout=30) == "started"
    wait_for_condition(lambda: (tmp_path / "atexit").exists(), timeout=30)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        shoal.get(actor.start.remote(), timeout=30)


def test_an_async_actors_constructor_runs_on_its_running_loop(shoal_cluster, tmp_path):
    marker = str(tmp_path / "atexit")

    @shoal.remote
    class StartsWork:
        def __init__(self, marker, leave):
            _touch_at_exit(marker)
            self.started = asyncio.get_running_loop() is not None
            if leave:
                asyncio.create_task(self.leave())

        async def leave(self):
            exit_actor()

        async def started_ok(self):
            return self.started

    assert shoal.get(StartsWork.remote(marker, False).started_ok.remote(), timeout=30)
    leaving = StartsWork.remote(marker, True)
    wait_for_condition(lambda: (tmp_path / "atexit").exists(), timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(leaving.started_ok.remote(), timeout=30)
