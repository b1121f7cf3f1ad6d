"""Free the objects of owners that died.

An owner frees its objects' copies when they go out of scope.  If it dies
first nobody ever will, so each agent frees every copy it holds (primary or
pulled) whose owner is gone.  The agent learns of owner deaths three ways:

* a worker of this node exits: the agent sees it, and tells the control store
  (WORKER_DIED), which publishes ``owner_died`` with its address to every agent;
* a driver disconnects from the control store: ``owner_died`` is published;
* a node dies: the owners that lived there are not known here, so the agent
  probes each owner of the objects it holds (a connection to its address) and
  frees those of owners that refuse it.  A probe that times out (a cut link)
  counts as alive: a copy kept too long only costs memory, freeing a live
  owner's object would lose data.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.node.agent import NodeAgent

log = logging.getLogger("shoal.node")

PROBE_TIMEOUT_S = 10.0


class OwnerWatch:
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.dead: set[str] = set()  # owners known dead: not probed again

    def owner_died(self, address: str) -> None:
        if not address:
            return
        self.dead.add(address)
        store = self.agent.store
        oids = [oid for oid, obj in store.table.objects.items() if obj.owner == address]
        if not oids:
            return
        log.info("freeing %d object(s) of owner %s, which died", len(oids), address)
        store.free(oids)

    async def probe_owners(self) -> None:
        agent = self.agent
        owners = {obj.owner for obj in agent.store.table.objects.values() if obj.owner}
        owners -= self.dead
        if not owners:
            return
        ordered = sorted(owners)
        answers = await asyncio.gather(*[self._refused(a) for a in ordered])
        for address, refused in zip(ordered, answers, strict=False):
            if refused:
                self.owner_died(address)

    async def _refused(self, address: str) -> bool:
        try:
            await asyncio.wait_for(self.agent.transfer.owners.get(address), PROBE_TIMEOUT_S)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError as exc:
            return exc.errno in (111, 113)  # ECONNREFUSED, EHOSTUNREACH
        except Exception:
            return False  # timed out, or refused authentication: not known dead
        return False
