"""Fork server: a pre-imported process that forks new workers in milliseconds.

Starting a Python worker with exec costs ~0.3-0.5 s on this machine
(interpreter, site, imports of asyncio/cloudpickle/numpy/shoal).  The node
agent instead starts one *zygote* that imports all of that once, then forks a
worker per request: the child inherits the imports (copy-on-write) and is ready
in ~10 ms.

Protocol over a SOCK_SEQPACKET socket pair (one message per packet)::

    agent                                   zygote
      | {"spawn": worker_id, "env": {...}} + [stdout fd, stderr fd]
      | ------------------------------------> |  fork; child dup2s the fds,
      | <------------------------------------ |  {"spawned": worker_id, "pid": N}
      | <------------------------------------ |  {"exited": N, "code": C}  (SIGCHLD)

The zygote is single-threaded and never runs an event loop, so forking it is
safe.  It dies with the agent (parent-death signal, and EOF on the socket); its
children die with it the same way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from shoal.core.import_path import own_module_command

MAX_MESSAGE = 1 << 20
NUMPY_AFTER_IDLE_S = 0.2
NUMPY_AFTER_FORKS = 8  # ... or after this many forks of one long burst

_early: tuple | None = None  # (process, agent's socket) from launch_early


def process_env(node_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the processes a node starts (the zygote, exec'd workers)."""
    env = dict(os.environ)
    env.update(node_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    # our own processes cache bytecode even where the user's shell disables it
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def launch():
    """Start a fork server; returns (its Popen, the agent's end of its socket).
    Node-specific variables (addresses, node id) travel with each spawn request,
    so it can start before the agent knows them."""
    import subprocess

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        proc = subprocess.Popen(
            own_module_command("shoal.node.zygote", str(theirs.fileno())),
            pass_fds=[theirs.fileno()], env=process_env(), stdin=subprocess.DEVNULL)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def launch_early() -> None:
    """Called first thing in a node process: the zygote imports (~0.15 s) while
    the agent does; the agent's pool adopts it (take_early)."""
    global _early
    if os.environ.get("SHOAL_NO_ZYGOTE") != "1":
        try:
            _early = launch()
        except OSError:
            _early = None  # the pool will try again, and fall back to exec


def take_early():
    global _early
    early, _early = _early, None
    return early


def _send(sock: socket.socket, message: dict) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:
        _agent_gone()


_workers: set[int] = set()  # the workers this zygote forked that have not exited


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _workers.discard(pid)
        _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _agent_gone(*_args) -> None:
    """The node agent is gone (its parent-death SIGTERM, or EOF on its socket,
    whichever comes first): nobody is left to stop the workers' child processes
    (what their tasks started), so end them; the workers themselves get their
    parent-death SIGKILL as this process exits, before they could end them."""
    from shoal.core.child_processes import kill_children

    for pid in list(_workers):
        kill_children(pid, signal.SIGKILL)
    os._exit(0)


def _child(sock: socket.socket, request: dict, fds: list[int]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    sock.close()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in (devnull, *fds):
        os.close(fd)
    os.environ.update(request["env"])
    from shoal.core import worker_main

    code = 0
    try:
        worker_main.main()
    except BaseException:  # its stderr is the worker's log: say why it could not start
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _preimport_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass


def serve(fd: int) -> None:
    from shoal.core import worker_main

    signal.signal(signal.SIGTERM, _agent_gone)
    worker_main.die_with_parent(signal.SIGTERM)
    sock = socket.socket(fileno=fd)
    # everything a worker imports, imported once here
    from shoal.core import executor  # noqa: F401

    signal.signal(signal.SIGCHLD, lambda *_: _reap(sock))
    # numpy (~70 ms) is imported once the first burst of requests is served, or
    # after the first NUMPY_AFTER_FORKS forks of a long burst, so the first workers
    # are not delayed by it and later ones inherit it.  (1000 actors of a class
    # in a module that imports numpy each imported it themselves: ~100 s of CPU.)
    sock.settimeout(NUMPY_AFTER_IDLE_S)
    forks = 0
    while True:
        if forks == NUMPY_AFTER_FORKS:
            _preimport_numpy()
            sock.settimeout(None)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 2)
        except InterruptedError:
            continue
        except TimeoutError:
            _preimport_numpy()
            sock.settimeout(None)
            continue
        except OSError:
            break
        if not data:
            break
        request = json.loads(data)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                _child(sock, request, fds)
            _workers.add(pid)
            forks += 1
            for f in fds:
                os.close(f)
            _send(sock, {"spawned": request["spawn"], "pid": pid})
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        _reap(sock)
    _agent_gone()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
