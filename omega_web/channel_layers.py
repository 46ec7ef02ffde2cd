"""A channel layer for the embedded mode that is safe to call from worker threads.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the server's event loop. Celery threads
publish through async_to_sync, i.e. from another loop, and then delivery waits on the wrong loop (seen: a
one-second delay and messages dropped under bursts). This layer runs every call on the loop that receives,
which is the ASGI server's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer


class LoopSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _owner_loop: asyncio.AbstractEventLoop | None = None

    async def _on_owner_loop(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        owner = self._owner_loop
        running = asyncio.get_running_loop()
        if owner is None or owner is running or owner.is_closed() or not owner.is_running():
            return await call(*args)
        future = asyncio.run_coroutine_threadsafe(call(*args), owner)
        return await asyncio.wrap_future(future)

    async def receive(self, channel: str) -> dict:
        self._owner_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        await self._on_owner_loop(super().send, channel, message)

    async def group_add(self, group: str, channel: str) -> None:
        await self._on_owner_loop(super().group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._on_owner_loop(super().group_discard, group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self._on_owner_loop(super().group_send, group, message)
