"""Every URL of the apps, and a concrete address for each from the samples fixture (tests/conftest.py): for the
permission matrix (tests/test_permissions.py) and the security wiring (tests/security/test_wiring.py)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver, reverse


def walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}" if entry.name else None, entry.callback


def app_urls():
    """(name, view) of every URL outside Django admin and static files."""
    return [(name, view) for route, name, view in walk(get_resolver().url_patterns) if not route.startswith("admin/")]


def concrete_url(name: str, samples: dict[str, int]) -> str:
    kwargs = {}
    possibilities = get_resolver().reverse_dict.getlist(name)
    params = possibilities[0][0][0][1] if possibilities else []
    for param in params:
        if param == "pk":
            kind = name.split("_")[0]
            assert kind in samples, f"add a sample object for URL {name!r} to the samples fixture in tests/conftest.py"
            kwargs["pk"] = samples[kind]
        elif param == "viewer":
            kwargs["viewer"] = "agent1"
        elif param == "call_id":
            kwargs["call_id"] = samples["call"]
        elif param == "table":
            kwargs["table"] = "sif"
        elif param == "number":
            kwargs["number"] = 1  # agent 1 of a dialogue
        elif param == "action":
            kwargs["action"] = "pause"  # harmless on a paused sample run
        elif param == "name" and name.startswith("prompt_set"):
            kwargs["name"] = "built-in"  # the set every installation has
        else:
            raise AssertionError(f"URL {name!r} has a parameter {param!r} this test cannot fill yet")
    return reverse(name, kwargs=kwargs)
