"""Unit tests for the state API's fan-out (shoal.rpc.fanout) and the node
agent's part of it (shoal.node.state_service), over loopback connections:
no sockets, no processes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from shoal.node.object_store import ObjectStore, StoreConfig
from shoal.node.state_service import StateService
from shoal.node.worker_pool import Worker
from shoal.rpc.fanout import fan_out
from shoal.rpc.loopback import LoopbackConnection
from shoal.rpc.messages import Method
from shoal.rpc.transport import Router


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def client(agent_router: Router, name: str, handler) -> LoopbackConnection:
    """A core worker attached to the agent; returns the agent's end."""
    router = Router()
    router.add(Method.WORKER_STATE, handler)
    agent_end, _client_end = LoopbackConnection.pair(agent_router, "agent", router, name)
    return agent_end


def test_fan_out_names_the_silent_and_skips_the_gone():
    async def go():
        loop = asyncio.get_running_loop()
        agent = Router()
        answers = client(agent, "a", lambda conn, body: {"me": "a", "kinds": body})
        silent = client(agent, "b", lambda conn, body: loop.create_future())  # never answers
        gone = client(agent, "c", lambda conn, body: {"me": "c"})
        gone.close()
        failing = client(agent, "d", lambda conn, body: 1 / 0)
        return await fan_out([("a", answers), ("b", silent), ("c", gone), ("d", failing)],
                             Method.WORKER_STATE, ["objects"], 0.2)

    result = run(go())
    assert result.replies == [("a", {"me": "a", "kinds": ["objects"]})]
    assert result.missing[0] == "b: no answer within 0.2 s"
    assert result.missing[1].startswith("d: RemoteError")
    assert len(result.missing) == 2


def fake_agent(router: Router, spill_dir: str) -> SimpleNamespace:
    """An agent's parts the state service reads: a real object store (arena in
    /dev/shm, spill folder under ``spill_dir``), a fake worker pool."""
    store = ObjectStore(StoreConfig(1 << 20, "test", "n" * 28, [spill_dir]))
    workers = {"w1": Worker("w1", pid=101, address="127.0.0.1:5001", job_id="j",
                            actor_id="actor-1")}
    return SimpleNamespace(router=router, node_id="n" * 28,
                           config=SimpleNamespace(address="127.0.0.1:6380"),
                           store=store, pool=SimpleNamespace(workers=workers, exited=[]))


def test_node_state_gathers_snapshots_pins_and_workers(tmp_path):
    agent = None

    async def go():
        nonlocal agent
        router = Router()
        agent = fake_agent(router, str(tmp_path))
        service = StateService(agent)
        a = client(router, "a", lambda conn, body: {"worker_id": "wa", "kinds": body})
        b = client(router, "b", lambda conn, body: {"worker_id": "wb", "kinds": body})
        service.client_attached(a)
        service.client_attached(b)
        oid = b"o" * 20
        agent.store.table.create(oid, 4096, a)
        agent.store.table.seal(oid)
        agent.store.table.pin(oid, b)
        agent.store.table.pin(oid, b)
        control_end, _ = LoopbackConnection.pair(Router(), "control", router, "agent")
        full = await control_end.call(Method.NODE_STATE, [["objects", "workers"], 1.0])
        workers_only = await control_end.call(Method.NODE_STATE, [["workers"], 1.0])
        b.close()  # a core worker that went away is no longer asked
        after = await control_end.call(Method.NODE_STATE, [["tasks"], 1.0])
        return full, workers_only, after, oid

    try:
        full, workers_only, after, oid = run(go())
    finally:
        agent.store.close()
    assert full["node_id"] == "n" * 28 and full["missing"] == []
    store = full["store"]
    assert (store["capacity"], store["used"], store["num_objects"]) == (1 << 20, 4096, 1)
    assert store["spilled_objects_total"] == 0 and store["objects_on_disk"] == 0
    assert full["workers"] == [{"worker_id": "w1", "pid": 101, "actor_id": "actor-1",
                                "job_id": "j", "address": "127.0.0.1:5001", "is_alive": True}]
    snapshots = {p["worker_id"]: p for p in full["processes"]}
    assert snapshots["wa"]["kinds"] == ["objects"]  # only what core workers know
    assert snapshots["wa"]["pinned"] == {}
    assert snapshots["wb"]["pinned"] == {oid.hex(): 4096}
    assert workers_only["processes"] == []  # no core worker asked
    assert [p["worker_id"] for p in after["processes"]] == ["wa"]
    assert "pinned" not in after["processes"][0] or after["processes"][0]["pinned"] == {}
