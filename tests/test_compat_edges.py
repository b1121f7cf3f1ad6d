"""Small edges of Ray's documented behaviour that Ray's own tests rely on: each
test names the rule it pins."""

from __future__ import annotations

import pytest

import shoal
from tests.utils import wait_for_condition

pytestmark = pytest.mark.timeout(120)


@shoal.remote
class _Sleeper:
    async def nap(self, seconds: float) -> float:
        import asyncio

        await asyncio.sleep(seconds)
        return seconds


def test_force_cancel_of_an_actor_call_is_refused(shoal_cluster):
    """Ray: force=True would kill the actor's process, so it is refused for an
    actor call with a ValueError; the call itself runs on."""
    actor = _Sleeper.remote()
    ref = actor.nap.remote(0.5)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        shoal.cancel(ref, force=True)
    assert shoal.get(ref, timeout=30) == 0.5
