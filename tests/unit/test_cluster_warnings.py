"""When the cluster warns a driver, and which driver hears it (pure parts)."""

import io

from shoal.core.cluster_warnings import (
    DriverWarnings,
    PoolSizeWarning,
    QueueWarning,
    WarningType,
    warning,
)


def test_queue_warning_fires_at_the_threshold_then_at_each_doubling():
    q = QueueWarning(first=4)
    assert [n for n in range(1, 20) if q.check(n, "a1")] == [4, 8, 16]
    assert "More than 4 tasks are pending submission to actor a1" in QueueWarning(4).check(5, "a1")


def test_pool_warning_fires_at_four_workers_per_cpu_then_each_doubling():
    p = PoolSizeWarning(cpus=2)
    fired = [n for n in range(1, 70) if p.check(n, "node", "h:1")]
    assert fired == [8, 16, 32, 64]
    jumpy = PoolSizeWarning(cpus=2)  # counts seen out of step: one warning, the next above
    assert [n for n in (3, 9, 40, 50, 63, 64) if jumpy.check(n, "node", "h:1")] == [9, 40, 64]
    assert PoolSizeWarning(cpus=0).check(4, "n", "h:1") is not None  # 0 CPUs counts as 1


def test_a_driver_hears_its_jobs_and_node_wide_warnings_only():
    out = io.StringIO()
    hub = DriverWarnings("job1", stream=out)
    sub = hub.subscribe()
    hub.received(warning(WarningType.EXCESS_QUEUEING, "mine", "job1").wire())
    hub.received(warning(WarningType.EXCESS_QUEUEING, "theirs", "job2").wire())
    hub.received(warning(WarningType.WORKER_POOL_LARGE, "node-wide").wire())
    got = [sub.get(timeout=0), sub.get(timeout=0), sub.get(timeout=0)]
    assert [g.message if g else None for g in got] == ["mine", "node-wide", None]
    assert "mine" in out.getvalue() and "theirs" not in out.getvalue()
    sub.close()
    hub.received(warning(WarningType.WORKER_POOL_LARGE, "after close").wire())
    assert sub.get(timeout=0) is None
