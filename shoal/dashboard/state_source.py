"""The dashboard's one connection to the control store, and the queries it makes.

It asks exactly what the state API and ``shoal status`` ask (LIST_STATE and
CLUSTER_STATUS) and merges the replies with :mod:`shoal.util.state_build`, so
``list_tasks()`` and the tasks page count the same records.  Replies are kept
for ``CACHE_S`` so that several open pages (each polling every second) cost the
cluster one query, not one each.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shoal.launch.control_client import open_control
from shoal.launch.state_client import FAN_OUT_SHARE
from shoal.rpc.messages import Method
from shoal.rpc.transport import Connection, Router
from shoal.util import state_build

CACHE_S = 0.5
QUERY_TIMEOUT_S = 10.0


class StateSource:
    def __init__(self, address: str, token: str) -> None:
        self.address, self.token = address, token
        self.conn: Connection | None = None
        self._cache: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, asyncio.Lock] = {}

    async def connect(self) -> Connection:
        self.conn = await open_control(Router(), self.token, self.address,
                                       name="shoal dashboard", who="the dashboard")
        return self.conn

    async def _cached(self, key: Any, method: Method, body: Any) -> Any:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent pollers share one query
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return hit[1]
            assert self.conn is not None, "connect() first"
            reply = await asyncio.wait_for(self.conn.call(method, body), QUERY_TIMEOUT_S)
            self._cache[key] = (time.monotonic(), reply)
            return reply

    async def status(self) -> dict:
        return await self._cached("status", Method.CLUSTER_STATUS, None)

    async def state(self, *kinds: str) -> dict:
        key = tuple(sorted(kinds))
        body = {"kinds": list(key), "timeout": QUERY_TIMEOUT_S * FAN_OUT_SHARE}
        return await self._cached(key, Method.LIST_STATE, body)

    # The records the state API returns (``list_tasks(detail=True)`` etc.), as dicts.
    async def tasks(self) -> list[dict]:
        return state_build.task_records(await self.state("tasks", "actors", "workers"))

    async def actors(self) -> list[dict]:
        return state_build.actor_records(await self.state("tasks", "actors", "workers"))

    async def objects(self) -> list[dict]:
        return state_build.object_records(await self.state("objects"))

    async def read_log(self, node_id: str, name: str, offset: int, max_bytes: int) -> dict:
        """A chunk of a node's log file (never cached: the page streams it)."""
        assert self.conn is not None, "connect() first"
        return await asyncio.wait_for(
            self.conn.call(Method.READ_NODE_LOG, [node_id, name, offset, max_bytes]),
            QUERY_TIMEOUT_S)
