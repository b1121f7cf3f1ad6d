"""A cache of authenticated connections to other processes, one per address."""

from __future__ import annotations

import asyncio

from shoal.rpc.transport import Connection, Router, connect, split_address


class PeerCache:
    """``await get(address)`` opens a connection once and then reuses it while it
    stays open; concurrent callers share one connection attempt."""

    def __init__(self, router: Router, token: str, info: dict) -> None:
        self.router = router
        self.token = token
        self.info = info
        self._conns: dict[str, asyncio.Future] = {}

    async def get(self, address: str) -> Connection:
        fut = self._conns.get(address)
        if fut is not None and fut.done():
            if not fut.cancelled() and fut.exception() is None and fut.result().is_open():
                return fut.result()
            fut = None
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._conns[address] = fut
            host, port = split_address(address)
            try:
                fut.set_result(await connect(self.router, self.token, host, port,
                                             info=self.info))
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved
                self._conns.pop(address, None)
                raise
        return await asyncio.shield(fut)

    def cached(self, address: str) -> Connection | None:
        fut = self._conns.get(address)
        if fut is None or not fut.done() or fut.cancelled() or fut.exception() is not None:
            return None
        conn = fut.result()
        return conn if conn.is_open() else None

    def close_all(self) -> None:
        for address in list(self._conns):
            conn = self.cached(address)
            if conn is not None:
                conn.close()
        self._conns.clear()
