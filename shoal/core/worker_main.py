"""Entry point of a worker process (started by the node agent).

Configuration comes from the environment the agent sets: the cluster token,
the control store and node agent addresses.  The worker dies with its node
agent (parent-death signal, and exit when the agent connection drops).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Get ``sig`` when the parent process dies (Linux's parent-death signal)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() == 1:
            os._exit(1)
    except Exception:
        pass


def main() -> None:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from shoal.core.core_worker import CoreWorker, Mode, WorkerConfig
    from shoal.core.executor import Executor
    from shoal.core.proc_title import set_idle
    from shoal.runtime_env.client import client_for
    from shoal.runtime_env.worker_apply import apply_from_environ

    runtime_env = apply_from_environ()  # before anything else reads the cwd
    env = os.environ
    config = WorkerConfig(
        mode=Mode.WORKER,
        control_address=env["SHOAL_CONTROL_ADDRESS"],
        node_address=env["SHOAL_NODE_ADDRESS"],
        token=env.pop("SHOAL_TOKEN"),  # not left for user code to find
        host=env.get("SHOAL_NODE_HOST", "127.0.0.1"),
        worker_id=env.get("SHOAL_WORKER_ID", ""),
        node_id=env.get("SHOAL_NODE_ID", ""),
    )
    worker = CoreWorker(config)
    executor = Executor(worker)
    worker.executor = executor
    executor.runtime_env = runtime_env
    worker.start()
    worker.runtime_envs = client_for(worker, runtime_env.get("resolved"))
    preload(env.get("SHOAL_PRELOAD_PYTHON_MODULES", ""))
    set_idle(None)  # ray::IDLE until its first task (proc_title.py)
    executor.run_forever()


def preload(modules: str) -> None:
    """Import the node's ``preload_python_modules`` (comma-separated) before the
    first task, as Ray's workers do; one that fails to import is logged and skipped."""
    import importlib

    for name in filter(None, (m.strip() for m in modules.split(","))):
        try:
            importlib.import_module(name)
        except Exception as exc:
            logging.getLogger("shoal.core").warning(
                "could not preload module %r (preload_python_modules): %s: %s", name,
                type(exc).__name__, exc)


if __name__ == "__main__":
    main()
