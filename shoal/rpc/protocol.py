"""Wire protocol of every shoal connection, without any I/O.

Theory of operation
-------------------
A connection is a byte stream carrying a sequence of msgpack arrays.  msgpack
is self-delimiting, so no length prefix is needed: the decoder is fed raw bytes
and yields whole messages.

Every connection starts with one handshake message from the client::

    client                                   server
      | ["shoal", PROTOCOL_VERSION, token, info] |
      | ---------------------------------------> |  token checked in constant time
      | <--------------------------------------- |  ["shoal", "ok", server_info]
      |                                          |  (or the socket is closed)

Until the handshake is accepted the server buffers at most
``MAX_HANDSHAKE_BYTES`` and decodes nothing but that one msgpack array; no
pickled byte is ever read from an unauthenticated peer.  After it, messages are:

    [REQUEST,  request_id, method, body]   -> answered by RESPONSE or ERROR
    [RESPONSE, request_id, body]
    [ERROR,    request_id, error_type, message]
    [NOTIFY,   method, body]                 one-way

``method`` is a :class:`~shoal.rpc.messages.Method` value; ``body`` is any
msgpack value (pickled payloads travel inside it as ``bytes``).

State machine of one side (``ConnectionState``)::

    HANDSHAKE --accepted--> OPEN --close/error--> CLOSED
        \\--rejected/garbage-----------------------/
"""

from __future__ import annotations

import enum
import hmac
import threading
from collections.abc import Iterator
from typing import Any

import msgpack

MAGIC = "shoal"
PROTOCOL_VERSION = 1
MAX_HANDSHAKE_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1 << 31


class Kind(enum.IntEnum):
    REQUEST = 0
    RESPONSE = 1
    ERROR = 2
    NOTIFY = 3


class ConnectionState(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class ProtocolError(Exception):
    """The peer broke the protocol (bad handshake, malformed message)."""


class AuthenticationError(ProtocolError):
    """The peer presented a wrong or missing cluster token."""


class VersionMismatchError(ValueError, RuntimeError):
    """The peer runs another shoal version; processes of a cluster must match (a
    RuntimeError too, as Ray's version check raises)."""


def check_version(theirs: object, who: str, we: str = "this cluster") -> None:
    """Refuse a peer (``who``: e.g. "node 10.0.0.2:6380") whose shoal version is
    not ours.  The wire protocol version is checked by the handshake; this is the
    release version, checked when a node or driver joins.  Ours is
    ``shoal._version.__version__`` and the package's ``shoal.__version__`` as this
    process sees them (Ray's tests fake the latter)."""
    import shoal
    from shoal import _version

    __version__ = next((v for v in (_version.__version__, shoal.__version__)
                        if v != theirs), theirs)
    if theirs != __version__:
        raise VersionMismatchError(
            f"shoal version mismatch: {who} runs shoal {theirs or '(unknown)'} but {we} "
            f"runs shoal {__version__}; every node and driver of a cluster must run the "
            "same version"
        )


class _Packers(threading.local):
    """One reusable Packer per thread: ``msgpack.packb`` builds a new one on every
    call (about half of its cost for a small message)."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)


_packers = _Packers()


def pack(obj: Any) -> bytes:
    return _packers.packer.pack(obj)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def encode_handshake(token: str, info: dict) -> bytes:
    return pack([MAGIC, PROTOCOL_VERSION, token, info])


def encode_handshake_reply(info: dict) -> bytes:
    return pack([MAGIC, "ok", info])


def encode_request(request_id: int, method: int, body: Any) -> bytes:
    return pack([Kind.REQUEST, request_id, method, body])


def encode_response(request_id: int, body: Any) -> bytes:
    return pack([Kind.RESPONSE, request_id, body])


def encode_error(request_id: int, error_type: str, message: str) -> bytes:
    return pack([Kind.ERROR, request_id, error_type, message])


def encode_notify(method: int, body: Any) -> bytes:
    return pack([Kind.NOTIFY, method, body])


def check_handshake(message: Any, token: str) -> dict:
    """Validate a client's handshake message; return the client's info dict."""
    if not (isinstance(message, list) and len(message) == 4 and message[0] == MAGIC):
        raise ProtocolError("not a shoal handshake")
    _, version, presented, info = message
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version mismatch: peer speaks {version}, we speak {PROTOCOL_VERSION}"
        )
    if not isinstance(presented, str) or not hmac.compare_digest(
        presented.encode(), token.encode()
    ):
        raise AuthenticationError("wrong or missing cluster token")
    return info if isinstance(info, dict) else {}


def check_handshake_reply(message: Any) -> dict:
    if not (isinstance(message, list) and len(message) == 3 and message[0] == MAGIC):
        raise ProtocolError("unexpected handshake reply")
    if message[1] != "ok":
        raise AuthenticationError(str(message[1]))
    return message[2] if isinstance(message[2], dict) else {}


class Decoder:
    """Feed bytes, iterate messages.  Starts in handshake mode (size-capped)."""

    def __init__(self, handshake: bool = True) -> None:
        self.state = ConnectionState.HANDSHAKE if handshake else ConnectionState.OPEN
        self._unpacker = self._make_unpacker()
        self._handshake_bytes = 0  # everything fed before the handshake completed

    def _make_unpacker(self) -> msgpack.Unpacker:
        limit = (
            MAX_HANDSHAKE_BYTES
            if self.state is ConnectionState.HANDSHAKE
            else MAX_MESSAGE_BYTES
        )
        return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=limit)

    def feed(self, data: bytes) -> None:
        if self.state is ConnectionState.HANDSHAKE:
            self._handshake_bytes += len(data)
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull as exc:
            self.state = ConnectionState.CLOSED
            raise ProtocolError("message too large for the current state") from exc

    def handshake_message(self) -> Any:
        """Return the handshake message if complete, else None; leaves the
        remaining bytes for the main decoder."""
        try:
            message = self._unpacker.unpack()
        except msgpack.OutOfData:
            # msgpack parses incrementally and drops what it consumed, so its
            # buffer limit alone would let a peer stream an endless handshake.
            if self._handshake_bytes > MAX_HANDSHAKE_BYTES:
                self.state = ConnectionState.CLOSED
                raise ProtocolError("handshake larger than the limit") from None
            return None
        except Exception as exc:
            self.state = ConnectionState.CLOSED
            raise ProtocolError(f"malformed handshake: {exc}") from exc
        return message

    def open(self) -> None:
        """Switch from handshake to open mode, keeping buffered bytes."""
        rest = b""
        try:
            # Whatever followed the handshake in the same read.
            rest = self._unpacker.read_bytes(MAX_HANDSHAKE_BYTES)
        except Exception:
            rest = b""
        self.state = ConnectionState.OPEN
        self._unpacker = self._make_unpacker()
        if rest:
            self._unpacker.feed(rest)

    def messages(self) -> Iterator[Any]:
        try:
            yield from self._unpacker
        except Exception as exc:
            self.state = ConnectionState.CLOSED
            raise ProtocolError(f"malformed message: {exc}") from exc
