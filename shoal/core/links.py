"""What a core worker opens when it starts: its event loop, its connections to
the node agent, the control store and its peers, and its window on the node's
store.

The worker's parts (task manager, object locations, recovery, actors, ...)
are built before ``CoreWorker.start`` opens these, so each part that needs one
is given this holder at construction and reads the field when it uses it,
instead of reaching through the whole worker.  The worker fills each field in
once, on its io thread, before any part runs; none changes afterwards
(``peers`` is made with the holder, and connects on demand).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.core.shm_window import ShmWindow
    from shoal.rpc.peers import PeerCache
    from shoal.rpc.transport import Connection


@dataclass
class Links:
    peers: PeerCache  # other core workers and node agents, by address
    loop: asyncio.AbstractEventLoop | None = None  # the io loop (thread "shoal-io")
    node: Connection | None = None  # this node's agent
    control: Connection | None = None  # the control store (may be ``node``: the head)
    shm: ShmWindow | None = None  # the node's shared-memory store, mapped
