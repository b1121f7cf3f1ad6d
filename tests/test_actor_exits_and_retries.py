"""Actor calls that end their process, and retries of calls others depend on."""

from __future__ import annotations

import os
import sys

import pytest

import shoal

GET_TIMEOUT = 60


@shoal.remote
class Counter:
    def __init__(self):
        self.counts = {}

    def increment(self, key):
        value = self.counts.get(key, 0)
        self.counts[key] = value + 1
        return value


@pytest.mark.parametrize("kind", ["threaded", "async"])
def test_exit_in_a_call_off_the_main_thread_restarts_the_actor_and_retries(shoal_cluster,
                                                                            kind):
    if kind == "threaded":
        @shoal.remote(max_concurrency=2)
        class Exits:
            def call(self, counter):
                if shoal.get(counter.increment.remote(kind), timeout=GET_TIMEOUT) == 0:
                    sys.exit(1)  # ends the process, as on the main thread
                return "second try"
    else:
        @shoal.remote
        class Exits:
            async def call(self, counter):
                if await counter.increment.remote(kind) == 0:
                    sys.exit(1)
                return "second try"

    counter = Counter.remote()
    actor = Exits.options(max_restarts=1, max_task_retries=1).remote()
    assert shoal.get(actor.call.remote(counter), timeout=GET_TIMEOUT) == "second try"


class Flaky(Exception):
    pass


def test_a_retried_call_runs_before_a_later_call_waiting_for_its_result(shoal_cluster,
                                                                         tmp_path):
    @shoal.remote
    class Chain:
        def __init__(self):
            self.tries = 0

        @shoal.method(max_task_retries=1, retry_exceptions=[Flaky])
        def one(self, gate):
            from tests.utils import wait_for_condition

            wait_for_condition(lambda: os.path.exists(gate), timeout=30)
            self.tries += 1
            if self.tries == 1:
                raise Flaky()
            return 1

        def two(self, one_output):
            return one_output + 1

    gate = tmp_path / "gate"
    actor = Chain.remote()
    first = actor.one.remote(str(gate))
    second = actor.two.remote(first)  # waits for `first`, which will be retried
    gate.touch()
    assert shoal.get(second, timeout=GET_TIMEOUT) == 2
