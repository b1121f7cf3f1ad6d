"""A worker that was sent a kill is never handed out again, even before it has
exited: a placement group's removal kills its leases' workers, and a lease
returned meanwhile used to put the dying worker back in the idle list, where the
next actor took it and died in its constructor."""

from __future__ import annotations

import subprocess
import sys

from shoal.node.worker_pool import Worker, WorkerPool


def test_a_killed_worker_is_never_handed_out_again():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pool = WorkerPool({}, on_output=lambda *a: None, on_exit=lambda w: None)
        worker = Worker("w1", pid=proc.pid)
        pool.idle.append(worker)
        pool.kill(worker)
        assert worker.kill_signal
        assert worker not in pool.idle
        pool.idle.append(worker)  # as a lease returned before the exit was seen would
        assert pool.pop_idle("job") is None
    finally:
        proc.kill()
        proc.wait()
