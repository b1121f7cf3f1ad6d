"""Starting, tracking and stopping the worker processes of one node.

Workers are forked by the node's zygote (:mod:`shoal.node.zygote`) in a few
milliseconds; if the zygote is unavailable they are exec'd (slower, same
result).  A number of workers are started ahead of demand so the first task
does not wait.  A worker is bound to a job at its first lease (it imports that
job's code from the job's ``sys.path``) and is only reused by the same job.
Its stdout/stderr are pipes read here and forwarded to the job's driver, and
written to its log files (:mod:`shoal.node.worker_logs`).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.core.child_processes import kill_children
from shoal.core.import_path import own_module_command
from shoal.node import zygote as zygote_process
from shoal.node.worker_logs import WorkerLogs
from shoal.runtime_env.setup import WorkerEnv

log = logging.getLogger("shoal.node")

STDERR_TAIL_LINES = 30
# exited workers the state API still lists (Ray lists dead workers with why they ended)
EXITED_KEPT = 1000
# workers in a row that die before registering before the requests waiting for one
# fail (with the last one's stderr) instead of waiting for ever
FAILED_STARTS_LIMIT = 3


@dataclass(frozen=True)
class WorkerUse:
    """What a lease needs of the worker it is given (Worker.can_serve)."""

    for_actor: bool = False
    gpu: bool = False


ANY_TASK = WorkerUse()


@dataclass(eq=False)
class Worker:
    worker_id: str
    pid: int = 0
    exited: asyncio.Future | None = None  # resolves to the exit code
    conn: object = None  # Connection once registered
    address: str = ""
    job_id: str | None = None
    lease_id: int | None = None
    actor_id: str | None = None
    label: str = ""
    env_hash: str = ""  # the runtime env it was started in ("": the node's default)
    reserved: bool = False  # started for one request: not handed to others when it registers
    # what it was leased for (Ray's worker isolation): a worker that ran tasks never
    # hosts an actor, and one that ran GPU work serves only GPU work (and the reverse)
    ran_tasks: bool = False
    gpu: bool | None = None  # None: never leased
    kill_signal: int = 0  # the signal a kill sent (0: none): a dying worker is never reused
    stopped_by_node: bool = False  # a kill meant to stop it (not a clean-up after it died)
    registered: asyncio.Future | None = None
    output_tasks: list = field(default_factory=list)
    # its last lines of stderr: why it died, if it dies before registering
    stderr_tail: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES))

    def can_serve(self, use: WorkerUse) -> bool:
        return (not (use.for_actor and self.ran_tasks)
                and (self.gpu is None or self.gpu == use.gpu))

    def leased_for(self, use: WorkerUse) -> None:
        self.ran_tasks = self.ran_tasks or not use.for_actor
        if self.gpu is None:
            self.gpu = use.gpu

    @property
    def returncode(self) -> int | None:
        if self.exited is not None and self.exited.done():
            return self.exited.result()
        return None


class Zygote:
    """The agent's end of the fork server."""

    def __init__(self, node_env: dict[str, str]) -> None:
        self.node_env = node_env  # sent with every spawn: the zygote may predate it
        self.sock: socket.socket | None = None
        self._room_waiters: list[asyncio.Future] = []  # spawns waiting for socket room
        self.proc: subprocess.Popen | None = None
        self.spawned: dict[str, asyncio.Future] = {}
        self.exits: dict[int, asyncio.Future] = {}
        self.early_exits: dict[int, int] = {}

    def start(self) -> None:
        """Adopt the zygote the node process started first thing, or start one."""
        self.proc, ours = zygote_process.take_early() or zygote_process.launch()
        ours.setblocking(False)
        self.sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable)

    @property
    def alive(self) -> bool:
        return self.sock is not None

    def _on_readable(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if "spawned" in message:
                fut = self.spawned.pop(message["spawned"], None)
                if fut is not None and not fut.done():
                    fut.set_result(message["pid"])
            elif "exited" in message:
                fut = self.exits.pop(message["exited"], None)
                if fut is None:
                    self.early_exits[message["exited"]] = message["code"]
                elif not fut.done():
                    fut.set_result(message["code"])

    def _lost(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            loop.remove_writer(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for room in self._room_waiters:
            if not room.done():
                room.set_result(None)
        for fut in list(self.spawned.values()):
            if not fut.done():
                fut.set_exception(RuntimeError("the zygote died"))
        for fut in list(self.exits.values()):
            if not fut.done():
                fut.set_result(-signal.SIGKILL)  # its children die with it

    async def spawn(
        self, worker_id: str, env: dict, stdout_fd: int, stderr_fd: int
    ) -> tuple[int, asyncio.Future]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.spawned[worker_id] = fut
        message = [json.dumps({"spawn": worker_id, "env": env}).encode()]
        while True:
            if self.sock is None:
                self.spawned.pop(worker_id, None)
                raise RuntimeError("the zygote died")
            try:
                socket.send_fds(self.sock, message, [stdout_fd, stderr_fd])
                break
            except BlockingIOError:  # many spawns at once filled the socket: wait for room
                await self._writable(loop)
            except BaseException:
                self.spawned.pop(worker_id, None)
                raise
        pid = await fut
        exited = loop.create_future()
        if pid in self.early_exits:
            exited.set_result(self.early_exits.pop(pid))
        else:
            self.exits[pid] = exited
        return pid, exited

    async def _writable(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the socket has room.  One writer callback serves every waiting
        spawn: ``add_writer`` keeps a single callback per fd, so a callback per waiter
        would strand all but the last (1000 actor creations at once hung this way)."""
        room = loop.create_future()
        if not self._room_waiters:
            loop.add_writer(self.sock.fileno(), self._on_writable)
        self._room_waiters.append(room)  # _lost wakes them too
        await room

    def _on_writable(self) -> None:
        asyncio.get_running_loop().remove_writer(self.sock.fileno())
        waiters, self._room_waiters = self._room_waiters, []
        for room in waiters:
            if not room.done():
                room.set_result(None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class ExitType(enum.Enum):
    """Why a worker process ended, in Ray's words (``WorkerState.exit_type``)."""

    INTENDED_SYSTEM_EXIT = "INTENDED_SYSTEM_EXIT"  # the node stopped it (idle, kill, shutdown)
    INTENDED_USER_EXIT = "INTENDED_USER_EXIT"  # it ended itself cleanly (exit_actor)
    SYSTEM_ERROR = "SYSTEM_ERROR"  # it crashed or was killed by someone else


def exit_type(returncode: int | None, stopped_by_node: bool) -> ExitType:
    """Pure: the exit type of a worker from its exit code and whether the node
    meant to stop it."""
    if stopped_by_node:
        return ExitType.INTENDED_SYSTEM_EXIT
    if returncode == 0:
        return ExitType.INTENDED_USER_EXIT
    return ExitType.SYSTEM_ERROR


def exit_detail(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"the process was ended by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"the process was ended by signal {-returncode}"
    return f"the process exited with code {returncode}"


class WorkerPool:
    def __init__(
        self,
        env: dict[str, str],
        on_output: Callable[[Worker, str, bytes], None],
        on_exit: Callable[[Worker], None],
        logs: WorkerLogs | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> None:
        self.env = zygote_process.process_env(env)
        self.on_output = on_output
        self.logs = logs  # None: no log files (a node started without a log folder)
        self.on_exit = on_exit
        self.on_started = on_started  # called with the number of worker processes now
        self.workers: dict[str, Worker] = {}
        self.idle: list[Worker] = []
        # (worker, exit type, detail) of the last EXITED_KEPT workers that ended
        self.exited: collections.deque = collections.deque(maxlen=EXITED_KEPT)
        self.starting = 0  # spawned, not yet registered
        self.failed_starts = 0  # workers in a row that died before registering
        self.last_start_failure = ""
        self.closing = False
        self.zygote = Zygote(dict(env)) if os.environ.get("SHOAL_NO_ZYGOTE") != "1" else None

    async def start(self) -> None:
        if self.zygote is not None:
            try:
                self.zygote.start()
            except Exception as exc:
                log.warning("fork server unavailable, workers will be exec'd: %s", exc)
                self.zygote = None

    async def start_worker(self, env: WorkerEnv | None = None) -> Worker:
        """Start a worker; in ``env`` (a runtime env) if given: forked with its
        variables, or exec'd with its interpreter (a pip env)."""
        if self.closing:
            raise RuntimeError("the node is shutting down")
        loop = asyncio.get_running_loop()
        worker = Worker(os.urandom(8).hex(), registered=loop.create_future())
        extra = {}
        if env is not None:
            worker.env_hash, worker.reserved = env.env_hash, True
            extra = env.process_env()
        self.workers[worker.worker_id] = worker
        if env is None:
            self.starting += 1
        try:
            if self.zygote is not None and self.zygote.alive and (env is None
                                                                  or env.python is None):
                await self._fork(worker, extra)
            else:
                await self._exec(worker, extra, env.python if env is not None else None)
        except BaseException:
            self.workers.pop(worker.worker_id, None)
            self.settle_registration(worker, RuntimeError("worker failed to start"))
            raise
        if self.logs is not None:
            self.logs.opened(worker)
        if self.on_started is not None:
            self.on_started(len(self.workers))
        if self.closing:  # shutdown began while we were spawning it
            self.kill(worker)
        loop.create_task(self._watch(worker))
        return worker

    async def _fork(self, worker: Worker, extra: dict[str, str]) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            worker.pid, worker.exited = await self.zygote.spawn(
                worker.worker_id,
                {**self.zygote.node_env, **extra, "SHOAL_WORKER_ID": worker.worker_id},
                out_w, err_w)
        except BaseException:
            os.close(out_r)  # the read ends leaked on every failed spawn (EAGAIN)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        worker.output_tasks = [
            asyncio.get_running_loop().create_task(self._pump_fd(worker, "stdout", out_r)),
            asyncio.get_running_loop().create_task(self._pump_fd(worker, "stderr", err_r)),
        ]

    async def _exec(self, worker: Worker, extra: dict[str, str],
                    python: str | None = None) -> None:
        env = {**self.env, **extra}
        env["SHOAL_WORKER_ID"] = worker.worker_id
        proc = await asyncio.create_subprocess_exec(
            *own_module_command("shoal.core.worker_main", python=python),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )
        worker.pid = proc.pid
        worker.exited = asyncio.ensure_future(proc.wait())
        worker.output_tasks = [
            asyncio.get_running_loop().create_task(self._pump(worker, "stdout", proc.stdout)),
            asyncio.get_running_loop().create_task(self._pump(worker, "stderr", proc.stderr)),
        ]

    def settle_registration(self, worker: Worker, error: Exception | None = None) -> None:
        """The worker registered (or never will).  ``starting`` drops at once, not in a
        done-callback: the agent compares it with its waiters in the same step, and a
        late decrement let a request wait for a start that nobody made."""
        if worker.registered is None or worker.registered.done():
            return
        if not worker.env_hash:  # env workers are not counted (see start_worker)
            self.starting -= 1
        if error is None:
            self.failed_starts = 0
            worker.registered.set_result(worker)
        else:
            worker.registered.set_exception(error)
            worker.registered.exception()  # retrieved: nobody else may await it

    async def _pump_fd(self, worker: Worker, stream: str, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
        try:
            await self._pump(worker, stream, reader)
        finally:
            transport.close()

    async def _pump(self, worker: Worker, stream: str, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                line = await reader.read(65536)
            if not line:
                return
            if stream == "stderr":
                worker.stderr_tail.append(line)
            if self.logs is not None:
                self.logs.write(worker, stream, line)
            self.on_output(worker, stream, line)

    async def _watch(self, worker: Worker) -> None:
        await worker.exited
        # let the output pumps drain what the worker printed before dying
        await asyncio.wait(worker.output_tasks, timeout=2)
        if self.logs is not None:
            self.logs.closed(worker)
        self.workers.pop(worker.worker_id, None)
        self.exited.append((worker, exit_type(worker.returncode, worker.stopped_by_node),
                            exit_detail(worker.returncode)))
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.registered is not None and not worker.registered.done():
            self.failed_starts += 0 if worker.env_hash else 1
            stderr = b"".join(worker.stderr_tail).decode(errors="replace").strip()[-2000:]
            self.last_start_failure = (
                f"worker pid={worker.pid} exited with code {worker.returncode} before "
                f"registering" + (f": {stderr}" if stderr else ""))
            log.warning("%s", self.last_start_failure)
        self.settle_registration(worker, RuntimeError("worker exited before registering"))
        self.on_exit(worker)

    def pop_idle(self, job_id: str, env_hash: str = "",
                 use: WorkerUse = ANY_TASK) -> Worker | None:
        """An idle worker of that runtime env already bound to ``job_id``, else an
        unbound one, that can serve ``use``: the one idle the shortest time, as Ray
        (a sync loop of differently shaped tasks keeps using one warm worker)."""
        idle = self.idle
        for want in (job_id, None):
            for i in range(len(idle) - 1, -1, -1):
                worker = idle[i]
                if (worker.job_id == want and worker.env_hash == env_hash
                        and not worker.kill_signal
                        and worker.can_serve(use)):
                    return idle.pop(i)
        return None

    def kill(self, worker: Worker, sig: int = signal.SIGKILL, intended: bool = True) -> None:
        """``intended``: the node stops a live worker; False: a clean-up after its
        connection closed (it is most likely dying already: not the node's doing)."""
        if worker.pid and worker.returncode is None:
            worker.kill_signal = sig
            worker.stopped_by_node = worker.stopped_by_node or intended
            if worker in self.idle:
                self.idle.remove(worker)
            kill_children(worker.pid, sig)  # it cannot: it gets no chance to run
            try:
                os.kill(worker.pid, sig)
            except ProcessLookupError:
                pass

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Kill every worker and reap them (SIGKILL: workers hold nothing that
        needs flushing; their owners see the connection drop)."""
        self.closing = True
        workers = list(self.workers.values())
        for worker in workers:
            self.kill(worker)
        waits = [w.exited for w in workers if w.exited is not None]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        if self.zygote is not None:
            self.zygote.stop()
