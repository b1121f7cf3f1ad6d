"""Unit tests for shoal.rpc.transport (asyncio over 127.0.0.1) and shoal.rpc.loopback.

Every test runs its own event loop with ``asyncio.run`` and cleans up its server
and connections; all waits are bounded by short timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from shoal.rpc import protocol, transport
from shoal.rpc.loopback import LoopbackConnection
from shoal.rpc.messages import Method
from shoal.rpc.transport import (
    Connection,
    ConnectionLostError,
    RemoteError,
    Router,
    connect,
    serve,
    split_address,
    write_batch,
)

TOKEN = "unit-test-token"
HOST = "127.0.0.1"
T = 5.0  # upper bound for any single wait; tests normally take milliseconds


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@contextlib.asynccontextmanager
async def server(router: Router, server_info: dict | None = None):
    """Serve ``router``; record the server-side connections; close all on exit."""
    conns: list[Connection] = []

    # serve() builds Connection objects through the module-level name; swap in a
    # subclass that records server-side instances while this server is up.
    class Recording(Connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.is_server:
                conns.append(self)

    original = transport.Connection
    transport.Connection = Recording
    try:
        srv = await serve(router, TOKEN, HOST, 0, server_info=server_info)
    except BaseException:
        transport.Connection = original
        raise
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, conns
    finally:
        transport.Connection = original
        srv.close()
        for conn in conns:
            conn.close()
        for conn in conns:
            if conn.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.closed, T)
        await asyncio.wait_for(srv.wait_closed(), T)


async def close_client(conn: Connection) -> None:
    conn.close()
    await asyncio.wait_for(conn.closed, T)


def echo_router() -> Router:
    router = Router()
    router.add(Method.KV_GET, lambda conn, body: ["echo", body])
    return router


# ---- request / response ------------------------------------------------------------


def test_request_response_and_peer_info():
    async def main():
        async with server(echo_router(), server_info={"name": "srv"}) as (port, conns):
            conn = await connect(Router(), TOKEN, HOST, port, info={"name": "cli"})
            try:
                assert conn.is_open()
                assert conn.peer_info == {"name": "srv"}
                assert conn.peer_name() == "srv"
                body = {"k": b"\x00\xff", "n": [1, 2, 3]}
                assert await asyncio.wait_for(conn.call(Method.KV_GET, body), T) == ["echo", body]
                assert await asyncio.wait_for(conn.call(Method.KV_GET), T) == ["echo", None]
                assert len(conns) == 1
                assert conns[0].peer_info == {"name": "cli"}
            finally:
                await close_client(conn)

    run(main())


def test_many_concurrent_requests_are_matched_to_their_replies():
    async def main():
        async with server(echo_router()) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                futures = [conn.call(Method.KV_GET, i) for i in range(200)]
                results = await asyncio.wait_for(asyncio.gather(*futures), T)
                assert results == [["echo", i] for i in range(200)]
            finally:
                await close_client(conn)

    run(main())


def test_writes_inside_a_batch_are_coalesced_and_outside_written_at_once():
    async def main():
        async with server(echo_router()) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                writes = []
                real_write = conn.transport.write

                def counting_write(data):
                    writes.append(len(data))
                    real_write(data)

                conn.transport.write = counting_write
                with write_batch():
                    futures = [conn.call(Method.KV_GET, i) for i in range(10)]
                    assert writes == []  # buffered until the batch closes
                assert writes == [
                    sum(len(protocol.encode_request(i + 1, Method.KV_GET, i)) for i in range(10))
                ]
                await asyncio.wait_for(asyncio.gather(*futures), T)
                single = conn.call(Method.KV_GET, 99)
                assert len(writes) == 2  # outside a batch: written immediately
                await asyncio.wait_for(single, T)
            finally:
                await close_client(conn)

    run(main())


class FakeTransport:
    """Just enough of asyncio.Transport to drive a Connection without a socket."""

    def __init__(self):
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data):
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    def get_extra_info(self, name, default=None):
        return default


def test_replies_to_requests_in_one_read_are_written_once():
    async def main():
        conn = Connection(echo_router(), token=TOKEN, is_server=True, server_info={"name": "s"})
        fake = FakeTransport()
        conn.connection_made(fake)
        requests = b"".join(protocol.encode_request(i, Method.KV_GET, i) for i in range(1, 6))
        conn.data_received(protocol.encode_handshake(TOKEN, {"name": "c"}) + requests)
        assert conn.opened.done() and conn.peer_info == {"name": "c"}
        # One write for the handshake reply, then one for all five responses.
        assert len(fake.writes) == 2
        assert protocol.unpack(fake.writes[0]) == [protocol.MAGIC, "ok", {"name": "s"}]
        decoder = protocol.Decoder(handshake=False)
        decoder.feed(fake.writes[1])
        assert list(decoder.messages()) == [
            [protocol.Kind.RESPONSE, i, ["echo", i]] for i in range(1, 6)
        ]

    run(main())


def test_nested_write_batches_flush_at_the_outermost_exit():
    async def main():
        conn = Connection(Router(), token=TOKEN, is_server=False)
        fake = FakeTransport()
        conn.connection_made(fake)
        conn.data_received(protocol.encode_handshake_reply({}))
        assert conn.is_open()
        with write_batch():
            conn.notify(Method.PUBLISH_LOGS, 1)
            with write_batch():
                conn.notify(Method.PUBLISH_LOGS, 2)
            assert fake.writes == []
            conn.notify(Method.PUBLISH_LOGS, 3)
        assert fake.writes == [
            b"".join(protocol.encode_notify(Method.PUBLISH_LOGS, i) for i in (1, 2, 3))
        ]
        conn.notify(Method.PUBLISH_LOGS, 4)
        assert fake.writes[1:] == [protocol.encode_notify(Method.PUBLISH_LOGS, 4)]

    run(main())


def test_handshake_refused_by_server_fails_opened():
    async def main():
        conn = Connection(Router(), token=TOKEN, is_server=False)
        fake = FakeTransport()
        conn.connection_made(fake)
        conn.data_received(protocol.pack([protocol.MAGIC, "bad token", {}]))
        assert fake.closing
        assert isinstance(conn.opened.exception(), protocol.AuthenticationError)
        assert not conn.is_open()

    run(main())


def test_notification_reaches_handler():
    async def main():
        got = asyncio.get_running_loop().create_future()
        router = Router()
        router.add(Method.PUBLISH_LOGS, lambda conn, body: got.set_result(body))
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                assert conn.notify(Method.PUBLISH_LOGS, ["line"]) is None
                assert await asyncio.wait_for(got, T) == ["line"]
            finally:
                await close_client(conn)

    run(main())


def test_async_notification_handler_is_run_as_task():
    async def main():
        got = asyncio.get_running_loop().create_future()
        router = Router()

        async def handler(conn, body):
            await asyncio.sleep(0)
            got.set_result(body)

        router.add(Method.PUBLISH_LOGS, handler)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                conn.notify(Method.PUBLISH_LOGS, 7)
                assert await asyncio.wait_for(got, T) == 7
            finally:
                await close_client(conn)

    run(main())


def test_failing_notification_handler_does_not_break_connection():
    async def main():
        router = echo_router()

        def bad(conn, body):
            raise RuntimeError("boom")

        router.add(Method.PUBLISH_LOGS, bad)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                conn.notify(Method.PUBLISH_LOGS, None)
                conn.notify(Method.SUBSCRIBE, None)  # no handler at all
                assert await asyncio.wait_for(conn.call(Method.KV_GET, 1), T) == ["echo", 1]
                assert conn.is_open()
            finally:
                await close_client(conn)

    run(main())


def test_async_handler_returning_coroutine():
    async def main():
        router = Router()

        async def handler(conn, body):
            await asyncio.sleep(0.001)
            return body * 2

        router.add(Method.KV_GET, handler)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                assert await asyncio.wait_for(conn.call(Method.KV_GET, 21), T) == 42
            finally:
                await close_client(conn)

    run(main())


def test_handler_returning_future_is_answered_when_it_completes():
    async def main():
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future] = []
        router = Router()

        def handler(conn, body):
            fut = loop.create_future()
            waiting.append(fut)
            return fut

        router.add(Method.GET_ACTOR, handler)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                reply = conn.call(Method.GET_ACTOR, "a")
                for _ in range(100):
                    if waiting:
                        break
                    await asyncio.sleep(0.001)
                assert len(waiting) == 1
                await asyncio.sleep(0.005)
                assert not reply.done()  # not answered before the future completes
                waiting[0].set_result({"state": "ALIVE"})
                assert await asyncio.wait_for(reply, T) == {"state": "ALIVE"}
            finally:
                await close_client(conn)

    run(main())


def test_handler_exception_arrives_as_remote_error_with_type_name():
    async def main():
        router = Router()

        def sync_bad(conn, body):
            raise KeyError("missing-key")

        async def async_bad(conn, body):
            raise ValueError("async boom")

        def future_bad(conn, body):
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(LookupError("future boom"))
            return fut

        def future_cancelled(conn, body):
            fut = asyncio.get_running_loop().create_future()
            fut.cancel()
            return fut

        router.add(Method.KV_GET, sync_bad)
        router.add(Method.KV_PUT, async_bad)
        router.add(Method.KV_DELETE, future_bad)
        router.add(Method.GET_ACTOR, future_cancelled)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                cases = [
                    (Method.KV_GET, "KeyError", "missing-key"),
                    (Method.KV_PUT, "ValueError", "async boom"),
                    (Method.KV_DELETE, "LookupError", "future boom"),
                    (Method.GET_ACTOR, "CancelledError", "cancelled"),
                    (Method.LIST_ACTORS, "UnknownMethod", str(int(Method.LIST_ACTORS))),
                ]
                for method, error_type, text in cases:
                    with pytest.raises(RemoteError) as info:
                        await asyncio.wait_for(conn.call(method, None), T)
                    assert info.value.error_type == error_type
                    assert text in info.value.message
                    assert error_type in str(info.value)
                # The connection survives handler errors.
                assert conn.is_open()
            finally:
                await close_client(conn)

    run(main())


def test_connection_is_symmetric_server_can_call_client():
    async def main():
        client_router = Router()
        client_router.add(Method.NODE_INFO, lambda conn, body: {"client": body})
        router = Router()

        async def handler(conn, body):
            # The server calls back into the client on the same connection.
            return await conn.call(Method.NODE_INFO, body + 1)

        router.add(Method.KV_GET, handler)
        async with server(router) as (port, _):
            conn = await connect(client_router, TOKEN, HOST, port)
            try:
                assert await asyncio.wait_for(conn.call(Method.KV_GET, 1), T) == {"client": 2}
            finally:
                await close_client(conn)

    run(main())


# ---- authentication ------------------------------------------------------------------


def test_wrong_token_connect_fails_and_server_keeps_serving():
    async def main():
        router = echo_router()
        async with server(router) as (port, _):
            with pytest.raises((ConnectionError, protocol.ProtocolError, TimeoutError)):
                await connect(Router(), "wrong-token", HOST, port, timeout=T)
            # Another client with the right token is served normally.
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                assert await asyncio.wait_for(conn.call(Method.KV_GET, "ok"), T) == ["echo", "ok"]
            finally:
                await close_client(conn)
            # And a second wrong one is refused again.
            with pytest.raises((ConnectionError, protocol.ProtocolError, TimeoutError)):
                await connect(Router(), "", HOST, port, timeout=T)

    run(main())


def test_wrong_token_client_never_reaches_handlers():
    async def main():
        called = []
        router = Router()
        router.add(Method.KV_GET, lambda conn, body: called.append(body))
        async with server(router) as (port, _):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                # A wrong handshake immediately followed by a request in the same write.
                writer.write(
                    protocol.encode_handshake("wrong", {})
                    + protocol.encode_request(1, Method.KV_GET, "sneaky")
                )
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), T) == b""  # closed, no reply
            finally:
                writer.close()
            assert called == []

    run(main())


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1garbage",
        protocol.pack(["not-shoal", 1, TOKEN, {}]),
        protocol.pack([protocol.MAGIC, 999, TOKEN, {}]),
        protocol.pack([protocol.MAGIC, 1, "x" * (2 * protocol.MAX_HANDSHAKE_BYTES), {}]),
    ],
    ids=["garbage", "wrong-magic", "wrong-version", "oversized"],
)
def test_bad_handshake_closes_connection(payload):
    async def main():
        async with server(echo_router()) as (port, _):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(payload)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                with contextlib.suppress(ConnectionError):
                    assert await asyncio.wait_for(reader.read(), T) == b""
            finally:
                writer.close()
            # Server still fine.
            conn = await connect(Router(), TOKEN, HOST, port)
            await close_client(conn)

    run(main())


def test_unknown_message_kind_after_handshake_closes_connection():
    async def main():
        async with server(echo_router()) as (port, _):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(protocol.encode_handshake(TOKEN, {}))
                decoder = protocol.Decoder()
                reply = None
                while reply is None:
                    data = await asyncio.wait_for(reader.read(1024), T)
                    assert data
                    decoder.feed(data)
                    reply = decoder.handshake_message()
                assert protocol.check_handshake_reply(reply) == {}
                writer.write(protocol.pack([99, 1, 2]))
                assert await asyncio.wait_for(reader.read(), T) == b""
            finally:
                writer.close()

    run(main())


# ---- connection loss -----------------------------------------------------------------


def test_pending_calls_fail_with_connection_lost_when_server_closes():
    async def main():
        loop = asyncio.get_running_loop()
        hanging: list[asyncio.Future] = []
        closed_on_server = []
        router = Router()

        def never(conn, body):
            fut = loop.create_future()
            hanging.append(fut)
            return fut

        router.add(Method.GET_ACTOR, never)
        router.on_close.append(closed_on_server.append)
        async with server(router) as (port, conns):
            conn = await connect(Router(), TOKEN, HOST, port)
            pending = [conn.call(Method.GET_ACTOR, i) for i in range(3)]
            for _ in range(200):
                if len(hanging) == 3:
                    break
                await asyncio.sleep(0.001)
            assert len(hanging) == 3
            conns[0].close()  # the server drops the connection
            for fut in pending:
                with pytest.raises(ConnectionLostError):
                    await asyncio.wait_for(fut, T)
            await asyncio.wait_for(conn.closed, T)
            assert not conn.is_open()
            # Calls on a closed connection fail at once with the same error.
            late = conn.call(Method.GET_ACTOR, 9)
            assert late.done()
            with pytest.raises(ConnectionLostError):
                late.result()
            conn.notify(Method.PUBLISH_LOGS, None)  # silently dropped
            await asyncio.wait_for(conns[0].closed, T)
            assert closed_on_server == [conns[0]]
            for fut in hanging:
                fut.cancel()

    run(main())


def test_client_close_runs_server_on_close_callbacks():
    async def main():
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        router = echo_router()
        router.on_close.append(lambda conn: gone.set_result(conn))
        async with server(router) as (port, conns):
            conn = await connect(Router(), TOKEN, HOST, port, info={"name": "c1"})
            await asyncio.wait_for(conn.call(Method.KV_GET, 0), T)
            await close_client(conn)
            server_side = await asyncio.wait_for(gone, T)
            assert server_side is conns[0]
            assert server_side.peer_name() == "c1"

    run(main())


def test_connect_to_closed_port_raises():
    async def main():
        srv = await serve(Router(), TOKEN, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        with pytest.raises(OSError):
            await connect(Router(), TOKEN, HOST, port, timeout=T)

    run(main())


# ---- small helpers -------------------------------------------------------------------


def test_router_rejects_two_handlers_for_one_method():
    router = Router()
    router.add(Method.KV_GET, lambda c, b: None)
    with pytest.raises(ValueError, match="two handlers"):
        router.add(Method.KV_GET, lambda c, b: None)
    assert list(router.handlers) == [int(Method.KV_GET)]


@pytest.mark.parametrize(
    "address, expected",
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("head.example:1", ("head.example", 1)),
        ("[::1]:8000", ("::1", 8000)),
    ],
)
def test_split_address(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["localhost", ":80", "host:", "host:port", "host:-1"])
def test_split_address_rejects_bad_addresses(address):
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_address(address)


def test_remote_error_carries_type_and_message():
    err = RemoteError("KeyError", "'x'")
    assert err.error_type == "KeyError"
    assert err.message == "'x'"
    assert str(err) == "KeyError: 'x'"


def test_connection_lost_error_is_connection_error():
    assert issubclass(ConnectionLostError, ConnectionError)


# ---- loopback ------------------------------------------------------------------------


def test_loopback_pair_delivers_calls_both_ways_with_the_callers_connection():
    async def main():
        router_a, router_b = Router(), Router()
        seen_by_b, seen_by_a = [], []

        def b_handler(conn, body):
            seen_by_b.append(conn)
            return ("b", body)

        def a_handler(conn, body):
            seen_by_a.append(conn)
            return ("a", body)

        router_b.add(Method.KV_GET, b_handler)
        router_a.add(Method.NODE_INFO, a_handler)
        a, b = LoopbackConnection.pair(router_a, "A", router_b, "B")
        # a is held by A and talks to B.
        assert a.peer_name() == "B" and b.peer_name() == "A"
        assert a.peer is b and b.peer is a
        assert a.is_open() and b.is_open()
        assert await asyncio.wait_for(a.call(Method.KV_GET, 1), T) == ("b", 1)
        assert await asyncio.wait_for(b.call(Method.NODE_INFO, 2), T) == ("a", 2)
        # A handler receives the connection its service would use to answer back.
        assert seen_by_b == [b]
        assert seen_by_a == [a]
        # ...and can call back through it.
        assert await asyncio.wait_for(seen_by_b[0].call(Method.NODE_INFO, 3), T) == ("a", 3)

    run(main())


def test_loopback_async_handlers_and_errors():
    async def main():
        loop = asyncio.get_running_loop()
        router_a, router_b = Router(), Router()

        async def coro_handler(conn, body):
            await asyncio.sleep(0)
            return body + 1

        pending = loop.create_future()
        router_b.add(Method.KV_GET, coro_handler)
        router_b.add(Method.GET_ACTOR, lambda conn, body: pending)

        def sync_bad(conn, body):
            raise KeyError("k")

        router_b.add(Method.KV_PUT, sync_bad)

        async def async_bad(conn, body):
            raise ValueError("v")

        router_b.add(Method.KV_DELETE, async_bad)
        a, _ = LoopbackConnection.pair(router_a, "A", router_b, "B")

        assert await asyncio.wait_for(a.call(Method.KV_GET, 1), T) == 2
        fut = a.call(Method.GET_ACTOR)
        await asyncio.sleep(0)
        assert not fut.done()
        pending.set_result("later")
        assert await asyncio.wait_for(fut, T) == "later"
        with pytest.raises(RemoteError) as info:
            await asyncio.wait_for(a.call(Method.KV_PUT), T)
        assert info.value.error_type == "KeyError"
        with pytest.raises(RemoteError) as info:
            await asyncio.wait_for(a.call(Method.KV_DELETE), T)
        assert info.value.error_type == "ValueError"
        assert info.value.message == "v"

    run(main())


def test_loopback_notify_is_delivered_asynchronously():
    async def main():
        router_a, router_b = Router(), Router()
        got = []
        done = asyncio.get_running_loop().create_future()

        async def async_handler(conn, body):
            done.set_result((conn, body))

        router_b.add(Method.PUBLISH_LOGS, lambda conn, body: got.append((conn, body)))
        router_b.add(Method.PUBSUB_MESSAGE, async_handler)
        a, b = LoopbackConnection.pair(router_a, "A", router_b, "B")
        a.notify(Method.PUBLISH_LOGS, "x")
        assert got == []  # not delivered inline
        a.notify(Method.PUBSUB_MESSAGE, "y")
        a.notify(Method.LIST_ACTORS, "nobody listens")  # no handler: ignored
        assert await asyncio.wait_for(done, T) == (b, "y")
        assert got == [(b, "x")]

    run(main())


def test_loopback_close_runs_on_close_callbacks_and_fails_later_calls():
    async def main():
        router_a, router_b = Router(), Router()
        closed_a, closed_b = [], []
        router_a.on_close.append(closed_a.append)
        router_b.on_close.append(closed_b.append)
        router_b.add(Method.KV_GET, lambda conn, body: body)
        router_b.add(Method.PUBLISH_LOGS, lambda conn, body: pytest.fail("delivered after close"))
        a, b = LoopbackConnection.pair(router_a, "A", router_b, "B")

        a.close()
        assert not a.is_open() and not b.is_open()
        assert a.closed.done() and b.closed.done()
        # Each service's on_close gets the connection *it* holds.
        assert closed_b == [b]
        assert closed_a == [a]
        # Closing again (from either end) runs nothing twice.
        a.close()
        b.close()
        assert closed_b == [b] and closed_a == [a]

        fut = a.call(Method.KV_GET, 1)
        assert fut.done()
        with pytest.raises(ConnectionLostError):
            fut.result()
        a.notify(Method.PUBLISH_LOGS, None)
        await asyncio.sleep(0.001)

    run(main())


def test_loopback_unknown_method_fails_like_socket_connection():
    async def main():
        a, _ = LoopbackConnection.pair(Router(), "A", Router(), "B")
        fut = a.call(Method.LIST_ACTORS, None)
        with pytest.raises(RemoteError) as info:
            await asyncio.wait_for(fut, T)
        assert info.value.error_type == "UnknownMethod"

    run(main())


# ---- writes from other threads -------------------------------------------------------------


def _collecting_router(received: list, done: asyncio.Event, expect: int) -> Router:
    router = Router()

    def on_notify(conn, body):
        received.append(body)
        if len(received) == expect:
            done.set()

    router.add(Method.PUBLISH_LOGS, on_notify)
    return router


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024])  # the large one fills the socket
def test_writes_from_another_thread_and_the_loop_arrive_in_issue_order(size):
    """A thread's direct socket write must never overtake (or be overtaken by) a
    write issued before it, from the loop or from another thread."""

    async def main():
        received: list = []
        done = asyncio.Event()
        n = 40
        async with server(_collecting_router(received, done, 2 * n)) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            loop = asyncio.get_running_loop()
            order: list[int] = []
            lock = threading.Lock()
            payload = b"x" * size

            def from_thread():
                for i in range(n):
                    with lock:  # fixes the issue order of the two writers
                        order.append(2 * i)
                        conn.notify_from_thread(Method.PUBLISH_LOGS, [2 * i, payload])
                    loop.call_soon_threadsafe(loop_write, 2 * i + 1)

            def loop_write(i):
                with lock:
                    order.append(i)
                    with write_batch():
                        conn.notify(Method.PUBLISH_LOGS, [i, payload])

            try:
                worker = threading.Thread(target=from_thread)
                worker.start()
                await asyncio.wait_for(done.wait(), 20)
                await loop.run_in_executor(None, worker.join)
                assert [body[0] for body in received] == order
                assert all(len(body[1]) == size for body in received)
                assert conn.is_open()
            finally:
                await close_client(conn)

    run(main())


def test_deferred_reply_answers_once_whether_sent_before_or_after_binding():
    async def main():
        replies: list[transport.DeferredReply] = []
        router = Router()

        def early(conn, body):  # answered before the router binds the request id
            reply = transport.DeferredReply()
            assert reply.send(["early", body]) is True
            assert reply.send("ignored") is False
            return reply

        def later(conn, body):
            reply = transport.DeferredReply()
            replies.append(reply)
            return reply

        router.add(Method.KV_GET, early)
        router.add(Method.KV_PUT, later)
        async with server(router) as (port, _):
            conn = await connect(Router(), TOKEN, HOST, port)
            try:
                assert await asyncio.wait_for(conn.call(Method.KV_GET, 1), T) == ["early", 1]
                pending = conn.call(Method.KV_PUT, 2)
                while not replies:
                    await asyncio.sleep(0.001)
                assert not pending.done()
                sender = threading.Thread(target=lambda: replies[0].send(["later", 2]))
                sender.start()
                assert await asyncio.wait_for(pending, T) == ["later", 2]
                sender.join()
                assert replies[0].send("again") is False
            finally:
                await close_client(conn)

    run(main())
