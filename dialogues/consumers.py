"""Websocket consumers: authenticate, join a group, forward server-rendered fragments. Nothing else."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dialogues import events
from dialogues.models import ImportJob
from omega_web.roles import Capability, has_capability

# Close codes, as in-process clients see them (through Daphne a refusal before the handshake is an HTTP 403).
UNAUTHENTICATED, FORBIDDEN, NOT_FOUND = 4401, 4403, 4404


class LiveConsumer(AsyncWebsocketConsumer):
    """Base: subclasses name the capability needed, the group, and the fragment that shows the current state
    (sent on every connect, so a reconnect catches up on whatever was missed)."""

    capability = Capability.VIEW
    group: str

    def group_name(self, **kwargs: Any) -> str:
        raise NotImplementedError

    def current_fragment(self, **kwargs: Any) -> str | None:
        raise NotImplementedError

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        if not await database_sync_to_async(has_capability)(user, self.capability):
            await self.close(code=FORBIDDEN)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        # Join first, read the state second: an update published in between then arrives after the state
        # (a harmless repeat) instead of being lost.
        self.group = self.group_name(**kwargs)
        await self.channel_layer.group_add(self.group, self.channel_name)
        html = await database_sync_to_async(self.current_fragment)(**kwargs)
        if html is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close(code=NOT_FOUND)
            return
        await self.accept()
        await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The only message a client sends is a ping (tests and health checks); htmx sends nothing here.
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def fragment(self, event: dict) -> None:
        await self.send(text_data=event["html"])


class ImportJobConsumer(LiveConsumer):
    def group_name(self, *, pk: int) -> str:
        return events.import_group(pk)

    def current_fragment(self, *, pk: int) -> str | None:
        job = ImportJob.objects.select_related("created_by").filter(pk=pk).first()
        return None if job is None else events.render_import_job(job)
