"""An in-process connection pair with the same interface as a socket one.

The head process hosts the control store and a node agent side by side; they
talk through a loopback pair instead of a socket, with the very same handlers.
Unit tests use it to run services without any network.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shoal.rpc.messages import Method
from shoal.rpc.transport import ConnectionLostError, RemoteError, Router


class LoopbackConnection:
    def __init__(self, router: Router, name: str) -> None:
        self.router = router  # handles what the *other* end sends us
        self.name = name
        self.peer: LoopbackConnection | None = None
        self.peer_info: dict = {"name": name}
        self.state: dict[str, Any] = {}
        self._open = True
        self.loop = asyncio.get_event_loop()
        self.closed: asyncio.Future = self.loop.create_future()

    @classmethod
    def pair(
        cls, router_a: Router, name_a: str, router_b: Router, name_b: str
    ) -> tuple[LoopbackConnection, LoopbackConnection]:
        """``a`` is held by service A and delivers to B's router, and vice versa."""
        a = cls(router_b, name_b)
        b = cls(router_a, name_a)
        a.peer, b.peer = b, a
        return a, b

    def is_open(self) -> bool:
        return self._open

    def peer_name(self) -> str:
        return self.name

    def call(self, method: Method, body: Any = None) -> asyncio.Future:
        fut = self.loop.create_future()
        if not self._open:
            fut.set_exception(ConnectionLostError(f"loopback to {self.name} closed"))
            return fut
        handler = self.router.handlers.get(int(method))
        if handler is None:
            fut.set_exception(RemoteError("UnknownMethod", str(method)))
            return fut
        try:
            result = handler(self.peer, body)
        except Exception as exc:
            fut.set_exception(RemoteError(type(exc).__name__, str(exc)))
            return fut
        if isinstance(result, asyncio.Future) or asyncio.iscoroutine(result):
            inner = asyncio.ensure_future(result)

            def done(f: asyncio.Future) -> None:
                if fut.done():
                    return
                if f.cancelled():
                    fut.cancel()
                elif f.exception() is not None:
                    exc = f.exception()
                    fut.set_exception(RemoteError(type(exc).__name__, str(exc)))
                else:
                    fut.set_result(f.result())

            inner.add_done_callback(done)
        else:
            fut.set_result(result)
        return fut

    def notify(self, method: Method, body: Any = None) -> None:
        if not self._open:
            return
        handler = self.router.handlers.get(int(method))
        if handler is not None:
            self.loop.call_soon(self._deliver, handler, body)

    def _deliver(self, handler: Any, body: Any) -> None:
        result = handler(self.peer, body)
        if asyncio.iscoroutine(result):
            self.loop.create_task(result)

    def close(self) -> None:
        self.close_end()
        if self.peer is not None:
            self.peer.close_end()

    def close_end(self) -> None:
        """Close this end only (``close`` closes both, as a socket's two ends see)."""
        if self._open:
            self._open = False
            if not self.closed.done():
                self.closed.set_result(None)
            for callback in self.router.on_close:
                callback(self.peer)
