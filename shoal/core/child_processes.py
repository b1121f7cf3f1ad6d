"""Ending a worker's child processes (what its tasks started with multiprocessing or
subprocess): Ray's default is that they end with the worker
(``RAY_kill_child_processes_on_worker_exit``).  Used by the node when it stops a
worker, by the fork server when the node agent died, and by a worker that lost its
agent."""

from __future__ import annotations

import psutil


def kill_children(pid: int, sig: int) -> None:
    """Send ``sig`` to the direct children of process ``pid``; grandchildren are not
    followed (as Ray)."""
    try:
        children = psutil.Process(pid).children(recursive=False)
    except psutil.Error:
        return
    for child in children:
        try:
            child.send_signal(sig)
        except psutil.Error:
            pass
