"""The control store's actor restarts, in-process: the store is real, the node
agents are scripted handlers behind loopback connections (no processes)."""

from __future__ import annotations

import asyncio

from shoal._version import __version__
from shoal.control.control_store import ControlStore
from shoal.rpc.actor_messages import GetActorBody, KillActorBody, WorkerDiedBody
from shoal.rpc.lease_messages import ActorLeaseBody, KillWorkerBody
from shoal.rpc.loopback import LoopbackConnection
from shoal.rpc.messages import Method
from shoal.rpc.transport import ConnectionLostError, Router


class Agent:
    """A node agent that creates actors as scripted: "ok" (the constructor returned),
    "raise" (it raised), "die" (the worker died while it ran)."""

    def __init__(self, store: ControlStore, store_router: Router, node_id: str) -> None:
        self.node_id = node_id
        self.script: list[str] = []
        self.created: list[tuple[str, int]] = []  # (worker id, num_restarts)
        self.killed: list[str] = []
        router = Router()
        router.add(Method.LEASE_ACTOR_WORKER, self.lease_actor_worker)
        router.add(Method.KILL_WORKER, lambda conn, body: self.killed.append(
            KillWorkerBody.from_wire(body).worker_id))
        # to_store delivers to the store's handlers; to_agent to ours
        self.to_store, self.to_agent = LoopbackConnection.pair(
            router, f"agent {node_id}", store_router, "control store")
        self.conn = self.to_agent  # what the store holds
        store.handle_register_node(self.conn, {
            "node_id": node_id, "address": f"{node_id}:1", "version": __version__,
            "resources_total": {"CPU": 1.0}, "resources_available": {"CPU": 1.0}})

    async def lease_actor_worker(self, conn, body):
        num_restarts = ActorLeaseBody.from_wire(body).num_restarts
        await asyncio.sleep(0)
        outcome = self.script.pop(0) if self.script else "ok"
        worker_id = f"w{len(self.created)}-{self.node_id}"
        self.created.append((worker_id, num_restarts))
        if outcome == "die":
            raise ConnectionLostError("the worker died")
        error = "ValueError: bad" if outcome == "raise" else None
        return [worker_id, f"{worker_id}:9", self.node_id, error]

    def worker_died(self, store: ControlStore, worker_id: str, actor_id: str) -> None:
        store.handle_worker_died(self.conn, WorkerDiedBody(worker_id, self.node_id, actor_id,
                                                          -9).to_wire())


def make_store() -> tuple[ControlStore, Router, list[dict]]:
    router = Router()
    store = ControlStore(router)
    published: list[dict] = []
    store.subscribe_local("actor", published.append)
    return store, router, published


def create(store: ControlStore, actor_id: str = "a1", **extra) -> None:
    store.handle_create_actor(None, {
        "actor_id": actor_id, "job_id": "j1", "owner_worker_id": "owner",
        "class_name": "Counter", "resources": {}, "creation": b"", **extra})


