"""Object transfer and spillback numbers for docs/design.md (issue 4, part B).

    PYTHONPATH=. python scripts/measure_transfer.py [--size-mib 1024] [--runs 3]

1. A raw socket copy of SIZE bytes between two processes on this machine (TCP
   loopback, and the abstract Unix socket shoal uses between same-machine
   peers): a sender writes from a touched buffer in 8 MiB sends, the receiver
   ``recv_into`` a /dev/shm mapping, fresh ("cold": its pages fault in during
   the copy) or already touched ("warm").
2. The same SIZE as a numpy array ``put`` by a driver on the head and ``get``
   by an actor on a second node (a pull between two node agents): timed inside
   the actor, so it includes the owner lookup and the pull.  "cold" is the
   first pull into that node's fresh arena, "warm" a second object after the
   first was freed (the arena pages are reused).
3. Lease latency: REQUEST_LEASE round trip to the driver's own agent (granted
   there) against one that the local agent spills to another node (request,
   spill reply, request to that node's agent, grant), median of 50.
"""

from __future__ import annotations

import argparse
import mmap
import os
import socket
import statistics
import sys
import time

CHUNK = 8 << 20


def raw_copy(size: int, family: str, warm: bool) -> float:
    """GB/s of one SIZE copy through a socket into a /dev/shm mapping."""
    if family == "unix":
        a, b = socket.socketpair()
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
    pid = os.fork()
    if pid == 0:
        try:
            src = bytearray(size)
            src[::4096] = b"x" * len(src[::4096])
            s = a if family == "unix" else socket.create_connection(listener.getsockname())
            s.recv(1)
            view = memoryview(src)
            for off in range(0, size, CHUNK):
                s.sendall(view[off:off + CHUNK])
            s.recv(1)
        finally:
            os._exit(0)
    conn = b if family == "unix" else listener.accept()[0]
    path = f"/dev/shm/shoal-measure-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        dst = mmap.mmap(fd, size)
        view = memoryview(dst)
        if warm:
            view[::4096] = b"y" * len(view[::4096])
        start = time.perf_counter()
        conn.send(b"g")
        got = 0
        while got < size:
            got += conn.recv_into(view[got:], min(size - got, CHUNK))
        took = time.perf_counter() - start
        conn.send(b"d")
        os.waitpid(pid, 0)
        view.release()
        dst.close()
    finally:
        os.close(fd)
        os.unlink(path)
    return size / took / 1e9


def shoal_pulls(size: int, runs: int) -> tuple[list[float], list[float], list[float], list[float]]:
    import numpy as np

    import shoal
    from shoal.cluster_utils import Cluster
    from shoal.core import context
    from shoal.rpc.messages import Method

    store = size + size // 2 + (64 << 20)

    @shoal.remote
    class Reader:
        def read(self, boxed: list) -> float:
            start = time.perf_counter()
            x = shoal.get(boxed[0], timeout=300)
            took = time.perf_counter() - start
            assert x.nbytes == size
            return took

    cold, warm = [], []
    local_lease, spilled_lease = [], []
    for _ in range(runs):
        with Cluster(initialize_head=True, head_node_args={
                "num_cpus": 1, "object_store_memory": store}) as cluster:
            cluster.add_node(num_cpus=1, resources={"other": 10}, object_store_memory=store)
            cluster.connect()
            try:
                reader = Reader.options(resources={"other": 1}).remote()
                for series in (cold, warm):
                    ref = shoal.put(np.ones(size, dtype=np.uint8))
                    series.append(size / shoal.get(reader.read.remote([ref]), timeout=600) / 1e9)
                    del ref
                    time.sleep(0.5)  # let both copies be freed before the next object
                worker = context.current_worker_or_none()
                local_lease.extend(_lease_times(worker, {"CPU": 1}, Method))
                spilled_lease.extend(_lease_times(worker, {"other": 1}, Method))
            finally:
                shoal.shutdown()
    return cold, warm, local_lease, spilled_lease


def _lease_times(worker, shape: dict, method) -> list[float]:
    async def once() -> float:
        start = time.perf_counter()
        conn = worker.node
        body = [worker.job_id, shape, "measure", None, False]
        grant = await conn.call(method.REQUEST_LEASE, body)
        while isinstance(grant, dict):
            conn = await worker.peer(grant["spill"][1])
            body[4] = True
            grant = await conn.call(method.REQUEST_LEASE, body)
        took = time.perf_counter() - start
        conn.notify(method.RETURN_LEASE, [grant[0], False])
        return took

    times = []
    for _ in range(50):
        times.append(worker.call(once, timeout=30))
        time.sleep(0.005)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    size = args.size_mib << 20
    print(f"size {args.size_mib} MiB, {args.runs} runs, load {os.getloadavg()[0]:.2f}")
    for family in ("tcp", "unix"):
        for warm in (False, True):
            rates = [raw_copy(size, family, warm) for _ in range(args.runs)]
            print(f"raw {family:4s} {'warm' if warm else 'cold'}: median "
                  f"{statistics.median(rates):.2f} GB/s  {[round(r, 2) for r in rates]}")
    cold, warm, local, spilled = shoal_pulls(size, args.runs)
    for name, rates in (("cold", cold), ("warm", warm)):
        print(f"shoal pull {name}: median {statistics.median(rates):.2f} GB/s  "
              f"{[round(r, 2) for r in rates]}")
    print(f"lease local: median {statistics.median(local) * 1e3:.2f} ms; spilled: median "
          f"{statistics.median(spilled) * 1e3:.2f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
