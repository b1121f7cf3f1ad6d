"""asyncio transport for the protocol in :mod:`shoal.rpc.protocol`.

A :class:`Connection` is symmetric once open: either side may send requests
and notifications.  Handlers live in a :class:`Router` (method -> callable);
several services may share one router (the head process serves the control
store and its node agent on one port).

A handler is called as ``handler(conn, body)`` on the event loop and returns
either a plain value (answered at once), an ``asyncio.Future`` (answered when it
completes; cheap, for replies that wait on an event) or a coroutine (run as a
task).  Raising answers with an ERROR message that names the exception.

Writes are batched explicitly: while a batch is open on this thread (during
``data_received``, or around a burst of work via :func:`write_batch`), messages
are buffered per connection and each connection is written once when the
outermost batch closes.  Outside a batch a message is written at once.  (A
``call_soon`` flush would cost an extra event-loop iteration, an epoll_wait,
per message; on this VM that was ~100 us of a 280 us round trip.)

Other threads may send too (:meth:`Connection.send_from_thread`, and
:class:`DeferredReply` for handlers that answer from another thread, like a
task finishing on a worker's main thread): the bytes go straight to the socket
when nothing is queued on the connection, which saves waking the loop thread
(a thread switch and a syscall, ~40 us of a ~500 us sync actor call here).
All writes, from any thread, happen under one lock and in the order they were
issued, so a message never overtakes one that was queued before it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from shoal.rpc import protocol
from shoal.rpc.messages import Method
from shoal.rpc.protocol import ConnectionState, Kind
from shoal.rpc.read_lending import LendableReads

log = logging.getLogger("shoal.rpc")

# A peer that connects must finish its handshake within this many seconds, or the
# server closes the connection: a partial handshake (a msgpack header announcing
# more bytes than ever come) would otherwise hold the socket open for ever.
HANDSHAKE_TIMEOUT_S = float(os.environ.get("SHOAL_HANDSHAKE_TIMEOUT_S", "10"))

Handler = Callable[["Connection", Any], Any]


class _Batch(threading.local):
    depth = 0
    dirty: list | None = None


_batch = _Batch()


class write_batch:
    """Context manager: buffer writes on this thread until the outermost exit."""

    __slots__ = ()

    def __enter__(self) -> None:
        if _batch.depth == 0:
            _batch.dirty = []
        _batch.depth += 1

    def __exit__(self, *exc: object) -> None:
        _batch.depth -= 1
        if _batch.depth == 0:
            dirty, _batch.dirty = _batch.dirty, None
            for conn in dirty:
                conn.flush_batched()


class ConnectionLostError(ConnectionError):
    """The peer went away before answering."""


class RemoteError(Exception):
    """A handler on the other side raised; carries its type name."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message

    def __reduce__(self):  # it may travel inside a task's error
        return type(self), (self.error_type, self.message)


class Router:
    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}
        self.on_close: list[Callable[[Connection], None]] = []
        self.on_open: list[Callable[[Connection], None]] = []  # accepted, handshake done
        # run on the loop before any received message or connection loss is handled:
        # the core worker finishes work other threads queued without waking the loop
        # (e.g. bookkeeping of a call they sent straight to the socket)
        self.before_receive: Callable[[], None] | None = None

    def add(self, method: Method, handler: Handler) -> None:
        if method in self.handlers:
            raise ValueError(f"two handlers for {method!r}")
        self.handlers[int(method)] = handler


