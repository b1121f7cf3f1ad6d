"""The owner's decision to terminate an actor that went out of scope (pure)."""

from shoal.core.actor_scope import ActorScopeTable, Scope


def test_token_freed_while_idle_kills_at_once():
    table = ActorScopeTable()
    table.track("a1", b"tok1")
    assert table.token_freed(b"tok1", busy=False) == "a1"
    assert table.scope["a1"] is Scope.RELEASED
    assert table.token_freed(b"tok1", busy=False) is None  # once only


def test_pending_calls_finish_first():
    table = ActorScopeTable()
    table.track("a1", b"tok1")
    assert table.token_freed(b"tok1", busy=True) is None
    assert table.scope["a1"] is Scope.DRAINING
    assert table.idle("a1") is True
    assert table.idle("a1") is False  # released already


def test_idle_while_in_scope_does_nothing():
    table = ActorScopeTable()
    table.track("a1", b"tok1")
    assert table.idle("a1") is False
    assert table.scope["a1"] is Scope.IN_SCOPE


def test_other_objects_and_dead_actors_are_ignored():
    table = ActorScopeTable()
    assert table.token_freed(b"not-a-token", busy=False) is None
    table.track("a1", b"tok1")
    table.died("a1")
    assert table.token_freed(b"tok1", busy=False) is None
    assert table.idle("a1") is False
    assert not table.by_token and not table.token_of and not table.scope
