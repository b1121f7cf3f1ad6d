"""Unit tests for shoal.rpc.read_lending: a thread waiting for a reply reads the
connection itself (real sockets, a real loop, a real borrowing thread).

The client router drains a command queue before handling received data, as the
core worker's does (``Router.before_receive``); ``post``/``post_lazy`` append to
it, which is the contract ``read_in_thread`` relies on for ordering.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import socket
import threading
import time

from shoal.rpc import read_lending
from shoal.rpc.messages import Method
from shoal.rpc.read_lending import ReadLending
from shoal.rpc.transport import ConnectionLostError, DeferredReply, Router, connect
from tests.unit.test_transport import HOST, TOKEN, T, run, server


class Client:
    """A lendable client connection and the loop-side command queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.commands: collections.deque = collections.deque()
        self.router = Router()
        self.router.before_receive = self.drain
        self.notified: list = []
        self.router.add(Method.PUBLISH_LOGS, lambda conn, body: self.notified.append(body))
        self.conn = None
        self.lending = ReadLending(loop)

    async def open(self, port: int) -> None:
        self.conn = await connect(self.router, TOKEN, HOST, port)
        self.conn.lend_reads(self.lending)

    def drain(self) -> None:
        while self.commands:
            fn, args = self.commands.popleft()
            fn(*args)

    def post(self, fn, *args) -> None:  # any thread: run on the loop, soon
        self.commands.append((fn, args))
        self.loop.call_soon_threadsafe(self.drain)

    def post_lazy(self, fn, *args) -> None:  # any thread: run before the next receive
        self.commands.append((fn, args))

    async def close(self) -> None:
        self.conn.close()
        await asyncio.wait_for(self.conn.closed, T)
        self.lending.close()


class Server:
    """KV_GET is answered only when the test says so; KV_PUT echoes at once."""

    def __init__(self) -> None:
        self.held: list = []  # (conn, DeferredReply, body)
        self.arrived = asyncio.Event()
        self.router = Router()
        self.router.add(Method.KV_GET, self._hold)
        self.router.add(Method.KV_PUT, lambda conn, body: ["echo", body])

    def _hold(self, conn, body):
        reply = DeferredReply()
        self.held.append((conn, reply, body))
        self.arrived.set()
        return reply

    async def request(self):
        """The held request, once it has arrived."""
        await asyncio.wait_for(self.arrived.wait(), T)
        return self.held[0]



@contextlib.asynccontextmanager
async def lent_connection():
    """A held-reply server and a client whose connection lends its reads; the
    client is closed on exit (also when the test closed it already)."""
    srv = Server()
    async with server(srv.router) as (port, _):
        client = Client(asyncio.get_running_loop())
        await client.open(port)
        try:
            yield srv, client
        finally:
            await client.close()


class Borrower:
    """Sends one call from a thread and reads its reply there."""

    def __init__(self, client: Client, deadline_s: float | None = None) -> None:
        self.client = client
        self.deadline_s = deadline_s
        self.reading = threading.Event()  # the thread holds the reads
        self.early: list = []  # (thread ident, body)
        self.replies: list = []  # (thread ident, result or exception)
        self.replied = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.returned = threading.Event()
        self.elapsed = 0.0

    def on_reply(self, answer) -> None:
        outcome = answer.exception() or answer.result()
        self.replies.append((threading.get_ident(), outcome))
        self.replied.set()

    def on_early(self, body) -> bool:
        self.early.append((threading.get_ident(), body))
        return True

    def done(self) -> bool:
        self.reading.set()
        return bool(self.early)

    def _run(self) -> None:
        c = self.client
        rid = c.conn.call_from_thread(Method.KV_GET, "x", self.on_reply)
        start = time.monotonic()
        deadline = None if self.deadline_s is None else start + self.deadline_s
        c.conn.read_in_thread(rid, self.on_early, self.done, deadline, c.post, c.post_lazy)
        self.elapsed = time.monotonic() - start
        self.returned.set()

    async def start(self) -> None:
        self.thread.start()
        assert await asyncio.to_thread(self.reading.wait, T)

    async def join(self) -> None:
        assert await asyncio.to_thread(self.returned.wait, T)
        self.thread.join(T)


