"""``shoal.util.get_resource_demand()``: actors waiting for resources no node has count
as infeasible demand until they are placed or dead; a kill-to-restart of a waiting
actor uses a restart (it keeps waiting), and with none left it ends."""

from __future__ import annotations

import pytest

import shoal
from shoal.util import get_resource_demand
from tests.utils import wait_for_condition


def _demand() -> dict:
    return {tuple(sorted(d.shape.items())): (d.num_ready_requests_queued,
                                            d.num_infeasible_requests_queued)
            for d in get_resource_demand()}


def test_infeasible_actors_are_demand_until_placed_or_dead(shutdown_only):
    shoal.init(num_cpus=2, include_dashboard=False)

    @shoal.remote(num_cpus=2)
    class Fits:
        def ping(self):
            return "ok"

    @shoal.remote(num_cpus=80)
    class Huge:
        pass

    fits = Fits.remote()
    assert shoal.get(fits.ping.remote(), timeout=30) == "ok"
    assert _demand() == {}
    huge = [Huge.remote(), Huge.remote()]
    wait_for_condition(lambda: _demand() == {(("CPU", 80.0),): (0, 2)}, timeout=30)
    for actor in huge:
        shoal.kill(actor)
    wait_for_condition(lambda: _demand() == {}, timeout=30)


def test_kill_to_restart_of_a_waiting_actor_uses_its_restarts(shutdown_only):
    shoal.init(num_cpus=1, include_dashboard=False)

    @shoal.remote(resources={"WORKER": 1.0}, max_restarts=1)
    class Waiting:
        def ping(self):
            return 1

    actor = Waiting.remote()
    wait_for_condition(lambda: _demand() == {(("WORKER", 1.0),): (0, 1)}, timeout=30)
    shoal.kill(actor, no_restart=False)  # the one restart: it waits again
    assert _demand() == {(("WORKER", 1.0),): (0, 1)}
    shoal.kill(actor, no_restart=False)  # none left: dead
    wait_for_condition(lambda: _demand() == {}, timeout=30)
    with pytest.raises(shoal.exceptions.ActorDiedError):
        shoal.get(actor.ping.remote(), timeout=30)
