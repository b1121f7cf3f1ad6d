"""One request to many peers at once, for queries that gather from the whole
cluster (the state API): every peer gets the same deadline, a peer that does
not answer in time is named instead of holding up the others, and one whose
connection is gone is skipped (its process no longer exists, so there is
nothing of it to report)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shoal.rpc.messages import Method


@dataclass
class FanOutResult:
    replies: list[tuple[Hashable, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "<peer>: why", alive but no answer


async def fan_out(peers: Iterable[tuple[Hashable, Any]], method: Method, body: Any,
                  timeout: float) -> FanOutResult:
    """Call ``method(body)`` on every ``(key, connection)``; replies keep their key."""
    peers = [(key, conn) for key, conn in peers if conn is not None and conn.is_open()]
    if not peers:
        return FanOutResult()

    async def one(conn: Any) -> Any:
        return await asyncio.wait_for(conn.call(method, body), timeout)

    results = await asyncio.gather(*(one(conn) for _, conn in peers), return_exceptions=True)
    out = FanOutResult()
    for (key, conn), result in zip(peers, results, strict=True):
        if not isinstance(result, BaseException):
            out.replies.append((key, result))
        elif isinstance(result, ConnectionError) or not conn.is_open():
            continue  # the process went away meanwhile
        elif isinstance(result, TimeoutError):
            out.missing.append(f"{key}: no answer within {timeout:g} s")
        else:
            out.missing.append(f"{key}: {type(result).__name__}: {result}")
    return out
