"""GPUs of a node: how many there are, their ids, and which ids a lease gets.

A node's GPU count is ``--num-gpus`` (``init(num_gpus=)``) when given, else
the lines of ``nvidia-smi -L`` (0 when it is missing or fails).  Their ids are
the node's ``CUDA_VISIBLE_DEVICES`` entries if that is set (the node may only
see some of the machine's GPUs), else "0", "1", ...

``GpuInstances`` hands out concrete ids, as Ray does: a request below one GPU
takes a share of a single GPU (the fullest one it fits, so two 0.5 requests
share one id and leave the other GPU whole); a request of n >= 1 takes n
whole free GPUs (and any fraction beyond, a share of one more).  The ids
travel with the lease to the worker, which sets ``CUDA_VISIBLE_DEVICES``
(:mod:`shoal.core.accelerator_env`).  Pure apart from :func:`detect_gpus`.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

DETECT_TIMEOUT_S = 5.0


def detect_gpus() -> int:
    """How many NVIDIA GPUs ``nvidia-smi -L`` lists (0 without the tool)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        out = subprocess.run([tool, "-L"], capture_output=True, text=True,
                             timeout=DETECT_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def gpu_ids(count: float, environ: dict | None = None) -> list[str]:
    """The ids of a node's ``count`` GPUs (a fractional count rounds up)."""
    n = math.ceil(count) if count > 0 else 0
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible:
        listed = [v.strip() for v in visible.split(",") if v.strip()]
        if len(listed) >= n:
            return listed[:n]
    return [str(i) for i in range(n)]


class GpuInstances:
    """Free units per GPU id (``unit``: the units of one whole GPU).  Mutates; loop
    thread only."""

    def __init__(self, capacity: dict[str, int], unit: int) -> None:
        self.unit = unit
        self.capacity = dict(capacity)
        self.free = dict(capacity)

    @classmethod
    def whole(cls, ids: list[str], unit: int) -> GpuInstances:
        return cls({i: unit for i in ids}, unit)

    def _choose(self, units: int) -> list[list] | None:
        UNIT = self.unit  # noqa: N806
        whole, part = divmod(units, UNIT)
        free = self.free
        chosen = [i for i in free if free[i] >= UNIT and free[i] == self.capacity[i]][:whole]
        if len(chosen) < whole:
            return None
        out = [[i, UNIT] for i in chosen]
        if part:
            fitting = [i for i in free if i not in chosen and free[i] >= part]
            if not fitting:
                return None
            out.append([min(fitting, key=lambda i: (free[i], list(free).index(i))), part])
        return out

    def fits(self, units: int) -> bool:
        return self._choose(units) is not None

    def take(self, units: int) -> list[list]:
        """``[[id, units], ...]`` taken for a request of ``units``; ValueError if none."""
        chosen = self._choose(units)
        if chosen is None:
            raise ValueError(f"{units / self.unit:g} GPUs do not fit the free GPUs {self.free}")
        for gpu, amount in chosen:
            self.free[gpu] -= amount
        return chosen

    def give(self, assignment: list) -> None:
        for gpu, amount in assignment:
            if gpu in self.free:
                self.free[gpu] = min(self.capacity[gpu], self.free[gpu] + amount)


def ids_of(assignment: list) -> list[str]:
    """The GPU ids of an assignment, in order, each once."""
    return list(dict.fromkeys(gpu for gpu, _ in assignment))
