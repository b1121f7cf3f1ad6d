"""Actors counted per state and class for /metrics, and the bound on dead records."""

import pytest

from shoal.control.actor_counts import (
    DEFAULT_MAX_DEAD_ACTORS,
    ActorCounts,
    DeadActorLog,
    max_dead_actors_from_env,
)
from shoal.control.actor_lifecycle import ActorState


def test_counts_follow_moves_and_list_every_state_of_every_class():
    counts = ActorCounts()
    counts.moved("A", None, ActorState.PENDING)
    counts.moved("A", None, ActorState.PENDING)
    counts.moved("A", ActorState.PENDING, ActorState.ALIVE)
    counts.moved("A", ActorState.ALIVE, ActorState.DEAD)
    rows = {(state, name): n for state, name, n in counts.rows()}
    assert rows == {("DEPENDENCIES_UNREADY", "A"): 0, ("PENDING_CREATION", "A"): 1,
                    ("ALIVE", "A"): 0,
                    ("RESTARTING", "A"): 0, ("DEAD", "A"): 1}


def test_the_dead_log_names_the_oldest_deaths_past_its_limit():
    log = DeadActorLog(limit=2)
    assert log.died("a") == [] and log.died("b") == []
    assert log.died("c") == ["a"]
    assert DeadActorLog(limit=0).died("x") == ["x"]


def test_the_bound_comes_from_shoals_variable_or_rays_and_bad_values_are_named():
    assert max_dead_actors_from_env({}) == DEFAULT_MAX_DEAD_ACTORS
    assert max_dead_actors_from_env({"RAY_maximum_gcs_destroyed_actor_cached_count": "5"}) == 5
    assert max_dead_actors_from_env({"SHOAL_MAX_DEAD_ACTORS": "7",
                                     "RAY_maximum_gcs_destroyed_actor_cached_count": "5"}) == 7
    with pytest.raises(ValueError, match="SHOAL_MAX_DEAD_ACTORS"):
        max_dead_actors_from_env({"SHOAL_MAX_DEAD_ACTORS": "many"})
    with pytest.raises(ValueError, match=">= 0"):
        max_dead_actors_from_env({"SHOAL_MAX_DEAD_ACTORS": "-1"})
