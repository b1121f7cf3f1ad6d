"""Starting a head process for ``shoal.init()`` with no address.

The driver starts ``python -m shoal.node.main --head --lifeline`` in its own
session (so Ctrl-C in the terminal reaches only the driver), holding the
head's stdin: if the driver dies for any reason, the head sees EOF and stops
itself and every worker.  The head announces its address on stdout.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from shoal.core.import_path import own_module_command
from shoal.launch.sessions import (
    READY_PREFIX,
    forget_cluster,
    new_session,
    prune_sessions,
    remember_cluster,
)
from shoal.launch.spilling import remove_spill_dirs


@dataclass
class HeadProcess:
    proc: subprocess.Popen
    address: str
    token: str
    session: str
    node_id: str
    log_dir: str
    store_path: str
    spill_dirs: list[str]

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        forget_cluster(self.address)
        prune_sessions()  # while the head stops
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        # a head that had to be killed could not unlink its arena itself
        try:
            os.unlink(self.store_path)
        except OSError:
            pass
        remove_spill_dirs(self.spill_dirs)
        for stream in (proc.stdout,):
            try:
                stream.close()
            except Exception:
                pass


def launch_head(
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict | None = None,
    object_store_memory: int | None = None,
    memory: float | None = None,
    host: str = "127.0.0.1",
    spilling: list[str] = (),
) -> Callable[[float], HeadProcess]:
    """Start a head process and return at once; call the result (with a timeout)
    to wait until it serves.  ``init`` imports the driver's own modules meanwhile,
    which overlaps ~0.1 s of start-up with the head's.  The resource arguments
    are checked by the caller (:mod:`shoal.launch.resource_args`)."""
    session, log_dir = new_session()
    token = secrets.token_hex(16)
    cmd = own_module_command("shoal.node.main", "--head", "--lifeline", "--session", session,
                             "--host", host, "--log-dir", log_dir)
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        cmd += ["--num-gpus", str(num_gpus)]
    if resources:
        cmd += ["--resources", json.dumps(resources)]
    if object_store_memory is not None:
        cmd += ["--object-store-memory", str(int(object_store_memory))]
    if memory is not None:
        cmd += ["--memory", str(memory)]
    cmd += spilling
    env = dict(os.environ)
    env["SHOAL_TOKEN"] = token
    # Our own processes cache bytecode even where the user's shell disables it:
    # compiling shoal in every new worker costs ~0.1 s of start-up.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    stderr_path = os.path.join(log_dir, "head.err")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
            start_new_session=True,
        )

    def wait_ready(timeout: float) -> HeadProcess:
        try:
            info = _read_ready_line(proc, timeout, stderr_path)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        # other drivers on this machine may join it by its address (as with Ray)
        remember_cluster({"address": info["address"], "token": token, "pid": proc.pid,
                          "session": session}, default=False)
        return HeadProcess(proc, info["address"], token, session, info["node_id"], log_dir,
                           info["store_path"], list(info.get("spill_dirs") or ()))

    return wait_ready


def _read_ready_line(proc: subprocess.Popen, timeout: float, stderr_path: str) -> dict:
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while time.monotonic() < deadline:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.split(b"\n"):
                text = line.decode(errors="replace")
                if text.startswith(READY_PREFIX):
                    return json.loads(text[len(READY_PREFIX):])
    finally:
        selector.close()
    proc.kill()
    proc.wait()
    try:
        with open(stderr_path, errors="replace") as f:
            err = f.read()[-4000:]
    except OSError:
        err = ""
    raise RuntimeError(f"the shoal head process failed to start (exit code {proc.returncode})"
                       f":\n{err}")
