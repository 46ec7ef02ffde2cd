"""Websocket consumers of the live pages (an import job, a dialogue, a run, the runs list): each authenticates,
joins its group and sends server-rendered fragments. Nothing else.

Every consumer sends the current state when it connects, so a page that reconnects after a dropped connection
catches up on whatever it missed. What is published to the groups comes from the areas' events modules.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from dialogues.common.live import RUNS_GROUP, dialogue_group, import_group, run_group
from dialogues.inspection.selectors import (
    dialogue_get,
    dialogue_live_context,
    rendered_turns,
    run_card,
    run_cards,
    runs_page,
    turn_views,
)
from dialogues.library.events import render_import_job
from dialogues.library.models import ImportJob
from dialogues.runs.models import Dialogue, Run
from dialogues.runs.selectors import SETTLED_RUN_STATUSES
from omega_web.roles import Capability, capability_map, has_capability

# Close codes, as in-process clients see them (through Daphne a refusal before the handshake is an HTTP 403).
UNAUTHENTICATED, FORBIDDEN, NOT_FOUND = 4401, 4403, 4404


class LiveConsumer(AsyncWebsocketConsumer):
    """Base: subclasses name the group and the fragment that shows the current state."""

    capability = Capability.VIEW
    group: str = ""

    def group_name(self, **kwargs: Any) -> str:
        raise NotImplementedError

    def current_fragment(self, **kwargs: Any) -> str | None:
        """The state now ("" to send nothing), or None when the object does not exist."""
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
        if html:
            await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if self.group:
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

    def query_text(self, name: str) -> str:
        values = parse_qs(self.scope.get("query_string", b"").decode()).get(name)
        return values[0] if values else ""

    def query(self, name: str, default: int) -> int:
        try:
            return int(self.query_text(name) or default)
        except ValueError:
            return default


class ImportJobConsumer(LiveConsumer):
    def group_name(self, *, pk: int) -> str:
        return import_group(pk)

    def current_fragment(self, *, pk: int) -> str | None:
        job = ImportJob.objects.select_related("created_by").filter(pk=pk).first()
        return None if job is None else render_import_job(job)


class DialogueConsumer(LiveConsumer):
    """One dialogue's page: new turns are appended as they are saved; the status, the chart and the stepping
    buttons are refreshed. On connecting, the page says which turn it has (`?after=`) and gets the state now;
    if it missed turns (a reconnect after a dropped connection), the whole timeline is sent again."""

    last_sent = -1

    def group_name(self, *, pk: int) -> str:
        return dialogue_group(pk)

    def current_fragment(self, *, pk: int) -> str | None:
        if not Dialogue.objects.filter(pk=pk).exists():
            return None
        self.last_sent = self.query("after", -1)
        return self._render(pk, rated=None, first=True)

    def _render(self, pk: int, *, rated: int | None, first: bool = False) -> str:
        dialogue = dialogue_get(pk)
        views = turn_views(dialogue)
        newest = views[-1].index if views else -1
        context = dialogue_live_context(dialogue, views, can=capability_map(self.scope["user"]))
        if first and newest > self.last_sent:
            context["timeline"] = rendered_turns(dialogue, views)  # the page missed turns: resend them all
        else:
            context["new"] = rendered_turns(dialogue, [v for v in views if v.index > self.last_sent])
            context["changed"] = [v for v in views if v.index == rated and v.index <= self.last_sent]
        self.last_sent = max(self.last_sent, newest)
        return render_to_string("inspection/live.html", context)

    async def dialogue_changed(self, event: dict) -> None:
        html = await database_sync_to_async(self._render)(event["dialogue"], rated=event.get("rated"))
        await self.send(text_data=html)


class RunConsumer(LiveConsumer):
    """One run's page: its progress card, morphed in place. The page says which status it was drawn with
    (`?status=`); when the run settles (finished or cancelled) after that, the card carries the `run-settled`
    event once, on which the page redraws what it counted when it was drawn (its dialogues, the evaluation panel)."""

    shown_status = ""

    def group_name(self, *, pk: int) -> str:
        return run_group(pk)

    def current_fragment(self, *, pk: int) -> str | None:
        run = Run.objects.filter(pk=pk).first()
        if run is None:
            return None
        self.shown_status = self.query_text("status")
        return self._render(run)

    def _render(self, run: Run) -> str:
        card = run_card(run)
        status = card["p"]["status"]
        settled_now = status in SETTLED_RUN_STATUSES and self.shown_status not in SETTLED_RUN_STATUSES
        self.shown_status = status
        context = {"card": card, "oob": True, "settled_now": settled_now, "can": capability_map(self.scope["user"])}
        return render_to_string("runs/detail.html#run-progress", context)

    async def run_changed(self, event: dict) -> None:
        html = await database_sync_to_async(self._render_id)(event["run"])
        await self.send(text_data=html)

    def _render_id(self, run_id: int) -> str:
        return self._render(Run.objects.get(pk=run_id))


class RunsListConsumer(LiveConsumer):
    """The runs list: the rows of the runs its page shows, morphed in place as they move; on the first page (newest
    first), every run launched since the page was drawn, added in its place. The page says which page it shows and
    the newest run there was when it was drawn (`?page=&newest=`); a run on another page is not sent at all."""

    first_page = False
    since = 0  # the newest run when the page was drawn: a run above it is new
    shown: set[int]

    def group_name(self) -> str:
        return RUNS_GROUP

    def current_fragment(self) -> str | None:
        number, self.since = self.query("page", 1), self.query("newest", 0)
        page = runs_page(number, newest=self.since)
        self.first_page = page.number == 1
        self.shown = {run.pk for run in page}
        newer = list(Run.objects.filter(pk__gt=self.since).order_by("id")) if self.first_page else []
        # catching up: the rows as they are now, and the runs launched between drawing and connecting
        return self._rows(list(page) + newer)

    async def run_changed(self, event: dict) -> None:
        html = await database_sync_to_async(self._changed)(event["run"])
        if html:
            await self.send(text_data=html)

    def _changed(self, run_id: int) -> str:
        if run_id not in self.shown and not (self.first_page and run_id > self.since):
            return ""  # on another page of the list
        return self._rows(list(Run.objects.filter(pk=run_id)))

    def _rows(self, runs: list[Run]) -> str:
        can = capability_map(self.scope["user"])
        parts = []
        for card in run_cards(runs):
            pk = card["run"].pk
            if pk in self.shown:
                parts.append(render_to_string("runs/list.html#run-row", {"card": card, "oob": True, "can": can}))
                continue
            # a new row goes below the nearest newer run the page shows, or at the top
            newer = [shown for shown in self.shown if shown > pk]
            where = f"afterend:#run-row-{min(newer)}" if newer else "afterbegin:#run-list"
            row = render_to_string("runs/list.html#run-row", {"card": card, "can": can}).strip()
            parts.append(f'<div hx-swap-oob="{where}">{row}</div>')
            self.shown.add(pk)
        return "".join(parts)
