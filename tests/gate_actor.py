"""An actor that holds callers until a test opens it (tests that need a task or
an actor call to stay unfinished while they look)."""

from __future__ import annotations

import asyncio

import shoal


@shoal.remote(num_cpus=0)
class Gate:
    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    def open(self):
        self.event.set()
