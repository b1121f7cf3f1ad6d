"""Distributed reference counting across nodes: objects stay exactly while
someone holds a ref, and every node's store drains afterwards
(shoal/core/reference_table.py, docs/design.md section 5); ownership handed
to an actor with put(_owner=...) (shoal/core/adopt.py); objects of owners
that died are freed on every node (shoal/node/owner_watch.py).

One cluster for the module: a head the driver attaches to and two nodes,
"n1" and "n2".  Each test ends by checking that every node's store is back
to where it started.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

import shoal
from shoal.core import context
from shoal.launch import control_client
from shoal.rpc.messages import Method
from shoal.rpc.store_messages import AlreadyStored, StoreCreateBody
from shoal.rpc.transport import Router
from shoal.util import state
from tests.clusters import labelled_cluster, objects_per_node
from tests.utils import wait_for_condition

MiB = 1 << 20
SIZE = 256 * 1024  # big enough for shared memory, small enough to make many


@pytest.fixture(scope="module")
def cluster():
    with labelled_cluster(128 * MiB, n1=1, n2=1) as c:
        yield c


@pytest.fixture
def drained(cluster):
    """Yields the cluster; afterwards every node's store must hold what it held before."""
    before = objects_per_node(cluster)
    yield cluster
    wait_for_condition(lambda: objects_per_node(cluster) == before, timeout=20,
                       message=f"stores did not drain back to {before}")


def where(node: str) -> dict:
    return {"resources": {node: 0.01}}


@shoal.remote
def make(fill: int) -> np.ndarray:
    return np.full(SIZE, fill, dtype=np.uint8)


@shoal.remote
def plus(x: np.ndarray, k: int) -> np.ndarray:
    return x + np.uint8(k)


@shoal.remote
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


@shoal.remote
def unbox_sum(boxed: list) -> int:
    return int(shoal.get(boxed[0]).sum())


@shoal.remote
def pass_on(boxed: list, node: str) -> int:
    """Hands the ref inside ``boxed`` to a task on ``node`` and drops its own."""
    return shoal.get(unbox_sum.options(**where(node)).remote(boxed))


@shoal.remote(num_cpus=0)
class Holder:
    def __init__(self) -> None:
        self.kept: list = []

    def keep(self, boxed: list) -> int:
        self.kept.append(boxed[0])
        return len(self.kept)

    def total(self) -> int:
        return int(sum(int(x.sum()) for x in shoal.get(self.kept)))

    def address(self) -> str:
        return context.current_worker_or_none().address

    def clear(self) -> None:
        self.kept = []

    def put_here(self, fill: int) -> list:
        return [shoal.put(np.full(SIZE, fill, dtype=np.uint8))]


def test_chain_across_nodes_drains(drained):
    x = make.options(**where("n1")).remote(1)
    for i in range(10):
        x = plus.options(**where("n1" if i % 2 else "n2")).remote(x, 1)
    assert int(shoal.get(x)[0]) == 11
    del x


def test_tree_reduction_across_nodes_drains(drained):
    level = [make.options(**where(("n1", "n2", "head")[i % 3])).remote(i) for i in range(8)]
    while len(level) > 1:
        level = [add.options(**where("n1" if i % 4 else "n2")).remote(level[i], level[i + 1])
                 for i in range(0, len(level), 2)]
    assert int(shoal.get(level[0])[0]) == sum(range(8))
    del level


def test_actor_keeps_refs_alive_after_the_owner_drops_them(drained):
    holder = Holder.options(**where("n1")).remote()
    refs = [make.options(**where("n2")).remote(i) for i in range(1, 4)]
    assert shoal.get([holder.keep.remote([r]) for r in refs])[-1] == 3
    del refs  # the owner (driver) holds none now; the actor borrows all three
    assert shoal.get(holder.total.remote()) == (1 + 2 + 3) * SIZE
    shoal.get(holder.clear.remote())
    del holder


def test_refs_inside_refs_stay_alive_while_the_outer_object_does(drained):
    inner = shoal.put(np.full(SIZE, 5, dtype=np.uint8))
    outer = shoal.put([inner])
    del inner  # only the outer object keeps it now
    assert shoal.get(unbox_sum.options(**where("n2")).remote(outer)) == 5 * SIZE
    assert shoal.get(unbox_sum.options(**where("n1")).remote(outer)) == 5 * SIZE
    del outer


def test_borrowers_passing_a_ref_on_are_counted_until_the_last_one_drops_it(drained):
    ref = make.options(**where("n1")).remote(7)
    boxed = [ref]
    del ref
    out = pass_on.options(**where("n2")).remote(boxed, "head")
    del boxed  # the chain driver -> n2 -> head still needs it until out is ready
    assert shoal.get(out) == 7 * SIZE


