"""Worker processes show Ray's titles: ray::<task name> while running, ray::<Class> for
an actor between calls (shoal/core/proc_title.py)."""

from __future__ import annotations

import psutil

import shoal
from tests.utils import wait_for_condition

GET_TIMEOUT = 60


def _title(pid: int) -> str:
    return psutil.Process(pid).cmdline()[0]


@shoal.remote
def my_task():
    return _title(psutil.Process().pid)


def test_a_task_shows_its_name_while_it_runs(shoal_cluster):
    assert shoal.get(my_task.remote(), timeout=GET_TIMEOUT) == "ray::my_task"
    assert shoal.get(my_task.options(name="renamed").remote(),
                     timeout=GET_TIMEOUT) == "ray::renamed"


def test_an_actor_shows_its_method_then_its_class(shoal_cluster):
    @shoal.remote
    class Titled:
        def title(self):
            return _title(psutil.Process().pid)

        def pid(self):
            return psutil.Process().pid

    actor = Titled.remote()
    assert shoal.get(actor.title.remote(), timeout=GET_TIMEOUT) == "ray::Titled.title"
    assert shoal.get(actor.title.options(name="foo").remote(),
                     timeout=GET_TIMEOUT) == "ray::foo"
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    wait_for_condition(lambda: _title(pid) == "ray::Titled", timeout=30)
