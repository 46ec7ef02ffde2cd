"""ASGI entry point: Django for HTTP, Channels for websockets (login and allowed origins required)."""

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omega_web.settings")
django_asgi_app = get_asgi_application()  # must run before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dialogues.live.routing import websocket_urlpatterns  # noqa: E402


class BoundedHTTP:
    """At most `limit` HTTP requests inside Django at once per process; the others wait their turn here.

    Django runs each request's sync code in a thread of its own. Unbounded, twenty concurrent requests are
    twenty threads taking turns on one interpreter lock (and on the connection pool): every request gets slow
    and throughput falls. Bounded, each is served at full speed, first come first served."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._gate: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.limit)
        async with self._gate:
            await self.app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": BoundedHTTP(django_asgi_app, settings.OMEGA_WEB_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
