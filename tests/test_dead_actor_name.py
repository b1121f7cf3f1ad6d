"""A named non-detached actor that crashed keeps its name while a handle to it
exists (Ray's rule): the name is refused to a new actor, and ``get_actor`` finds
nothing; dropping the last handle, or ``kill`` of the dead actor, frees it.  An
actor that was killed frees its name at once."""

from __future__ import annotations

import os
import signal

import pytest

import shoal
from shoal.exceptions import ActorDiedError
from tests.utils import wait_for_condition


@shoal.remote(max_restarts=0)
class Named:
    def pid(self):
        return os.getpid()


def _crash(actor) -> None:
    os.kill(shoal.get(actor.pid.remote(), timeout=30), signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        shoal.get(actor.pid.remote(), timeout=30)


def _create(name: str):
    try:
        return Named.options(name=name).remote()
    except ValueError:
        return None


def test_a_crashed_actor_keeps_its_name_until_its_last_handle_goes(shoal_cluster):
    actor = Named.options(name="held_name").remote()
    _crash(actor)
    with pytest.raises(ValueError, match="held_name"):
        Named.options(name="held_name").remote()
    with pytest.raises(ValueError):
        shoal.get_actor("held_name")
    del actor
    fresh = []
    wait_for_condition(lambda: fresh.append(_create("held_name")) or fresh[-1] is not None,
                       timeout=30)
    assert shoal.get(fresh[-1].pid.remote(), timeout=30) > 0


def test_kill_frees_a_dead_actors_held_name(shoal_cluster):
    actor = Named.options(name="killed_name").remote()
    _crash(actor)
    with pytest.raises(ValueError):
        Named.options(name="killed_name").remote()
    shoal.kill(actor)
    again = Named.options(name="killed_name").remote()
    assert shoal.get(again.pid.remote(), timeout=30) > 0