def test_ref_put_by_an_actor_is_owned_by_it_and_readable_on_any_node(drained):
    holder = Holder.options(**where("n2")).remote()
    boxed = shoal.get(holder.put_here.remote(9))
    assert boxed[0].owner_address != context.current_worker_or_none().address
    assert int(shoal.get(boxed[0])[0]) == 9
    assert shoal.get(unbox_sum.options(**where("n1")).remote(boxed)) == 9 * SIZE
    del boxed, holder


def test_put_with_owner_outlives_the_task_that_put_it(drained):
    keeper = Holder.options(**where("n2")).remote()

    @shoal.remote
    def put_for(owner) -> list:
        return [shoal.put(np.full(SIZE, 4, dtype=np.uint8), _owner=owner)]

    boxed = shoal.get(put_for.options(**where("n1")).remote(keeper))
    assert boxed[0].owner_address == shoal.get(keeper.address.remote())
    assert int(shoal.get(boxed[0])[0]) == 4
    assert shoal.get(keeper.keep.remote(boxed)) == 1
    del boxed  # the keeper's own ref keeps it alive
    assert shoal.get(keeper.total.remote()) == 4 * SIZE
    shoal.get(keeper.clear.remote())
    del keeper


def test_put_with_owner_rejects_what_is_not_an_actor(cluster):
    with pytest.raises(TypeError, match="actor handle"):
        shoal.put(1, _owner="not an actor")


def test_objects_of_an_owner_that_died_are_freed_on_every_node(drained):
    victim = Holder.options(**where("n1")).remote()
    boxed = shoal.get(victim.put_here.remote(3))
    assert shoal.get(unbox_sum.options(**where("n2")).remote(boxed)) == 3 * SIZE  # a copy
    owner = boxed[0].owner_address
    victim_id = victim._actor_id
    shoal.kill(victim)
    # kill returns once asked, as Ray's does: a get before the actor is gone may
    # still be answered by it
    wait_for_condition(lambda: state.get_actor(victim_id).state == "DEAD", timeout=30)
    with pytest.raises(shoal.exceptions.OwnerDiedError, match=owner):
        shoal.get(boxed[0], timeout=30)
    ready, _ = shoal.wait([boxed[0]], timeout=30)  # ready: with its error
    assert ready == [boxed[0]]
    with pytest.raises(shoal.exceptions.OwnerDiedError, match=owner):
        shoal.get(unbox_sum.options(**where("n2")).remote(boxed), timeout=30)
    del boxed, victim


@shoal.remote(num_cpus=0)
class Parent:
    def spawn(self, normal: str, detached: str) -> bool:
        self.children = [Holder.options(name=normal).remote(),
                         Holder.options(name=detached, lifetime="detached").remote()]
        return shoal.get([c.address.remote() for c in self.children]) is not None


def test_actors_die_with_their_owner_unless_detached(cluster):
    suffix = os.urandom(4).hex()
    normal, detached = f"normal-{suffix}", f"detached-{suffix}"
    parent = Parent.options(**where("n1")).remote()
    assert shoal.get(parent.spawn.remote(normal, detached), timeout=30)
    kept, doomed = shoal.get_actor(detached), shoal.get_actor(normal)
    shoal.kill(parent)

    def owner_death_reached_the_child() -> bool:
        try:
            shoal.get(doomed.address.remote(), timeout=30)
        except shoal.exceptions.ActorDiedError as exc:
            return "owner" in str(exc)
        return False

    wait_for_condition(owner_death_reached_the_child, timeout=30)
    assert shoal.get(kept.address.remote(), timeout=30)  # detached: still serving
    shoal.kill(kept)


def test_writing_an_object_the_store_already_holds_keeps_the_sealed_copy(drained):
    """A retried or rebuilt task writes its return again where an earlier run's copy
    is still stored: the agent keeps that copy and tells the writer not to write."""
    oid = os.urandom(20)

    async def scenario() -> list:
        conn = await control_client.open_control(Router(), drained.token, drained.n1.address,
                                                 name="test writer")
        try:
            first = await conn.call(Method.STORE_CREATE,
                                   StoreCreateBody(oid, 4096, "127.0.0.1:1").to_wire())
            await conn.call(Method.STORE_SEAL, [oid])
            again = await conn.call(Method.STORE_CREATE,
                                   StoreCreateBody(oid, 8192, "127.0.0.1:1").to_wire())
            await conn.call(Method.STORE_FREE, [oid])
            return [first, again]
        finally:
            conn.close()

    first, again = asyncio.run(scenario())
    assert isinstance(first, int) and AlreadyStored.from_reply(again) == AlreadyStored(4096)
