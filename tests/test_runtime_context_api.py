"""get_runtime_context(): the actor's name, the running function's name, the
session name, and Ray's deprecated id properties (objects with ``hex()`` and a
DeprecationWarning naming the getter to use)."""

from __future__ import annotations

import warnings

import shoal


def test_actor_name_is_the_name_given_or_empty_and_none_outside_actors(shoal_cluster):
    @shoal.remote
    class Named:
        def name(self):
            return shoal.get_runtime_context().get_actor_name()

    @shoal.remote
    def in_a_task():
        return shoal.get_runtime_context().get_actor_name()

    named = Named.options(name="rtc_named_actor").remote()
    assert shoal.get(named.name.remote(), timeout=30) == "rtc_named_actor"
    assert shoal.get(Named.remote().name.remote(), timeout=30) == ""
    assert shoal.get(in_a_task.remote(), timeout=30) is None
    assert shoal.get_runtime_context().get_actor_name() is None


@shoal.remote
def function_name():
    return shoal.get_runtime_context().get_task_function_name()


@shoal.remote
class Methods:
    def sync_name(self):
        return shoal.get_runtime_context().get_task_function_name()

    async def async_name(self):
        return shoal.get_runtime_context().get_task_function_name()


def test_task_function_name_is_module_and_function(shoal_cluster):
    module = __name__
    assert shoal.get(function_name.remote(), timeout=30) == f"{module}.function_name"
    assert shoal.get(function_name.options(name="other").remote(),
                     timeout=30) == f"{module}.function_name"
    actor = Methods.remote()
    assert shoal.get(actor.sync_name.remote(), timeout=30) == f"{module}.Methods.sync_name"
    assert shoal.get(actor.async_name.remote(), timeout=30) == f"{module}.Methods.async_name"
    assert shoal.get_runtime_context().get_task_function_name() is None


@shoal.remote
def ids_in_a_task():
    rtc = shoal.get_runtime_context()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        same = rtc.task_id.hex() == rtc.get_task_id()
    context = rtc.get()
    return (same, [str(w.message) for w in caught], context["task_id"].hex(),
            rtc.get_task_id(), rtc.get_session_name())


def test_deprecated_id_properties_and_session_name(shoal_cluster):
    rtc = shoal.get_runtime_context()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rtc.job_id.hex() == rtc.get_job_id()
        assert rtc.node_id.hex() == rtc.get_node_id()
    messages = [str(w.message) for w in caught]
    assert "Use get_job_id() instead" in messages
    assert "Use get_node_id() instead" in messages
    assert rtc.get()["job_id"].hex() == rtc.get_job_id()
    same, task_messages, context_task, task_id, session = shoal.get(
        ids_in_a_task.remote(), timeout=30)
    assert same and "Use get_task_id() instead" in task_messages
    assert context_task == task_id
    assert session and session == rtc.get_session_name()
