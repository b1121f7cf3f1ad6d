"""What an execution did, for ``Dataset.stats()``: per stage the tasks, rows,
bytes and task times, and for the run its wall time, its memory budget and
the peak of bytes in flight (the number the budget bounds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoal.data.block import BlockMetadata


@dataclass
class StageStats:
    name: str
    tasks: int = 0
    blocks: int = 0
    rows: int = 0
    bytes: int = 0
    task_wall_s: float = 0.0
    task_cpu_s: float = 0.0
    max_task_wall_s: float = 0.0


@dataclass
class ExecutionStats:
    stages: list[StageStats] = field(default_factory=list)
    children: list[ExecutionStats] = field(default_factory=list)
    budget: int = 0
    peak_in_flight: int = 0
    started: float = 0.0
    wall_s: float = 0.0
    _index: dict[int, StageStats] = field(default_factory=dict)

    def start(self, stages: list[Any], budget: int, started: float) -> None:
        self.budget = budget
        self.started = started
        for i, s in enumerate(stages):
            if s.kind.value in ("map", "limit", "exchange"):
                st = StageStats(s.name)
                self.stages.append(st)
                self._index[i] = st

    def task_done(self, stage: int, metas: list[BlockMetadata]) -> None:
        """A task made ``metas``' blocks; the last one's times are the task's."""
        st = self._index.get(stage)
        if st is None:
            return
        st.tasks += 1
        st.blocks += len(metas)
        st.rows += sum(m.num_rows for m in metas)
        st.bytes += sum(m.size_bytes for m in metas)
        if metas:
            st.task_wall_s += metas[-1].wall_s
            st.task_cpu_s += metas[-1].cpu_s
            st.max_task_wall_s = max(st.max_task_wall_s, metas[-1].wall_s)

    def finish(self, schedule: Any, now: float) -> None:
        self.wall_s = now - self.started
        self.peak_in_flight = getattr(schedule, "peak_in_flight", 0)

    def summary(self) -> str:
        lines = []
        for child in self.children:
            lines.append(child.summary())
        for n, st in enumerate(self.stages):
            mean = st.task_wall_s / st.tasks if st.tasks else 0.0
            lines.append(
                f"Operator {n} {st.name}: {st.tasks} tasks executed, {st.blocks} blocks "
                f"produced, {st.rows} rows output, {_mb(st.bytes)} output\n"
                f"* Task wall time: {st.task_wall_s:.3f}s total, {mean * 1000:.1f}ms mean, "
                f"{st.max_task_wall_s * 1000:.1f}ms max; CPU time {st.task_cpu_s:.3f}s")
        lines.append(f"Dataset execution: {self.wall_s:.3f}s wall; blocks in flight peaked at "
                     f"{_mb(self.peak_in_flight)} (budget {_mb(self.budget)})")
        return "\n".join(lines)


def _mb(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB"
