"""Page extensions: another app adds context to one of this app's pages without this app importing it.

An app that depends on dialogues (evaluation) registers a provider for a page by name in its `AppConfig.ready()`;
the page's view asks for `page_context(name, **objects)` and renders what the providers returned beside its own
context. Dependencies keep running one way: dialogues names its pages, never the apps that extend them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Provider = Callable[..., dict[str, Any]]

_providers: dict[str, list[Provider]] = {}


def register(page: str, provider: Provider) -> None:
    """Add `provider` to the page named `page`; it is called with the page's objects as keyword arguments and
    returns context for the template. Registering the same provider twice has no effect."""
    providers = _providers.setdefault(page, [])
    if provider not in providers:
        providers.append(provider)


def page_context(page: str, **objects: Any) -> dict[str, Any]:
    """The context every provider of `page` adds, merged in the order they were registered."""
    context: dict[str, Any] = {}
    for provider in _providers.get(page, ()):
        context.update(provider(**objects))
    return context
