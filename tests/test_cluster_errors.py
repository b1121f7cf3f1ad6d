"""Bad situations around joining a cluster get clear, fast errors: a wrong or
missing token (refused before any payload is read, and logged), a head that
does not exist, another shoal version, and a driver with no node on its machine."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

import shoal
from shoal.cluster_utils import Cluster
from shoal.launch import control_client
from shoal.launch.node_process import NodeSpec, NodeStartError, start_node
from shoal.rpc import protocol
from shoal.rpc.messages import Method
from tests.utils import REPO_ROOT, SESSION_TAG_ENV, subprocess_env, wait_for_condition

STORE = 64 << 20


@pytest.fixture(scope="module")
def head():
    """One head for the module (these tests only talk to it)."""
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster(initialize_head=True,
                head_node_args={"num_cpus": 1, "object_store_memory": STORE})
    try:
        yield c
    finally:
        c.shutdown()


def _head_log(cluster: Cluster) -> str:
    text = ""
    for path in glob.glob(os.path.join(cluster.log_dir, f"node-{cluster.head_node.pid}.log")):
        with open(path, errors="replace") as f:
            text += f.read()
    return text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("token", ["wrong-token", None, ""], ids=["wrong", "missing", "empty"])
def test_bad_token_is_refused_before_any_payload_is_read_and_logged(head, token):
    host, port = head.address.split(":")
    key = f"raw-{token}-{time.monotonic_ns()}"
    # the handshake and, in the same segment, a request that would store a value
    handshake = protocol.pack([protocol.MAGIC, protocol.PROTOCOL_VERSION, token, {}])
    request = protocol.encode_request(1, Method.KV_PUT, ["test", key, b"payload", True])
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(handshake + request)
        sock.settimeout(5)
        try:
            reply = sock.recv(65536)
        except ConnectionResetError:
            reply = b""
    assert reply == b"", "the server answered an unauthenticated peer"
    assert control_client.call(head.address, head.token, Method.KV_GET, ["test", key]) is None
    wait_for_condition(
        lambda: f"refused connection from 127.0.0.1:{local_port}: wrong or missing "
                "cluster token" in _head_log(head),
        timeout=5, message="the head logs the refusal")


def test_driver_with_a_wrong_token_is_refused_with_a_clear_error(head):
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"head at {head.address} refused"):
        shoal.init(address=head.address, _token="not-the-token")
    assert time.monotonic() - started < 5
    assert not shoal.is_initialized()


def test_joining_a_head_that_does_not_exist_fails_fast_naming_it(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(NodeStartError, match=f"no shoal head is listening at {address}"):
        start_node(NodeSpec(address=address, num_cpus=1, object_store_memory=STORE),
                   "some-token", "no-head", str(tmp_path), lifeline=True, timeout=30)
    assert time.monotonic() - started < 10
    with pytest.raises(ConnectionError, match=f"no shoal head is listening at {address}"):
        shoal.init(address=address, _token="some-token")
    assert not shoal.is_initialized()


OTHER_VERSION_NODE = """
import sys
import shoal._version as v
v.__version__ = "0.0.1-other"
from shoal.node.main import main
main(sys.argv[1:])
"""


def test_node_with_another_version_is_refused_naming_both(head, tmp_path):
    cmd = NodeSpec(address=head.address, num_cpus=1, object_store_memory=STORE).command(
        "other-version", str(tmp_path), lifeline=False)
    assert cmd[1:3] == ["-P", "-c"] and "shoal.node.main" in cmd[3]
    env = subprocess_env(os.environ[SESSION_TAG_ENV])
    env["SHOAL_TOKEN"] = head.token
    out = subprocess.run([sys.executable, "-c", OTHER_VERSION_NODE, *cmd[4:]], env=env,
                         cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "0.0.1-other" in out.stderr and shoal.__version__ in out.stderr, out.stderr
    # and the head refuses such a node too, whatever the node itself checks
    info = {"node_id": "f" * 28, "address": "127.0.0.1:1", "resources_total": {},
            "resources_available": {}, "version": "0.0.1-other"}
    with pytest.raises(Exception, match="0.0.1-other") as err:
        control_client.call(head.address, head.token, Method.REGISTER_NODE, info)
    assert shoal.__version__ in str(err.value)
    wait_for_condition(lambda: "refused node " + "f" * 28 in _head_log(head), timeout=5)
    alive = [n for n in head.nodes_seen_by_head()]
    assert [n["node_id"] for n in alive] == [head.head_node.node_id]


def test_driver_with_another_version_is_refused_naming_both(head, monkeypatch):
    import shoal._version

    monkeypatch.setattr(shoal._version, "__version__", "0.0.2-other")
    with pytest.raises(protocol.VersionMismatchError) as err:
        shoal.init(address=head.address)
    assert "0.0.2-other" in str(err.value) and shoal.__version__ in str(err.value)
    assert not shoal.is_initialized()


NO_NODE_DRIVER = """
import sys, shoal
try:
    shoal.init(address=sys.argv[1], _token=sys.argv[2])
except ConnectionError as exc:
    print("ERROR", exc, flush=True)
else:
    print("CONNECTED", flush=True)
"""


def test_driver_on_a_machine_without_a_node_gets_a_clear_error(head):
    """A private /dev/shm (mount namespace) makes this process's machine one
    where no node's object store is visible."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give the driver its own /dev/shm")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace: {probe.stderr.decode()[:200]}")
    script = ("mount -t tmpfs tmpfs /dev/shm && exec \"$0\" -c \"$1\" \"$2\" \"$3\"")
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable, NO_NODE_DRIVER, head.address,
         head.token],
        env=subprocess_env(os.environ[SESSION_TAG_ENV]), cwd=str(REPO_ROOT),
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert "ERROR" in out.stdout, out.stdout + out.stderr
    assert "runs on this machine" in out.stdout and "shoal start --address" in out.stdout


def test_a_driver_whose_package_version_was_changed_is_refused_with_a_runtime_error(
        head, monkeypatch):
    """Ray's check reads the package's ``__version__`` (its tests fake it there) and
    raises RuntimeError."""
    monkeypatch.setattr(shoal, "__version__", "0.0.3-other")
    with pytest.raises(RuntimeError, match="0.0.3-other"):
        shoal.init(address=head.address)
    assert not shoal.is_initialized()
