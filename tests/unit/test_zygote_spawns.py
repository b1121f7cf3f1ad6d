"""The agent's end of the fork server under a burst of spawns (issue 3's
1k-actors row hung twice here): a full socket, and the count of starting
workers.  A real socket pair stands in for the zygote process."""

from __future__ import annotations

import asyncio
import json
import os
import socket

from shoal.node.worker_pool import Worker, WorkerPool, Zygote


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def fill(sock: socket.socket) -> int:
    """Send until the socket is full; the number of packets it took."""
    sent = 0
    while True:
        try:
            sock.send(b"x" * 4096)
            sent += 1
        except BlockingIOError:
            return sent


def test_every_spawn_waiting_for_room_is_sent_once_the_socket_drains():
    async def main():
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        zygote = Zygote({})
        zygote.sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), zygote._on_readable)
        filler = fill(ours)
        fds = [os.pipe() for _ in range(20)]
        spawns = [asyncio.ensure_future(zygote.spawn(f"w{i}", {}, w, w))
                  for i, (_r, w) in enumerate(fds)]
        await asyncio.sleep(0)  # let every spawn find the socket full
        assert len(zygote._room_waiters) == 20

        # the zygote (a thread here) drains the filler, then answers each spawn
        seen: list[str] = []
        drained = 0

        def zygote_side():
            nonlocal drained
            while len(seen) < 20:
                data, got_fds, _flags, _addr = socket.recv_fds(theirs, 1 << 20, 2)
                for fd in got_fds:
                    os.close(fd)
                if data.startswith(b"x"):
                    drained += 1
                    continue
                request = json.loads(data)
                seen.append(request["spawn"])
                theirs.send(json.dumps({"spawned": request["spawn"],
                                        "pid": 1000 + len(seen)}).encode())

        await asyncio.to_thread(zygote_side)
        results = await asyncio.gather(*spawns)
        assert drained == filler
        assert sorted(seen) == sorted(f"w{i}" for i in range(20))
        assert sorted(pid for pid, _exited in results) == list(range(1001, 1021))
        assert zygote._room_waiters == []
        asyncio.get_running_loop().remove_reader(ours.fileno())
        for r, w in fds:
            os.close(r)
            os.close(w)
        ours.close()
        theirs.close()

    run(main())


def test_starting_drops_in_the_same_step_as_the_registration():
    async def main():
        pool = WorkerPool({}, on_output=lambda *a: None, on_exit=lambda w: None)
        loop = asyncio.get_running_loop()
        workers = [Worker(f"w{i}", registered=loop.create_future()) for i in range(3)]
        pool.starting = 3
        pool.settle_registration(workers[0])
        assert pool.starting == 2  # not after a loop turn: the agent compares at once
        assert workers[0].registered.result() is workers[0]
        pool.settle_registration(workers[0])  # twice is once
        assert pool.starting == 2
        pool.settle_registration(workers[1], RuntimeError("exited before registering"))
        assert pool.starting == 1
        assert isinstance(workers[1].registered.exception(), RuntimeError)

    run(main())


def test_a_forked_worker_that_cannot_start_exits_non_zero_and_says_why(monkeypatch):
    """A real fork server: a worker whose start raises (here: no control store
    address in its environment) exits with code 1 and its traceback is the
    pool's last start failure.  It used to exit 0 saying nothing, so a broken
    start (the bench's iter_batches row at full size once: two RPC methods
    sharing a number) read as '3 workers ... exited with code 0 before
    registering' with no cause."""
    for name in ("SHOAL_CONTROL_ADDRESS", "SHOAL_NODE_ADDRESS", "SHOAL_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    async def main():
        pool = WorkerPool({}, on_output=lambda *a: None, on_exit=lambda w: None)
        await pool.start()
        try:
            assert pool.zygote is not None and pool.zygote.alive
            worker = await pool.start_worker()
            try:
                await asyncio.wait_for(worker.registered, 30)
                raise AssertionError("the worker registered without a control store")
            except RuntimeError:
                pass
            assert worker.returncode == 1
            assert "KeyError" in pool.last_start_failure
            assert "SHOAL_CONTROL_ADDRESS" in pool.last_start_failure
            assert pool.failed_starts == 1
        finally:
            await pool.shutdown()

    run(main())
