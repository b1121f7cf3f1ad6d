"""The task lifecycle's transition table (shoal/core/task_state.py): pure, no sockets."""

from __future__ import annotations

import pytest

from shoal.core.task_manager import PendingTask
from shoal.core.task_spec import TaskKind, TaskSpec
from shoal.core.task_state import (
    AT_A_WORKER,
    TRANSITIONS,
    CancelStep,
    InvalidTaskTransition,
    TaskEvent,
    TaskState,
    cancel_step,
    next_state,
    retry_allowed,
    use_retry,
)

S, E = TaskState, TaskEvent
LIVE = [s for s in S if not s.is_final]


def run(events: list[TaskEvent], start: TaskState = S.SUBMITTED) -> TaskState:
    state = start
    for event in events:
        state = next_state(state, event)
    return state


def test_every_state_has_a_row_and_final_states_never_move():
    assert set(TRANSITIONS) == set(S)
    for state in (S.FINISHED, S.FAILED, S.CANCELLED):
        assert state.is_final
        for event in E:
            with pytest.raises(InvalidTaskTransition, match=state.name):
                next_state(state, event)


def test_the_common_paths():
    assert run([E.READY, E.PUSH, E.SUCCEED]) is S.FINISHED  # arguments all ready
    assert run([E.WAIT_ARGS, E.READY, E.PUSH, E.SUCCEED]) is S.FINISHED
    assert run([E.PUSH, E.SUCCEED]) is S.FINISHED  # an actor call sent by the user thread
    assert run([E.READY, E.PUSH, E.FAIL]) is S.FAILED  # an application error


def test_illegal_transitions_are_refused():
    with pytest.raises(InvalidTaskTransition, match="RESOLVING cannot take event PUSH"):
        next_state(S.RESOLVING, E.PUSH)  # not queued: its arguments are not ready
    with pytest.raises(InvalidTaskTransition):
        next_state(S.QUEUED, E.SUCCEED)  # no worker ran it
    with pytest.raises(InvalidTaskTransition):
        next_state(S.SUBMITTED, E.SUCCEED)
    with pytest.raises(InvalidTaskTransition):
        next_state(S.QUEUED, E.RETRY)  # only a task a worker had is retried
    with pytest.raises(InvalidTaskTransition):
        next_state(S.CANCELLING, E.STOLEN)  # a cancelled task is never queued again
    with pytest.raises(InvalidTaskTransition):
        next_state(S.CANCELLING, E.RETRY)
    with pytest.raises(InvalidTaskTransition):
        next_state(S.CANCELLING, E.HAND_BACK)


def test_only_a_task_a_worker_had_succeeds():
    succeed_from = {s for s in S if E.SUCCEED in TRANSITIONS[s]}
    assert succeed_from == set(AT_A_WORKER) == {S.PUSHED, S.CANCELLING}


def test_any_live_state_can_fail_or_be_cancelled():
    for state in LIVE:
        assert next_state(state, E.FAIL) is S.FAILED
        assert next_state(state, E.CANCELLED) is S.CANCELLED


def test_retry_and_hand_back_resolve_again():
    pushed = run([E.READY, E.PUSH])
    assert run([E.RETRY, E.READY, E.PUSH, E.SUCCEED], pushed) is S.FINISHED
    # handed back (an argument had no copy): its arguments are resolved again
    assert run([E.HAND_BACK, E.WAIT_ARGS, E.READY, E.PUSH], pushed) is S.PUSHED
    assert run([E.STOLEN, E.PUSH, E.SUCCEED], pushed) is S.FINISHED


def test_retry_counts():
    assert retry_allowed(-1) and retry_allowed(2) and not retry_allowed(0)
    assert [use_retry(n) for n in (-1, 2, 1)] == [-1, 1, 0]


@pytest.mark.parametrize("state", list(S))
def test_cancel_in_each_state(state):
    step = cancel_step(state)
    if state.is_final:
        assert step is CancelStep.NOTHING
    elif state in (S.PUSHED, S.CANCELLING):
        # a worker has it: the worker is told, and its reply decides
        assert step is CancelStep.TELL_WORKER
        after = next_state(state, E.CANCEL)
        assert after is S.CANCELLING
        assert next_state(after, E.CANCELLED) is S.CANCELLED
        assert next_state(after, E.SUCCEED) is S.FINISHED  # it had finished anyway
        assert next_state(after, E.FAIL) is S.FAILED
    else:
        # no worker has it: it is cancelled at once
        assert step is CancelStep.FINISH_NOW
        assert next_state(state, E.CANCELLED) is S.CANCELLED
        with pytest.raises(InvalidTaskTransition):
            next_state(state, E.CANCEL)


def test_pending_task_advances_through_the_table():
    spec = TaskSpec(task_id=b"t" * 16, kind=TaskKind.NORMAL, name="f", function_id=b"fn",
                    args=[], kwarg_names=[], num_returns=1, owner="10.0.0.1:7000",
                    job_id="00000001")
    task = PendingTask(spec=spec, return_ids=[], held=[], retries_left=1,
                       retry_exceptions=False)
    assert task.state is S.SUBMITTED
    assert task.advance(E.WAIT_ARGS) is S.RESOLVING
    with pytest.raises(InvalidTaskTransition):
        task.advance(E.PUSH)
    assert task.state is S.RESOLVING  # a refused event changes nothing
    assert task.advance(E.READY) is S.QUEUED
