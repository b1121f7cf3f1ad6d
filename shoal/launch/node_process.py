"""Starting one node process (a head, or a node joining one) and stopping it.

``shoal start`` starts nodes *detached*: the process outlives the command, in
its own session, with stdin from /dev/null.  ``cluster_utils.Cluster`` starts
them *attached*: the node holds a lifeline pipe to its starter and exits when
the starter dies, so a test process that is killed takes its cluster with it.

Either way the node's stdout and stderr go to files in the session's log
directory, and the starter polls the stdout file for the ``SHOAL_READY {...}``
line (see :mod:`shoal.node.main`).  If the process exits first, its stderr
(which holds the reason, e.g. "no shoal head is listening at ...") becomes the
message of a :class:`NodeStartError`.

Stopping: :meth:`NodeProcess.stop` asks politely (SIGTERM: the agent stops its
workers and unlinks its arena), and :meth:`NodeProcess.kill` kills the agent
and every descendant (zygote, workers) with SIGKILL, then unlinks the arena and
removes the spill folders the agent could not remove itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil

from shoal.core.import_path import own_module_command
from shoal.launch.sessions import READY_PREFIX, process_matches
from shoal.launch.spilling import preload_options, remove_spill_dirs, spilling_options

READY_POLL_S = 0.01


class NodeStartError(RuntimeError):
    """A node process exited, or did not become ready, during start-up."""


@dataclass
class NodeSpec:
    """What to start: ``head=True``, or ``address`` of the head to join."""

    head: bool = False
    address: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict = field(default_factory=dict)
    object_store_memory: int | None = None
    memory: float | None = None
    node_timeout_s: float | None = None  # head only
    prestart: int | None = None
    object_spilling_directory: str | list[str] | None = None
    object_spilling_threshold: float | None = None
    min_spilling_size: int | None = None
    preload_python_modules: list[str] | None = None  # every worker imports them first

    def command(self, session: str, log_dir: str, lifeline: bool) -> list[str]:
        if self.head == bool(self.address):
            raise ValueError("a node is either a head or joins one at an address")
        cmd = own_module_command("shoal.node.main", "--session", session,
                                 "--host", self.host, "--port", str(self.port),
                                 "--log-dir", log_dir)
        cmd += ["--head"] if self.head else ["--address", str(self.address)]
        if lifeline:
            cmd.append("--lifeline")
        if self.num_cpus is not None:
            cmd += ["--num-cpus", str(float(self.num_cpus))]
        if self.num_gpus is not None:
            cmd += ["--num-gpus", str(float(self.num_gpus))]
        if self.resources:
            cmd += ["--resources", json.dumps(self.resources)]
        if self.object_store_memory is not None:
            cmd += ["--object-store-memory", str(int(self.object_store_memory))]
        if self.memory is not None:
            cmd += ["--memory", str(float(self.memory))]
        if self.node_timeout_s is not None and self.head:
            cmd += ["--node-timeout-s", str(float(self.node_timeout_s))]
        if self.prestart is not None:
            cmd += ["--prestart", str(int(self.prestart))]
        return cmd + spilling_options(self.object_spilling_directory,
                                      self.object_spilling_threshold, self.min_spilling_size
                                      ) + preload_options(self.preload_python_modules)


@dataclass(frozen=True)
class _Pid:
    pid: int


@dataclass(frozen=True)
class ProcessInfo:
    """One process of a node (Ray's shape: ``.process.pid``)."""

    process: Any


@dataclass(eq=False)
class NodeProcess:
    """A running node process started by this machine; also rebuilt from a record."""

    pid: int
    address: str
    control_address: str
    node_id: str
    store_path: str
    log_dir: str
    head: bool
    create_time: float | None = None
    popen: subprocess.Popen | None = None
    spill_dirs: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        role = "head" if self.head else "node"
        return f"<{role} {self.node_id[:8]} at {self.address} pid={self.pid}>"

    @property
    def unique_id(self) -> str:
        """Ray's name for the node's id (its cluster utility's nodes have it): the
        hex string ``get_runtime_context().get_node_id()`` gives inside the node."""
        return self.node_id

    @property
    def all_processes(self) -> dict[str, list[ProcessInfo]]:
        """Ray's cluster utility name: the node's processes by Ray's role names.  A
        shoal node is one process: its agent ("raylet") and, on the head, also the
        control store ("gcs_server")."""
        info = ProcessInfo(self.popen if self.popen is not None else _Pid(self.pid))
        return {"raylet": [info], "gcs_server": [info]} if self.head else {"raylet": [info]}

    def kill_raylet(self) -> None:
        """Ray's cluster utility name: the node dies abruptly (its agent and the
        processes it started are SIGKILLed), without being removed from the cluster,
        which learns of it as of any failed node."""
        self.kill()

    def record(self) -> dict:
        return {"pid": self.pid, "address": self.address,
                "control_address": self.control_address, "node_id": self.node_id,
                "store_path": self.store_path, "log_dir": self.log_dir, "head": self.head,
                "create_time": self.create_time, "spill_dirs": self.spill_dirs}

    @classmethod
    def from_record(cls, record: dict) -> NodeProcess:
        return cls(record["pid"], record["address"], record["control_address"],
                   record["node_id"], record["store_path"], record["log_dir"],
                   bool(record["head"]), record.get("create_time"),
                   spill_dirs=list(record.get("spill_dirs") or ()))

    def is_alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return process_matches(self.pid, self.create_time)

    def processes(self) -> list[psutil.Process]:
        """The agent and its descendants (fork server, workers) still running."""
        if not self.is_alive():
            return []
        try:
            agent = psutil.Process(self.pid)
            return [agent, *agent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def terminate(self) -> None:
        """Ask the node to stop (SIGTERM): it stops its workers, unlinks its arena."""
        procs = self.processes()
        if procs:
            for sig in (signal.SIGTERM, signal.SIGCONT):  # CONT: in case it was stopped
                _signal(procs[0], sig)

    def stop(self, timeout: float = 10.0, procs: list[psutil.Process] | None = None) -> bool:
        """SIGTERM, then SIGKILL whatever is left after ``timeout``; True if the
        node stopped by itself.  ``procs``: its processes, if listed earlier."""
        procs = self.processes() if procs is None else procs
        if procs:
            self.terminate()
            _wait_gone(procs[:1], timeout)
        graceful = not any(_running(p) for p in procs[:1])
        self.kill(procs)
        return graceful

    def kill(self, procs: list[psutil.Process] | None = None, timeout: float = 10.0) -> None:
        """SIGKILL the agent and every descendant, wait for them, unlink the arena."""
        procs = self.processes() if procs is None else procs
        for proc in procs:
            _signal(proc, signal.SIGKILL)
        _wait_gone(procs, timeout)
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            if self.popen.stdin is not None:
                try:
                    self.popen.stdin.close()
                except OSError:
                    pass
        try:
            os.unlink(self.store_path)
        except OSError:
            pass
        remove_spill_dirs(self.spill_dirs)


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Until none of ``procs`` runs.  A zombie counts as gone: a detached node's
    parent is init, which may take a second or two to reap it."""
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.005)


def start_node(spec: NodeSpec, token: str, session: str, log_dir: str, *, lifeline: bool,
               timeout: float = 30.0) -> NodeProcess:
    """Start a node process and wait until it is registered and serving."""
    os.makedirs(log_dir, exist_ok=True)
    stem = os.path.join(log_dir, f"{'head' if spec.head else 'node'}-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ)
    env["SHOAL_TOKEN"] = token
    # Our processes cache bytecode even where the user's shell disables it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with open(stem + ".out", "wb") as out, open(stem + ".err", "wb") as err:
        popen = subprocess.Popen(
            spec.command(session, log_dir, lifeline),
            stdin=subprocess.PIPE if lifeline else subprocess.DEVNULL,
            stdout=out, stderr=err, env=env, start_new_session=True,
        )
    try:
        ready = _wait_ready(popen, stem, timeout)
    except BaseException:
        if popen.poll() is None:
            NodeProcess(popen.pid, "", "", "", "", log_dir, spec.head, popen=popen).kill()
        raise
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = None
    return NodeProcess(
        pid=popen.pid, address=ready["address"], control_address=ready["control_address"],
        node_id=ready["node_id"], store_path=ready["store_path"], log_dir=log_dir,
        head=spec.head, create_time=create_time, popen=popen,
        spill_dirs=list(ready.get("spill_dirs") or ()),
    )


def _wait_ready(popen: subprocess.Popen, stem: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    seen = b""
    with open(stem + ".out", "rb") as out:
        while True:
            seen += out.read()
            for line in seen.split(b"\n")[:-1]:
                text = line.decode(errors="replace")
                if text.startswith(READY_PREFIX):
                    return json.loads(text[len(READY_PREFIX):])
            if popen.poll() is not None:
                raise NodeStartError(_failure(popen, stem))
            if time.monotonic() >= deadline:
                raise NodeStartError(f"the node process (pid {popen.pid}) did not become "
                                     f"ready within {timeout:g} s; see {stem}.err")
            time.sleep(READY_POLL_S)


def _failure(popen: subprocess.Popen, stem: str) -> str:
    try:
        with open(stem + ".err", errors="replace") as f:
            err = f.read().strip()
    except OSError:
        err = ""
    lines = [line for line in err.splitlines() if line.startswith("shoal: error: ")]
    if lines:  # a clean refusal: the node said why
        return lines[-1][len("shoal: error: "):]
    return (f"the node process exited with code {popen.returncode} during start-up"
            + (f":\n{err[-4000:]}" if err else ""))
