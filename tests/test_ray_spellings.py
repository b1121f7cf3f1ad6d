"""Ray's spellings a program may use: ``actor.method._remote(args=, kwargs=,
**options)``; and ``init(address=..., _system_config=...)`` refused, since the
configuration belongs to the cluster when its head starts."""

from __future__ import annotations

import pytest

import shoal
from shoal.cluster_utils import Cluster


def test_system_config_is_refused_when_connecting():
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        with pytest.raises(ValueError, match="_system_config"):
            shoal.init(address=cluster.address, _system_config={"min_spilling_size": 1})
        shoal.init(address=cluster.address)
        assert shoal.get(shoal.put(3), timeout=30) == 3
    finally:
        shoal.shutdown()
        cluster.shutdown()


def test_cluster_nodes_have_rays_unique_id():
    """A cluster utility node's ``unique_id`` is the node id its tasks see."""
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        worker_node = cluster.add_node(num_cpus=1, resources={"there": 1})
        shoal.init(address=cluster.address)

        @shoal.remote(resources={"there": 1})
        def where():
            return shoal.get_runtime_context().get_node_id()

        assert shoal.get(where.remote(), timeout=60) == worker_node.unique_id
        assert cluster.head_node.unique_id != worker_node.unique_id
    finally:
        shoal.shutdown()
        cluster.shutdown()


def test_kill_raylet_kills_a_cluster_utility_node():
    """Ray's ``node.kill_raylet()``: the node dies abruptly; the cluster notices as
    for any failed node, and work goes elsewhere."""
    from tests.utils import wait_for_condition

    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        doomed = cluster.add_node(num_cpus=1)
        shoal.init(address=cluster.address)
        doomed.kill_raylet()
        assert not doomed.is_alive()
        wait_for_condition(lambda: not any(
            n["NodeID"] == doomed.node_id and n["Alive"] for n in shoal.nodes()),
            timeout=60, message="the cluster still counts the killed node alive")
    finally:
        shoal.shutdown()
        cluster.shutdown()


def test_cluster_nodes_list_their_processes_by_rays_roles():
    """Ray's ``node.all_processes``: the head's one process is both its agent
    ("raylet") and the control store ("gcs_server"); another node's is its agent."""
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        other = cluster.add_node(num_cpus=0)
        head = cluster.head_node.all_processes
        assert head["gcs_server"][0].process.pid == cluster.head_node.pid
        assert head["raylet"][0].process.pid == cluster.head_node.pid
        assert set(other.all_processes) == {"raylet"}
        assert other.all_processes["raylet"][0].process.pid == other.pid
    finally:
        cluster.shutdown()


def test_an_actor_handle_tells_this_process_view_of_the_actor(shoal_cluster):
    """Ray's ``handle._get_local_state()``: what this process last heard of the actor
    (its calls follow it), ALIVE once connected, DEAD after a kill."""
    from shoal.control.actor_lifecycle import ActorState
    from tests.utils import wait_for_condition

    @shoal.remote
    class Pinger:
        def ping(self):
            return 1

    actor = Pinger.remote()
    shoal.get(actor.ping.remote(), timeout=30)
    assert actor._get_local_state() is ActorState.ALIVE
    shoal.kill(actor)
    wait_for_condition(lambda: actor._get_local_state() is ActorState.DEAD, timeout=30)


def test_actor_method_private_remote(shoal_cluster):
    @shoal.remote
    class Pair:
        def split(self, a, b=0):
            return a, b

    actor = Pair.remote()
    first, second = actor.split._remote(args=["x"], kwargs={"b": 2}, num_returns=2)
    assert shoal.get([first, second], timeout=30) == ["x", 2]
    assert shoal.get(actor.split._remote(args=[1]), timeout=30) == (1, 0)


def test_init_auto_finds_a_cluster_utility_head(tmp_path, monkeypatch):
    """``init(address="auto")`` connects to the head a ``Cluster`` started when no
    other head of this machine is recorded, and says clearly when there is none."""
    if shoal.is_initialized():
        shoal.shutdown()
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    with pytest.raises(ConnectionError, match="found no running cluster"):
        shoal.init(address="auto")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        shoal.init(address="auto")
        assert shoal.get_runtime_context().get_node_id() == cluster.head_node.unique_id
    finally:
        shoal.shutdown()
        cluster.shutdown()
    with pytest.raises(ConnectionError, match="found no running cluster"):
        shoal.init(address="auto")


def test_cluster_address_is_none_before_a_head():
    """Ray's cluster utility: no head yet, no address; connecting needs a head."""
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster()
    try:
        assert cluster.address is None
        with pytest.raises(RuntimeError, match="no head node yet"):
            cluster.connect()
    finally:
        cluster.shutdown()
