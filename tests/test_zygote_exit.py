"""The fork server ends the workers' child processes whichever way it learns that
its node agent is gone.  A killed agent both closes the zygote's socket and sends
it the parent-death SIGTERM; when the EOF came first the zygote used to exit at
once, its workers died of their own parent-death SIGKILL before they could end
their children, and those children lived on (test_node_loss_children failed so,
once in three full suites).  Here the EOF comes alone: the agent's end of the
socket is closed while the "agent" (this test) lives.

The zygote is the real one (``python -m shoal.node.zygote``'s ``serve``); only
the body of the worker it forks is a stand-in (a process with a child of its own),
because a real worker needs a whole node to talk to."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

from tests.utils import pid_gone, wait_for_condition

STAND_IN = textwrap.dedent("""
    import os, subprocess, sys, time
    from shoal.core import worker_main
    from shoal.node import zygote

    def worker_body():
        worker_main.die_with_parent()  # as the real worker does first
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["CHILD_PID_FILE"] + ".tmp", "w") as f:
            f.write(str(child.pid))
        os.rename(os.environ["CHILD_PID_FILE"] + ".tmp", os.environ["CHILD_PID_FILE"])
        time.sleep(600)

    worker_main.main = worker_body
    zygote.serve(int(sys.argv[1]))
""")


def test_the_zygote_ends_the_workers_children_when_its_socket_closes(tmp_path):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, str(theirs.fileno())],
                            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
    theirs.close()
    pid_file = tmp_path / "child.pid"
    worker_pid = child_pid = None
    try:
        out = open(tmp_path / "worker.out", "wb")
        err = open(tmp_path / "worker.err", "wb")
        request = {"spawn": "w1", "env": {"CHILD_PID_FILE": str(pid_file)}}
        socket.send_fds(ours, [json.dumps(request).encode()], [out.fileno(), err.fileno()])
        out.close()
        err.close()
        ours.settimeout(30)
        reply = json.loads(ours.recv(1 << 16))
        assert reply["spawned"] == "w1"
        worker_pid = reply["pid"]
        wait_for_condition(pid_file.exists, timeout=30, message="the worker started its child")
        child_pid = int(pid_file.read_text())
        assert not pid_gone(child_pid)

        ours.close()  # EOF, and no parent-death signal: the agent (we) still runs

        assert proc.wait(timeout=30) == 0
        wait_for_condition(lambda: pid_gone(worker_pid), timeout=30,
                           message="the worker outlived its zygote")
        wait_for_condition(lambda: pid_gone(child_pid), timeout=30,
                           message="the worker's child outlived the zygote's end")
    finally:
        ours.close()
        for pid in (child_pid, worker_pid):
            if pid is not None and not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
