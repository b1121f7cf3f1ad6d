"""``init(address="auto")`` from another process finds a head that ``shoal.init()``
started on this machine (Ray's: a driver's local cluster is found by "auto"), unless
another live head is recorded for it; the record goes with the cluster."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shoal
from shoal.launch import sessions

DRIVER = """
import shoal
shoal.init(address="auto")
print("NODE", shoal.get_runtime_context().get_node_id())
shoal.shutdown()
"""


def test_a_second_driver_joins_an_init_cluster_with_auto(tmp_path, monkeypatch,
                                                         shutdown_only):
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    shoal.init(num_cpus=1, include_dashboard=False)
    node_id = shoal.get_runtime_context().get_node_id()
    out = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"NODE {node_id}" in out.stdout
    shoal.shutdown()
    assert sessions.default_cluster() is None
    with pytest.raises(ConnectionError, match="found no running cluster"):
        shoal.init(address="auto")


def test_an_init_cluster_does_not_take_over_a_recorded_live_head(tmp_path, monkeypatch,
                                                                 shutdown_only):
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    other = {"address": "127.0.0.1:1", "token": "t", "pid": 1, "session": "s"}  # pid 1 lives
    sessions.remember_cluster(other, default=True)
    shoal.init(num_cpus=1, include_dashboard=False)
    assert sessions.default_cluster()["address"] == "127.0.0.1:1"
