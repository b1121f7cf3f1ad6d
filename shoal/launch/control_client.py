"""Opening a connection to a cluster's control store, with errors that say what
went wrong and where: nobody listening, nobody answering, a refused token, or
another shoal version.  Used by joining nodes, drivers, ``shoal status`` and
``cluster_utils``."""

from __future__ import annotations

import asyncio
from typing import Any

from shoal.rpc.messages import Method
from shoal.rpc.protocol import (
    AuthenticationError,
    ProtocolError,
    VersionMismatchError,
    check_version,
)
from shoal.rpc.transport import Connection, Router, connect, split_address

DEFAULT_TIMEOUT_S = 5.0


class ClusterConnectError(ConnectionError):
    """The control store at an address could not be reached or refused us."""


async def open_control(router: Router, token: str, address: str, *, name: str,
                       timeout: float = DEFAULT_TIMEOUT_S,
                       who: str = "this process") -> Connection:
    """An authenticated connection to the control store at ``address``, or a
    :class:`ClusterConnectError` naming it within about ``timeout`` seconds.
    Raises :class:`VersionMismatchError` if the head runs another version."""
    host, port = split_address(address)
    try:
        conn = await connect(router, token, host, port, info={"name": name}, timeout=timeout)
    except TimeoutError:
        raise ClusterConnectError(
            f"the shoal head at {address} did not answer within {timeout:g} s (is the "
            "address right, and is 'shoal start --head' running there?)") from None
    except ConnectionRefusedError:
        raise ClusterConnectError(
            f"no shoal head is listening at {address} (connection refused)") from None
    except AuthenticationError as exc:
        raise ClusterConnectError(
            f"the shoal head at {address} refused the connection of {who}: {exc}") from None
    except ProtocolError as exc:
        raise ClusterConnectError(
            f"something answered at {address}, but not a shoal head ({exc})") from None
    except ConnectionError as exc:
        raise ClusterConnectError(
            f"the shoal head at {address} refused the connection of {who}: wrong cluster "
            f"token? (pass --token or set SHOAL_TOKEN) [{exc}]") from None
    except OSError as exc:
        raise ClusterConnectError(f"could not reach the shoal head at {address}: {exc}"
                                  ) from None
    try:
        check_version(conn.peer_info.get("version"), f"the head at {address}", who)
    except VersionMismatchError:
        conn.close()
        raise
    return conn


def call(address: str, token: str, method: Method, body: Any = None,
         timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """One request to the control store from synchronous code (CLI, tests)."""

    async def go() -> Any:
        conn = await open_control(Router(), token, address, name="shoal client",
                                  timeout=timeout)
        try:
            return await asyncio.wait_for(conn.call(method, body), timeout)
        finally:
            conn.close()

    return asyncio.run(go())