class Connection(LendableReads, asyncio.Protocol):
    def __init__(
        self,
        router: Router,
        *,
        token: str,
        is_server: bool,
        server_info: dict | None = None,
    ) -> None:
        self.router = router
        self.token = token
        self.is_server = is_server
        self.server_info = server_info or {}
        self.peer_info: dict = {}
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.decoder = protocol.Decoder(handshake=True)
        self._request_ids = itertools.count(1)  # next() is atomic: any thread may call
        self._pending: dict[int, asyncio.Future | _Answer] = {}
        self._out: list[bytes] = []  # batched writes, flushed when the batch closes
        self._wlock = threading.Lock()  # every write and every touch of _out/_handoff
        self._handoff: list[bytes] | None = None  # other threads' writes waiting for the loop
        self._direct: socket.socket | None = None  # dup of the socket, for other threads
        self._loop_thread = 0
        self.opened: asyncio.Future = self.loop.create_future()
        self.closed: asyncio.Future = self.loop.create_future()
        self.state: dict[str, Any] = {}  # per-connection data owned by services

    # ---- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop_thread = threading.get_ident()
        if self.is_server:
            self.loop.call_later(HANDSHAKE_TIMEOUT_S, self._handshake_deadline)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        with write_batch():
            if self.router.before_receive is not None:
                self.router.before_receive()
            self._received(data)

    def _received(self, data: bytes) -> None:
        try:
            self.decoder.feed(data)
            if self.decoder.state is ConnectionState.HANDSHAKE:
                if not self._advance_handshake():
                    return
            for message in self.decoder.messages():
                self._dispatch(message)
        except protocol.ProtocolError as exc:
            log.warning("closing connection from %s: %s", self._peer_address(), exc)
            self._fail_handshake(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.router.before_receive is not None:
            self.router.before_receive()
        self.decoder.state = ConnectionState.CLOSED
        self._close_reads()
        with self._wlock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None
        err = ConnectionLostError(f"connection to {self.peer_name()} lost")
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._fail_handshake(err)
        if not self.closed.done():
            self.closed.set_result(None)
        for callback in self.router.on_close:
            try:
                callback(self)
            except Exception:
                log.exception("on_close callback failed")

    # ---- handshake ------------------------------------------------------------
    def _advance_handshake(self) -> bool:
        message = self.decoder.handshake_message()
        if message is None:
            return False
        if self.is_server:
            try:
                self.peer_info = protocol.check_handshake(message, self.token)
            except protocol.AuthenticationError:
                log.warning("refused connection from %s: wrong or missing cluster token",
                            self._peer_address())
                raise
            self.write_now(protocol.encode_handshake_reply(self.server_info))
        else:
            self.peer_info = protocol.check_handshake_reply(message)
        self.decoder.open()
        if self.is_server:
            for callback in self.router.on_open:
                callback(self)
        if not self.opened.done():
            self.opened.set_result(self.peer_info)
        return True

    def _handshake_deadline(self) -> None:
        if self.decoder.state is ConnectionState.HANDSHAKE and self.transport is not None:
            log.warning("closed connection from %s: no complete handshake in %.0f s",
                        self._peer_address(), HANDSHAKE_TIMEOUT_S)
            self.transport.close()

    def _fail_handshake(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
            self.opened.exception()  # mark retrieved

    # ---- sending ----------------------------------------------------------------
    def write_now(self, data: bytes) -> None:
        with self._wlock:
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        if self._handoff is not None:  # other threads' bytes go first
            self._handoff.append(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _send(self, data: bytes) -> None:
        if _batch.depth == 0:
            self.write_now(data)
            return
        with self._wlock:
            if not self._out:
                _batch.dirty.append(self)
            self._out.append(data)

    def flush_batched(self) -> None:
        with self._wlock:
            out, self._out = self._out, []
            if out:
                self._write_locked(out[0] if len(out) == 1 else b"".join(out))

    def send_from_thread(self, data: bytes) -> None:
        """Send from a thread that is not the loop's: straight to the socket when
        nothing is queued, else after what is queued (the loop writes it)."""
        if threading.get_ident() == self._loop_thread:
            self._send(data)
            return
        with self._wlock:
            if self._out:  # the loop is inside a batch: join it, in order
                self._out.append(data)
                return
            if self._handoff is not None:
                self._handoff.append(data)
                return
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            if transport.get_write_buffer_size() == 0:
                try:
                    sock = self._direct or self._open_direct()
                    sent = sock.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    return  # the connection is breaking; the loop will see it
                if sent == len(data):
                    return
                data = data[sent:]
            self._handoff = [data]
        try:
            self.loop.call_soon_threadsafe(self._write_handoff)
        except RuntimeError:  # loop closed
            pass

    def notify_from_thread(self, method: Method, body: Any = None) -> None:
        if self.is_open():
            self.send_from_thread(protocol.encode_notify(method, body))

    def _open_direct(self) -> socket.socket:
        fd = self.transport.get_extra_info("socket").fileno()
        self._direct = socket.socket(fileno=os.dup(fd))
        self._direct.setblocking(False)
        return self._direct

    def _write_handoff(self) -> None:
        with self._wlock:
            pending, self._handoff = self._handoff, None
            if pending and self.transport is not None and not self.transport.is_closing():
                self.transport.write(b"".join(pending))

    def is_open(self) -> bool:
        return (
            self.decoder.state is ConnectionState.OPEN
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def call(self, method: Method, body: Any = None) -> asyncio.Future:
        """Send a request; the returned future resolves to the reply body."""
        fut = self.loop.create_future()
        if not self.is_open():
            fut.set_exception(ConnectionLostError(f"connection to {self.peer_name()} is closed"))
            return fut
        request_id = next(self._request_ids)
        self._pending[request_id] = fut
        self._send(protocol.encode_request(request_id, method, body))
        return fut

    def call_from_thread(
        self, method: Method, body: Any, on_reply: Callable[[asyncio.Future], None]
    ) -> int:
        """``call`` from a thread that is not the loop's; ``on_reply(answer)`` runs on
        the loop with the reply (or ConnectionLostError), as a future's callback.
        Returns the request id (see ``read_in_thread``)."""
        fut = _Answer(self.loop, on_reply)
        request_id = next(self._request_ids)
        self._pending[request_id] = fut
        if self.decoder.state is ConnectionState.CLOSED:  # lost before we registered
            self.loop.call_soon_threadsafe(self._fail_pending, request_id)
            return request_id
        self.send_from_thread(protocol.encode_request(request_id, method, body))
        return request_id

    def _fail_pending(self, request_id: int) -> None:
        fut = self._pending.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionLostError(f"connection to {self.peer_name()} lost"))

    def notify(self, method: Method, body: Any = None) -> None:
        if self.is_open():
            self._send(protocol.encode_notify(method, body))

    def respond(self, request_id: int, body: Any) -> None:
        self._send(protocol.encode_response(request_id, body))

    def respond_error(self, request_id: int, exc: BaseException) -> None:
        self._send(protocol.encode_error(request_id, type(exc).__name__, str(exc)))

    def close(self) -> None:
        if self.transport is not None:
            self.flush_batched()
            self._write_handoff()
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping unsent bytes (the peer is unreachable: a
        graceful close would wait for a flush that never happens)."""
        if self.transport is not None:
            self.transport.abort()

    def peer_name(self) -> str:
        name = self.peer_info.get("name") if self.peer_info else None
        if name:
            return str(name)
        if self.transport is not None:
            return self._peer_address()
        return "<unconnected>"

    def _peer_address(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if isinstance(peer, tuple):
            return f"{peer[0]}:{peer[1]}"
        return "a process on this machine (local socket)" if self.transport else "<unconnected>"

    # ---- receiving ----------------------------------------------------------------
    def _dispatch(self, message: list) -> None:
        kind = message[0]
        if kind == Kind.RESPONSE:
            fut = self._pending.pop(message[1], None)
            if fut is not None and not fut.done():
                fut.set_result(message[2])
        elif kind == Kind.REQUEST:
            self._handle_request(message[1], message[2], message[3])
        elif kind == Kind.NOTIFY:
            handler = self.router.handlers.get(message[1])
            if handler is None:
                log.warning("no handler for notification %s", message[1])
                return
            try:
                result = handler(self, message[2])
                if asyncio.iscoroutine(result):
                    self.loop.create_task(result)
            except Exception:
                log.exception("notification handler %s failed", Method(message[1]).name)
        elif kind == Kind.ERROR:
            fut = self._pending.pop(message[1], None)
            if fut is not None and not fut.done():
                fut.set_exception(RemoteError(message[2], message[3]))
        else:
            raise protocol.ProtocolError(f"unknown message kind {kind!r}")

    def _handle_request(self, request_id: int, method: int, body: Any) -> None:
        handler = self.router.handlers.get(method)
        if handler is None:
            self._send(protocol.encode_error(request_id, "UnknownMethod", str(method)))
            return
        try:
            result = handler(self, body)
        except Exception as exc:
            log.debug("handler %s raised", method, exc_info=True)
            self.respond_error(request_id, exc)
            return
        if isinstance(result, DeferredReply):
            result.bind(self, request_id)
        elif isinstance(result, asyncio.Future):
            result.add_done_callback(lambda f: self._reply_from_future(request_id, f))
        elif asyncio.iscoroutine(result):
            task = self.loop.create_task(result)
            task.add_done_callback(lambda f: self._reply_from_future(request_id, f))
        else:
            self.respond(request_id, result)

    def _reply_from_future(self, request_id: int, fut: asyncio.Future) -> None:
        if fut.cancelled():
            self.respond_error(request_id, asyncio.CancelledError("cancelled"))
            return
        exc = fut.exception()
        if exc is not None:
            if not isinstance(exc, (RemoteError, ConnectionError, LookupError, ValueError)):
                log.debug("async handler raised", exc_info=exc)
            self.respond_error(request_id, exc)
        else:
            self.respond(request_id, fut.result())


_UNSET = object()


class _Answer:
    """The answer to a ``call_from_thread``: a done future as ``on_reply`` reads it.
    A reply runs ``on_reply`` at once, inside the receive (an asyncio future would
    schedule it for another loop turn: a few microseconds on every sync actor call);
    a lost connection schedules it, after the connection's close callbacks, as a
    future's done-callback would run."""

    __slots__ = ("_loop", "_on_reply", "_result", "_exception")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_reply: Callable) -> None:
        self._loop = loop
        self._on_reply = on_reply
        self._result: Any = None
        self._exception: BaseException | None = None

    def done(self) -> bool:
        return self._on_reply is None

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def set_result(self, result: Any) -> None:
        on_reply, self._on_reply = self._on_reply, None
        self._result = result
        try:
            on_reply(self)
        except Exception:
            log.exception("reply callback %r failed", on_reply)

    def set_exception(self, exc: BaseException) -> None:
        on_reply, self._on_reply = self._on_reply, None
        self._exception = exc
        self._loop.call_soon(on_reply, self)


class DeferredReply:
    """What a handler returns to answer later, from any thread, exactly once.

    ``send`` may run before the router has bound the request id (the work can
    finish before the handler returns); the body is then kept until ``bind``.
    """

    __slots__ = ("_lock", "_conn", "_request_id", "_body", "sent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._request_id = 0
        self._body: Any = _UNSET
        self.sent = False

    def bind(self, conn: Connection, request_id: int) -> None:
        with self._lock:
            self._conn, self._request_id = conn, request_id
            body, self._body = self._body, _UNSET
        if body is not _UNSET:
            conn.send_from_thread(protocol.encode_response(request_id, body))

    def send(self, body: Any) -> bool:
        """Answer with ``body``; False if an answer was already given."""
        with self._lock:
            if self.sent:
                return False
            self.sent = True
            conn = self._conn
            if conn is None:
                self._body = body
                return True
        conn.send_from_thread(protocol.encode_response(self._request_id, body))
        return True


# Same-machine peers talk over a Unix socket in the abstract namespace, named after
# the TCP address: a loopback TCP send cost ~30 us of syscall here against ~11 us
# for a Unix socket, on every message.  The abstract namespace is per network
# namespace (so per "host" in the netns tests) and needs no file cleanup; the
# token handshake is the same as over TCP.
LOCAL_SOCKETS = sys.platform.startswith("linux") and os.environ.get("SHOAL_LOCAL_SOCKETS") != "0"


def local_socket_name(host: str, port: int) -> str:
    return f"\0shoal-{host}:{port}"


class Listener:
    """A TCP server, and its same-machine Unix twin when available."""

    def __init__(self, tcp: asyncio.AbstractServer, local: asyncio.AbstractServer | None):
        self.tcp = tcp
        self.local = local
        self.sockets = tcp.sockets

    def close(self) -> None:
        self.tcp.close()
        if self.local is not None:
            self.local.close()

    async def wait_closed(self) -> None:
        await self.tcp.wait_closed()
        if self.local is not None:
            await self.local.wait_closed()


async def serve(
    router: Router,
    token: str,
    host: str,
    port: int = 0,
    server_info: dict | None = None,
) -> Listener:
    loop = asyncio.get_running_loop()

    def factory() -> Connection:
        return Connection(router, token=token, is_server=True, server_info=server_info)

    tcp = await loop.create_server(factory, host, port, reuse_address=True, backlog=1024)
    local = None
    if LOCAL_SOCKETS:
        bound_port = tcp.sockets[0].getsockname()[1]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(local_socket_name(host, bound_port))
            sock.listen(1024)
            sock.setblocking(False)
            local = await loop.create_unix_server(factory, sock=sock)
        except OSError as exc:  # taken (e.g. another namespace quirk): TCP only
            sock.close()
            log.debug("no local socket for %s:%s: %s", host, bound_port, exc)
    return Listener(tcp, local)


async def _open(loop, factory, host: str, port: int) -> Connection:
    if LOCAL_SOCKETS:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, local_socket_name(host, port))
        except OSError:
            sock.close()  # not on this machine (or not serving locally): TCP
        else:
            _, conn = await loop.create_unix_connection(factory, sock=sock)
            return conn
    _, conn = await loop.create_connection(factory, host, port)
    return conn


async def connect(
    router: Router,
    token: str,
    host: str,
    port: int,
    info: dict | None = None,
    timeout: float = 10.0,
) -> Connection:
    """Open an authenticated connection; raises on refusal or timeout."""
    loop = asyncio.get_running_loop()
    conn = await asyncio.wait_for(
        _open(loop, lambda: Connection(router, token=token, is_server=False), host, port),
        timeout,
    )
    conn.write_now(protocol.encode_handshake(token, info or {}))
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), timeout)
    except (TimeoutError, ConnectionError, protocol.ProtocolError):
        conn.close()
        raise
    if not conn.opened.done() or conn.opened.exception() is not None:
        conn.close()
        raise protocol.AuthenticationError("handshake refused")
    return conn


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must look like HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
