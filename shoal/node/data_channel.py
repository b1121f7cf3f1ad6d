"""Authenticated raw byte streams between node agents, for object data.

Why not the RPC connections: a chunk sent as a msgpack message is copied three
more times on the way in (into the decoder's buffer, out into a ``bytes``, into
the arena).  Here the receiver reads straight into the arena with
``sock_recv_into`` and the sender writes straight from it with
``sock_sendall``, so the only copies are the kernel's.

Each agent listens on a second port (its *data address*, announced in the node
table) and, on Linux, on an abstract Unix socket named after it, as the RPC
listener does.  A stream opens with the same token handshake as every shoal
connection (:mod:`shoal.rpc.protocol`); then the client sends requests and the
server answers each one in turn::

    client (puller)                                   server (holder)
      | ["shoal", version, token, info] ---------------> |  token checked
      | <---------------------------------- ["shoal","ok"] |
      | REQ  !HQQ (len(oid), offset, length) + oid -----> |  pin the object
      | <------ RESP !qQ (object size or -1, n) + n bytes |  unpin
      | ... (one request at a time per stream) ...

``length`` 0 asks only for the size.  A size of -1 means "not here" (never
created, freed or evicted).  An object created but not sealed yet is waited
for: its creator's seal may arrive after the owner has already told a reader
where the object is.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from shoal.node.node_metrics import NodeMetrics
from shoal.rpc import protocol
from shoal.rpc.transport import LOCAL_SOCKETS, local_socket_name, split_address

log = logging.getLogger("shoal.transfer")

REQ = struct.Struct("!HQQ")
RESP = struct.Struct("!qQ")
CONNECT_TIMEOUT_S = 10.0


class NotHere(Exception):
    """The source has no sealed copy of the object."""


async def recv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                     view: memoryview) -> None:
    got, total = 0, len(view)
    while got < total:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise ConnectionError("data stream closed by the peer")
        got += n


async def _read_handshake(loop, sock: socket.socket, client: bool) -> dict:
    decoder = protocol.Decoder(handshake=True)
    buf = bytearray(4096)
    while True:
        n = await loop.sock_recv_into(sock, buf)
        if n == 0:
            raise ConnectionError("data stream closed during the handshake")
        decoder.feed(bytes(buf[:n]))
        message = decoder.handshake_message()
        if message is not None:
            return message


def _tune(sock: socket.socket) -> None:
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ---- server -------------------------------------------------------------------------
class ChunkSource(Protocol):
    """What the server reads from: the node's object store
    (:meth:`shoal.node.object_store.ObjectStore.open_reader`)."""

    async def open_reader(self, oid: bytes, key: object) -> Any:
        """A reader of the object's bytes (``size``, ``await read(offset, n)``,
        ``close()``), held for ``key`` until closed; waits for an object created
        but not sealed yet; None if it is not here."""


class DataServer:
    """Serves chunks of sealed local objects to authenticated pullers."""

    def __init__(self, source: ChunkSource, token: str,
                 metrics: NodeMetrics | None = None) -> None:
        self.source = source
        self.token = token
        self.metrics = metrics if metrics is not None else NodeMetrics()  # bytes served
        self.address = ""
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task] = set()
        self.closing = False

    async def start(self, host: str) -> str:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, 0))
        tcp.listen(256)
        tcp.setblocking(False)
        port = tcp.getsockname()[1]
        self._listeners.append(tcp)
        if LOCAL_SOCKETS:
            local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                local.bind(local_socket_name(host, port))
                local.listen(256)
                local.setblocking(False)
                self._listeners.append(local)
            except OSError:
                local.close()
        for listener in self._listeners:
            self._spawn(self._accept(loop, listener))
        self.address = f"{host}:{port}"
        return self.address

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, loop, listener: socket.socket) -> None:
        while not self.closing:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError:
                if self.closing:
                    return
                await asyncio.sleep(0.05)
                continue
            _tune(sock)
            self._spawn(self._serve(loop, sock))

    async def _serve(self, loop, sock: socket.socket) -> None:
        key = object()  # the pins this stream holds
        try:
            hello = await asyncio.wait_for(_read_handshake(loop, sock, client=False),
                                           CONNECT_TIMEOUT_S)
            try:
                protocol.check_handshake(hello, self.token)
            except protocol.AuthenticationError:
                log.warning("refused a data connection: wrong or missing cluster token")
                return
            await loop.sock_sendall(sock, protocol.encode_handshake_reply({}))
            head = bytearray(REQ.size)
            while True:
                await recv_exact(loop, sock, memoryview(head))
                oid_len, offset, length = REQ.unpack(head)
                oid = bytearray(oid_len)
                await recv_exact(loop, sock, memoryview(oid))
                await self._answer(loop, sock, bytes(oid), offset, length, key)
        except (ConnectionError, OSError, TimeoutError, protocol.ProtocolError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("data stream failed")
        finally:
            sock.close()

    async def _answer(self, loop, sock, oid: bytes, offset: int, length: int,
                      key: object) -> None:
        reader = await self.source.open_reader(oid, key)
        if reader is None:
            await loop.sock_sendall(sock, RESP.pack(-1, 0))
            return
        data: Any = b""
        try:
            n = max(0, min(length, reader.size - offset))
            if n:  # from memory, or from the spill file of a spilled object
                data = await reader.read(offset, n)
            await loop.sock_sendall(sock, RESP.pack(reader.size, n))
            if n:
                await loop.sock_sendall(sock, data)
                self.metrics.transfer_sent_bytes += n
        finally:
            del data
            reader.close()

    def close(self) -> None:
        self.closing = True
        for listener in self._listeners:
            listener.close()
        for task in list(self._tasks):
            task.cancel()


# ---- client -------------------------------------------------------------------------
class DataLink:
    """One open stream to a source; one request at a time."""

    def __init__(self, address: str, sock: socket.socket) -> None:
        self.address = address
        self.sock = sock
        self._head = bytearray(RESP.size)

    @classmethod
    async def open(cls, address: str, token: str, info: dict) -> DataLink:
        loop = asyncio.get_running_loop()
        host, port = split_address(address)
        sock = await asyncio.wait_for(_connect(loop, host, port), CONNECT_TIMEOUT_S)
        try:
            await loop.sock_sendall(sock, protocol.encode_handshake(token, info))
            reply = await asyncio.wait_for(_read_handshake(loop, sock, client=True),
                                           CONNECT_TIMEOUT_S)
            protocol.check_handshake_reply(reply)
        except BaseException:
            sock.close()
            raise
        return cls(address, sock)

    async def fetch(self, oid: bytes, offset: int, length: int,
                    into: Callable[[int], memoryview] | None) -> tuple[int, int]:
        """Read ``length`` bytes at ``offset`` of ``oid`` into ``into(n)``; returns
        (object size, bytes read).  Raises NotHere."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, REQ.pack(len(oid), offset, length) + oid)
        await recv_exact(loop, self.sock, memoryview(self._head))
        size, n = RESP.unpack(self._head)
        if size < 0:
            raise NotHere(oid.hex())
        if n:
            if into is None:
                raise ConnectionError("the source sent data for a size query")
            await recv_exact(loop, self.sock, into(n))
        return size, n

    def close(self) -> None:
        self.sock.close()


async def _connect(loop, host: str, port: int) -> socket.socket:
    if LOCAL_SOCKETS:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, local_socket_name(host, port))
            return sock
        except OSError:
            sock.close()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    _tune(sock)
    try:
        await loop.sock_connect(sock, addr)
    except BaseException:
        sock.close()
        raise
    return sock
