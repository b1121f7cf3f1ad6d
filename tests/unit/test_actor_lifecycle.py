"""The actor lifecycle table (shoal/control/actor_lifecycle.py): pure, no processes."""

from __future__ import annotations

import pytest

from shoal.control.actor_lifecycle import (
    TRANSITIONS,
    ActorEvent,
    ActorState,
    can_restart,
    next_state,
)

P, A, R, D = ActorState.PENDING, ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD


def test_state_names_are_rays():
    assert [s.value for s in ActorState] == ["DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE",
                                            "RESTARTING", "DEAD"]


@pytest.mark.parametrize("max_restarts, num_restarts, expected", [
    (0, 0, False), (1, 0, True), (1, 1, False), (3, 2, True), (-1, 0, True), (-1, 10**6, True),
])
def test_can_restart(max_restarts, num_restarts, expected):
    assert can_restart(max_restarts, num_restarts) is expected


@pytest.mark.parametrize("state", [P, A, R])
@pytest.mark.parametrize("event", [ActorEvent.PROCESS_DIED])
def test_a_process_death_restarts_while_restarts_remain(state, event):
    assert next_state(state, event, max_restarts=2, num_restarts=1) is R
    assert next_state(state, event, max_restarts=2, num_restarts=2) is D
    assert next_state(state, event, max_restarts=-1, num_restarts=99) is R
    assert next_state(state, event, max_restarts=0, num_restarts=0) is D


def test_kill_to_restart_uses_a_restart_in_every_live_state():
    assert next_state(A, ActorEvent.KILLED_TO_RESTART, 1, 0) is R
    assert next_state(A, ActorEvent.KILLED_TO_RESTART, 0, 0) is D
    # still being created: the creation under way is the restart (Ray counts it)
    assert next_state(P, ActorEvent.KILLED_TO_RESTART, 1, 0) is R
    assert next_state(P, ActorEvent.KILLED_TO_RESTART, 0, 0) is D
    # already being re-created: the re-creation under way is the restart (Ray's)
    assert next_state(R, ActorEvent.KILLED_TO_RESTART, 5, 1) is R
    assert next_state(R, ActorEvent.KILLED_TO_RESTART, 1, 1) is D


@pytest.mark.parametrize("state", [P, A, R])
@pytest.mark.parametrize("event", [ActorEvent.KILLED, ActorEvent.OWNER_DIED])
def test_kill_and_owner_death_are_final_whatever_restarts_remain(state, event):
    assert next_state(state, event, max_restarts=-1, num_restarts=0) is D


@pytest.mark.parametrize("state", [P, R])
def test_constructor_outcome(state):
    assert next_state(state, ActorEvent.CREATED, 0, 0) is A
    assert next_state(state, ActorEvent.CREATION_FAILED, -1, 0) is D


def test_dead_is_absorbing():
    for event in ActorEvent:
        assert next_state(D, event, -1, 0) is D


def test_created_while_alive_is_a_bug():
    with pytest.raises(ValueError, match="CREATED"):
        next_state(A, ActorEvent.CREATED, 0, 0)


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(ActorState)


def test_an_actor_waiting_for_its_arguments_is_placed_once_they_are_ready():
    U = ActorState.DEPENDENCIES_UNREADY
    assert next_state(U, ActorEvent.DEPENDENCIES_READY, 0, 0) is P
    assert next_state(U, ActorEvent.KILLED, 3, 0) is D
    assert next_state(U, ActorEvent.OWNER_DIED, 3, 0) is D
    assert next_state(U, ActorEvent.KILLED_TO_RESTART, 1, 0) is R
    assert next_state(U, ActorEvent.KILLED_TO_RESTART, 0, 0) is D
    with pytest.raises(ValueError):
        next_state(P, ActorEvent.DEPENDENCIES_READY, 0, 0)
