"""The caller's view of an actor (shoal.core.actor_view): a pure transition table."""

from __future__ import annotations

import pytest

from shoal.control.actor_lifecycle import ActorState
from shoal.core.actor_view import (
    TRANSITIONS,
    ViewEvent,
    keeps_actor_busy,
    may_send,
    next_view,
    reported,
)


def test_every_view_answers_every_event():
    assert set(TRANSITIONS) == set(ActorState)
    for view in ActorState:
        assert set(TRANSITIONS[view]) == set(ViewEvent)


@pytest.mark.parametrize("view", [ActorState.PENDING, ActorState.ALIVE, ActorState.RESTARTING])
def test_a_live_view_follows_the_news(view):
    assert next_view(view, ViewEvent.CONNECTED) is ActorState.ALIVE
    assert next_view(view, ViewEvent.RESTART_REPORTED) is ActorState.RESTARTING
    assert next_view(view, ViewEvent.DIED) is ActorState.DEAD


@pytest.mark.parametrize("event", list(ViewEvent))
def test_dead_is_final_whatever_news_comes_late(event):
    assert next_view(ActorState.DEAD, event) is ActorState.DEAD


def test_a_restart_then_a_new_process_makes_it_sendable_again():
    view = ActorState.PENDING
    assert not may_send(view)
    for event, sendable in [(ViewEvent.CONNECTED, True), (ViewEvent.RESTART_REPORTED, False),
                            (ViewEvent.CONNECTED, True), (ViewEvent.DIED, False)]:
        view = next_view(view, event)
        assert may_send(view) is sendable


def test_only_an_actor_never_reached_counts_as_busy():
    assert [v for v in ActorState if keeps_actor_busy(v)] == [ActorState.PENDING]


def test_the_stores_answers_are_read_as_its_states():
    assert reported({"state": "PENDING_CREATION"}) is ActorState.PENDING
    assert reported({"state": "DEAD", "death_cause": "x"}) is ActorState.DEAD
    with pytest.raises(ValueError):
        reported({"state": "dead"})  # a misspelt state is an error, not "not ALIVE"