async def settle(store: ControlStore, actor_id: str, state: str, timeout: float = 2.0):
    """Let the store's placement run until the actor reaches ``state``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while store.actors[actor_id].state.value != state:
        assert loop.time() < deadline, store.actors[actor_id]
        await asyncio.sleep(0.01)
    return store.actors[actor_id]


def run(coro) -> None:
    asyncio.run(coro)


def test_a_worker_death_restarts_the_actor_and_counts_it():
    async def main():
        store, router, published = make_store()
        agent = Agent(store, router, "n1")
        create(store, max_restarts=2)
        rec = await settle(store, "a1", "ALIVE")
        first = rec.worker_id
        agent.worker_died(store, first, "a1")
        assert rec.state.value == "RESTARTING" and rec.num_restarts == 1
        assert "exit code -9" in rec.death_cause and "died unexpectedly" in rec.death_cause
        rec = await settle(store, "a1", "ALIVE")
        assert rec.worker_id != first and agent.created[-1][1] == 1  # told it restarts
        assert "died unexpectedly" in rec.death_cause  # the last failure's cause stays
        states = [(m["state"], m["num_restarts"]) for m in published]
        assert states == [("ALIVE", 0), ("RESTARTING", 1), ("ALIVE", 1)]

    run(main())


def test_restarts_run_out_then_the_actor_is_dead_and_its_owner_frees_its_name():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        create(store, max_restarts=1, name="c")
        rec = await settle(store, "a1", "ALIVE")
        agent.worker_died(store, rec.worker_id, "a1")
        assert ("default", "c") in store.named_actors  # kept while it restarts
        rec = await settle(store, "a1", "ALIVE")
        agent.worker_died(store, rec.worker_id, "a1")
        assert rec.state.value == "DEAD" and rec.num_restarts == 1
        # held while handles may exist (Ray), though a lookup finds nothing
        assert ("default", "c") in store.named_actors and rec.name_held
        assert store.handle_get_named_actor(None, ["c", "default"]) is None
        store.handle_release_actor_name(None, ["a1"])  # the owner's last handle went
        assert ("default", "c") not in store.named_actors

    run(main())


def test_a_late_death_report_of_an_old_worker_is_ignored():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        create(store, max_restarts=-1)
        rec = await settle(store, "a1", "ALIVE")
        old = rec.worker_id
        store.handle_kill_actor(None, KillActorBody("a1", no_restart=False).to_wire())
        assert rec.state.value == "RESTARTING"
        await asyncio.sleep(0)  # loopback notifications are delivered soon, not now
        assert agent.killed == [old]
        rec = await settle(store, "a1", "ALIVE")
        agent.worker_died(store, old, "a1")  # the killed process's exit, reported late
        assert rec.state.value == "ALIVE" and rec.num_restarts == 1

    run(main())


def test_a_worker_death_report_overtaking_the_creation_reply_is_not_lost():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        create(store, max_restarts=1)
        await asyncio.sleep(0)  # placement has asked the agent; reply not yet seen
        agent.worker_died(store, "w0-n1", "a1")  # the worker being created
        rec = await settle(store, "a1", "ALIVE")
        assert rec.worker_id == "w1-n1" and rec.num_restarts == 1

    run(main())


def test_a_death_in_the_constructor_uses_a_restart_and_raising_is_final():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        agent.script = ["die", "raise"]
        create(store, max_restarts=5)
        rec = await settle(store, "a1", "DEAD")
        assert rec.num_restarts == 1 and "ValueError: bad" in rec.death_cause
        assert [n for _, n in agent.created] == [0, 1]

    run(main())


def test_kill_is_final_and_owner_death_is_final_whatever_restarts_remain():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        create(store, "a1", max_restarts=-1)
        create(store, "a2", max_restarts=-1, detached=True)
        create(store, "a3", max_restarts=-1)
        for actor_id in ("a1", "a2", "a3"):
            await settle(store, actor_id, "ALIVE")
        store.handle_kill_actor(None, KillActorBody("a1", no_restart=True).to_wire())
        assert store.actors["a1"].state.value == "DEAD"
        assert "shoal.kill()" in store.actors["a1"].death_cause
        store._owner_died("owner", "its owner died")
        assert store.actors["a2"].state.value == "ALIVE"  # detached
        assert store.actors["a3"].state.value == "DEAD"
        await asyncio.sleep(0)
        assert len(agent.killed) == 2

    run(main())


def test_a_node_death_restarts_its_actors_on_a_live_node():
    async def main():
        store, router, _ = make_store()
        Agent(store, router, "n1")
        create(store, max_restarts=1, scheduling_strategy=["NODE_AFFINITY", "n1", True])
        rec = await settle(store, "a1", "ALIVE")
        assert rec.node_id == "n1"
        n2 = Agent(store, router, "n2")
        store._node_died(store.membership.connection_closed("n1"))
        assert rec.state.value == "RESTARTING" and "node n1" in rec.death_cause
        rec = await settle(store, "a1", "ALIVE")
        assert rec.node_id == "n2" and n2.created[-1][1] == 1

    run(main())


def test_get_actor_answers_restarting_or_waits_through_it():
    async def main():
        store, router, _ = make_store()
        agent = Agent(store, router, "n1")
        agent.script = ["ok"]
        create(store, max_restarts=1)
        rec = await settle(store, "a1", "ALIVE")
        old_address = rec.address
        # the caller saw the address fail before the store heard of the death: wait
        lost = store.handle_get_actor(None, GetActorBody("a1", old_address, False, 0).to_wire())
        through = store.handle_get_actor(None, GetActorBody("a1", old_address, True,
                                                             0).to_wire())
        assert isinstance(lost, asyncio.Future) and not lost.done()
        agent.worker_died(store, rec.worker_id, "a1")
        assert (await lost)["state"] == "RESTARTING"
        assert not through.done()
        answer = await asyncio.wait_for(through, 2)
        assert answer["state"] == "ALIVE" and answer["address"] != old_address
        assert answer["num_restarts"] == 1

    run(main())
