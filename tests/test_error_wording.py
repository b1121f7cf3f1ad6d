"""Wording Ray's users rely on: an exception that cannot be pickled says it "isn't
serializable"; an exception class that refuses subclasses is raised as TaskError
only, with a warning saying so; exit_actor() outside an actor names the misuse."""

from __future__ import annotations

import logging
import threading

import pytest

import shoal
from shoal.actor import exit_actor
from shoal.exceptions import ShoalError, TaskError


class HoldsALock(Exception):
    def __init__(self):
        super().__init__("locked")
        self.lock = threading.Lock()


class Final(Exception):
    def __init_subclass__(cls, /, *args, **kwargs):
        raise TypeError("no subclasses")


def test_unpicklable_exception_says_it_isnt_serializable(shoal_cluster):
    @shoal.remote
    def raise_it():
        raise HoldsALock()

    with pytest.raises(TaskError) as info:
        shoal.get(raise_it.remote(), timeout=30)
    assert isinstance(info.value.cause, ShoalError)
    assert "isn't serializable" in str(info.value.cause)


def test_final_exception_is_raised_as_task_error_with_a_warning(shoal_cluster, caplog):
    @shoal.remote
    def raise_it():
        raise Final("from the task")

    with caplog.at_level(logging.WARNING):
        with pytest.raises(TaskError) as info:
            shoal.get(raise_it.remote(), timeout=30)
    assert isinstance(info.value.cause, Final)
    assert str(info.value.cause) == "from the task"
    assert "This exception is raised as RayTaskError only" in caplog.text
    assert "`ray_task_error.cause`" in caplog.text


def test_exit_actor_outside_an_actor_names_the_misuse(shoal_cluster):
    with pytest.raises(TypeError, match="non-actor worker"):
        exit_actor()

    @shoal.remote
    def in_a_task():
        exit_actor()

    with pytest.raises(TypeError, match="non-actor worker"):
        shoal.get(in_a_task.remote(), timeout=30)


def test_actor_name_and_namespace_may_not_be_empty_and_a_taken_name_says_so(shoal_cluster):
    @shoal.remote
    class Named:
        def ping(self):
            return "pong"

    with pytest.raises(ValueError, match="Actor name cannot be an empty string"):
        Named.options(name="").remote()
    with pytest.raises(ValueError, match="Namespace cannot be an empty string"):
        Named.options(name="x", namespace="").remote()
    first = Named.options(name="wording_taken").remote()
    assert shoal.get(first.ping.remote(), timeout=30) == "pong"
    with pytest.raises(ValueError, match="Please use a different name"):
        Named.options(name="wording_taken").remote()
