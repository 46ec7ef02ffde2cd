"""Display helpers for task text. They return plain strings: templates escape them as usual."""

from django import template

from dialogues.engine.context import ENVIRONMENT, PUBLIC, render_for, restricted_blocks

register = template.Library()


@register.filter
def goal_text(goal: str) -> str:
    """A goal as its agent reads it: the hint tags rendered as their text."""
    return render_for(goal, ENVIRONMENT)


@register.filter
def public_text(text: str) -> str:
    """A scenario as everyone may read it: viewer-restricted blocks left out."""
    return render_for(text, PUBLIC)


@register.filter
def restricted(text: str) -> list[tuple[str, str]]:
    """The viewer-restricted blocks of a text, as (viewer, text) pairs."""
    return restricted_blocks(text)
