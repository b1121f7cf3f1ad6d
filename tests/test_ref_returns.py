"""A ref a task or method returns is returned as a ref (Ray's): the caller's get
gives the ref, not the value behind it, whatever kind of actor ran the method."""

from __future__ import annotations

import shoal

GET_TIMEOUT = 60


@shoal.remote
class AsyncHolder:
    def plain(self):  # a sync method of an async actor
        return shoal.put("inner")

    async def awaited(self):
        return shoal.put("inner")


def test_async_actors_return_refs_as_refs(shoal_cluster):
    holder = AsyncHolder.remote()
    for method in (holder.plain, holder.awaited):
        ref = shoal.get(method.remote(), timeout=GET_TIMEOUT)
        assert isinstance(ref, shoal.ObjectRef), (method, ref)
        assert shoal.get(ref, timeout=GET_TIMEOUT) == "inner"


def test_a_refs_task_id_answers_rays_hex(shoal_cluster):
    @shoal.remote
    def make():
        return shoal.get_runtime_context().get_task_id()

    ref = make.remote()
    inside = shoal.get(ref, timeout=GET_TIMEOUT)
    assert ref.task_id() == inside and ref.task_id().hex() == inside
    assert ref.task_id().binary() == bytes.fromhex(inside)
