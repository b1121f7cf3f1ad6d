"""Starting, tracking and stopping the worker processes of one node.

Workers are started ahead of demand (one per CPU) so the first task does not
pay for interpreter start-up.  A worker is bound to a job at its first lease
(it imports that job's code from the job's ``sys.path``) and is only reused by
the same job.  Its stdout/stderr are pipes read here and forwarded to the
job's driver with a ``(pid=...)`` prefix.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("shoal.node")


@dataclass
class Worker:
    worker_id: str
    proc: asyncio.subprocess.Process
    conn: object = None  # Connection once registered
    address: str = ""
    job_id: str | None = None
    lease_id: int | None = None
    actor_id: str | None = None
    label: str = ""
    blocked: int = 0
    registered: asyncio.Future | None = None
    output_tasks: list = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


class WorkerPool:
    def __init__(
        self,
        env: dict[str, str],
        on_output: Callable[[Worker, str, bytes], None],
        on_exit: Callable[[Worker], None],
    ) -> None:
        self.env = env
        self.on_output = on_output
        self.on_exit = on_exit
        self.workers: dict[str, Worker] = {}
        self.idle: list[Worker] = []
        self.starting = 0  # spawned, not yet registered
        self.closing = False

    async def start_worker(self) -> Worker:
        if self.closing:
            raise RuntimeError("the node is shutting down")
        loop = asyncio.get_running_loop()
        worker_id = os.urandom(8).hex()
        env = dict(os.environ)
        env.update(self.env)
        env["SHOAL_WORKER_ID"] = worker_id
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shoal.core.worker_main",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        worker = Worker(worker_id, proc, registered=loop.create_future())
        self.workers[worker_id] = worker
        if self.closing:  # shutdown began while we were spawning it
            self.kill(worker)
        self.starting += 1
        worker.registered.add_done_callback(self._registered)
        worker.output_tasks = [
            loop.create_task(self._pump(worker, "stdout", proc.stdout)),
            loop.create_task(self._pump(worker, "stderr", proc.stderr)),
        ]
        loop.create_task(self._watch(worker))
        return worker

    def _registered(self, fut: asyncio.Future) -> None:
        self.starting -= 1

    async def _pump(self, worker: Worker, stream: str, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                line = await reader.read(65536)
            if not line:
                return
            self.on_output(worker, stream, line)

    async def _watch(self, worker: Worker) -> None:
        await worker.proc.wait()
        # let the output pumps drain what the worker printed before dying
        await asyncio.gather(*worker.output_tasks, return_exceptions=True)
        self.workers.pop(worker.worker_id, None)
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.registered is not None and not worker.registered.done():
            worker.registered.set_exception(RuntimeError("worker exited before registering"))
            worker.registered.exception()
        self.on_exit(worker)

    def pop_idle(self, job_id: str) -> Worker | None:
        """An idle worker already bound to ``job_id``, else an unbound one."""
        for want in (job_id, None):
            for i, worker in enumerate(self.idle):
                if worker.job_id == want:
                    return self.idle.pop(i)
        return None

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> None:
        try:
            worker.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Kill every worker and reap them (SIGKILL: workers hold nothing that
        needs flushing; their owners see the connection drop)."""
        self.closing = True
        workers = list(self.workers.values())
        for worker in workers:
            self.kill(worker)
        if workers:
            await asyncio.wait(
                [asyncio.ensure_future(w.proc.wait()) for w in workers], timeout=timeout
            )
