"""GPUs: ids per task and actor, CUDA_VISIBLE_DEVICES, fractional sharing, ids
returning to the pool, GPUs in placement-group bundles, and detection.  The
machine has no GPU: the cluster declares two (``init(num_gpus=2)``)."""

from __future__ import annotations

import os
import stat

import pytest

import shoal
from shoal.node.accelerators import GpuInstances, detect_gpus, gpu_ids
from shoal.util import placement_group, remove_placement_group
from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 2, "num_gpus": 2}
UNIT = 10_000


# ---- pure parts ---------------------------------------------------------------------------
def test_fractional_requests_share_one_gpu_and_whole_ones_take_free_gpus():
    gpus = GpuInstances.whole(["0", "1"], UNIT)
    assert gpus.take(UNIT // 2) == [["0", UNIT // 2]]
    assert gpus.take(UNIT // 2) == [["0", UNIT // 2]]  # the fuller GPU first
    assert gpus.fits(UNIT) and not gpus.fits(2 * UNIT)
    whole = gpus.take(UNIT)
    assert whole == [["1", UNIT]]
    assert not gpus.fits(1)
    gpus.give(whole)
    assert gpus.take(UNIT // 4) == [["1", UNIT // 4]]


def test_ids_come_from_cuda_visible_devices_when_set():
    assert gpu_ids(2, {}) == ["0", "1"]
    assert gpu_ids(2, {"CUDA_VISIBLE_DEVICES": "3,5,7"}) == ["3", "5"]
    assert gpu_ids(0, {}) == []


def test_detection_counts_the_gpus_nvidia_smi_lists(tmp_path, monkeypatch):
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-1)'\n"
                    "echo 'GPU 1: Fake (UUID: GPU-2)'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpus() == 2
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert detect_gpus() == 0


# ---- a cluster with two declared GPUs ---------------------------------------------------
@shoal.remote
def visible():
    return (os.environ.get("CUDA_VISIBLE_DEVICES"), shoal.get_gpu_ids(),
            shoal.get_runtime_context().get_accelerator_ids())


@shoal.remote
class Holder:
    def ids(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES"), shoal.get_gpu_ids()


def test_a_task_sees_its_gpu_and_a_task_without_gpus_sees_none(shoal_cluster):
    env, ids, accelerators = shoal.get(visible.options(num_gpus=1).remote(), timeout=20)
    assert ids in ([0], [1]) and env == str(ids[0])
    assert accelerators == {"GPU": [env]}
    env, ids, accelerators = shoal.get(visible.options(num_gpus=2).remote(), timeout=20)
    assert env == "0,1" and ids == [0, 1]
    # the same workers, reused: a task without GPUs gets the variable back unset
    for _ in range(3):
        assert shoal.get(visible.remote(), timeout=20) == (None, [], {"GPU": []})
    assert shoal.get_gpu_ids() == []  # the driver


def test_fractional_actors_share_and_ids_return_to_the_pool(shoal_cluster):
    halves = [Holder.options(num_gpus=0.5).remote() for _ in range(2)]
    whole = Holder.options(num_gpus=1).remote()
    half_ids = shoal.get([h.ids.remote() for h in halves], timeout=30)
    assert half_ids[0] == half_ids[1]  # two halves on one GPU
    whole_env, whole_ids = shoal.get(whole.ids.remote(), timeout=30)
    assert whole_ids != half_ids[0][1] and whole_env == str(whole_ids[0])
    waiting = Holder.options(num_gpus=1).remote()  # no whole GPU is free
    assert shoal.wait([waiting.ids.remote()], timeout=0.5)[0] == []
    shoal.kill(whole)
    assert shoal.get(waiting.ids.remote(), timeout=30) == (whole_env, whole_ids)
    for h in [*halves, waiting]:
        shoal.kill(h)
    wait_for_condition(lambda: shoal.available_resources().get("GPU") == 2.0, timeout=15)
    assert shoal.get(visible.options(num_gpus=2).remote(), timeout=20)[1] == [0, 1]


def test_a_bundle_reserves_its_gpu(shoal_cluster):
    pg = placement_group([{"GPU": 1}])
    assert pg.wait(10)
    inside = PlacementGroupSchedulingStrategy(pg, 0)
    env, ids, _ = shoal.get(visible.options(num_cpus=0, num_gpus=1, scheduling_strategy=inside)
                            .remote(), timeout=20)
    outside = Holder.options(num_gpus=1).remote()
    other_env, other_ids = shoal.get(outside.ids.remote(), timeout=20)
    assert {env, other_env} == {"0", "1"}
    with pytest.raises(ValueError, match="cannot fit"):
        visible.options(num_gpus=2, scheduling_strategy=inside).remote()
    shoal.kill(outside)
    remove_placement_group(pg)