def test_the_waiting_thread_reads_its_reply_and_the_loop_finishes_it():
    async def main():
        async with lent_connection() as (srv, client):
            b = Borrower(client)
            await b.start()
            conn, reply, body = await srv.request()
            reply.send(["echo", body])
            await b.join()
            assert b.early == [(b.thread.ident, ["echo", "x"])]
            assert b.replies == []  # the answer's callback waits for the loop
            client.drain()
            assert b.replies == [(threading.get_ident(), ["echo", "x"])]
            # the thread let go: the loop reads the connection again
            got = await asyncio.wait_for(client.conn.call(Method.KV_PUT, 7), T)
            assert got == ["echo", 7]

    run(main())


def test_other_messages_go_to_the_loop_in_order_and_the_thread_stops_reading():
    async def main():
        async with lent_connection() as (srv, client):
            order: list = []
            client.router.handlers.pop(int(Method.PUBLISH_LOGS))
            client.router.add(Method.PUBLISH_LOGS, lambda conn, body: order.append(body))
            b = Borrower(client)
            b.on_reply = lambda answer: (order.append(answer.result()), b.replied.set())
            await b.start()
            conn, reply, body = await srv.request()
            conn.notify(Method.PUBLISH_LOGS, "first")  # ahead of the reply
            reply.send(["echo", body])
            await b.join()
            assert b.early == []  # it handed both over: the reply came second
            await asyncio.wait_for(b.replied.wait(), T)
            assert order == ["first", ["echo", "x"]]

    run(main())


def test_a_deadline_returns_and_the_loop_then_reads_the_late_reply():
    async def main():
        async with lent_connection() as (srv, client):
            b = Borrower(client, deadline_s=0.2)
            await b.start()
            conn, reply, body = await srv.request()
            await b.join()
            assert b.elapsed >= 0.2 and b.early == []
            reply.send(["late", body])
            await asyncio.wait_for(b.replied.wait(), T)
            assert b.replies == [(threading.get_ident(), ["late", "x"])]

    run(main())


def _reader_woken_by_close(close_side: str) -> None:
    async def main():
        async with lent_connection() as (srv, client):
            b = Borrower(client)
            await b.start()
            conn, _reply, _body = await srv.request()
            (conn if close_side == "peer" else client.conn).abort()
            await b.join()
            await asyncio.wait_for(b.replied.wait(), T)
            assert isinstance(b.replies[0][1], ConnectionLostError)
            await asyncio.wait_for(client.conn.closed, T)
            assert client.conn._rsock.fileno() == -1  # the duplicate is closed too

    run(main())


def test_the_peer_closing_wakes_the_thread_and_fails_the_call_on_the_loop():
    _reader_woken_by_close("peer")


def test_closing_our_side_wakes_a_reading_thread():
    _reader_woken_by_close("ours")


def test_a_second_thread_does_not_read_while_the_first_does():
    async def main():
        async with lent_connection() as (srv, client):
            b = Borrower(client)
            await b.start()
            await srv.request()
            calls = []
            # the reads are held: a second reader returns at once, reading nothing
            client.conn.read_in_thread(999, lambda body: calls.append(body) or True,
                                       lambda: False, None, client.post, client.post_lazy)
            assert calls == []
            srv.held[0][1].send("done")
            await b.join()
            assert b.early == [(b.thread.ident, "done")]

    run(main())


def test_spin_poll_returns_what_is_ready_and_gives_up_after_its_budget(monkeypatch):
    a, b = socket.socketpair()
    try:
        poller = select.poll()
        poller.register(a.fileno(), select.POLLIN)
        assert read_lending.spin_poll(poller) == []  # nothing sent: spins, then gives up
        b.send(b"x")
        assert read_lending.spin_poll(poller) == [(a.fileno(), select.POLLIN)]
        monkeypatch.setattr(read_lending, "SPIN_S", 0.0)
        assert read_lending.spin_poll(poller) == []  # spinning turned off
    finally:
        a.close()
        b.close()
