"""What each participant of a task sees: one agent's view and the omniscient view for judges.

Follows SOTOPIA (METHOD.md §1): an agent sees the scenario, both names, its own full background (secret
included), the other's background only as far as the scenario's relationship allows, its own goal and
`Unknown` for the other's. Judges see everything. Text marked `<p viewer='environment'>` is for judges only;
goal tags (`<extra_info>`, `<strategy_hint>`, `<clarification_hint>`) are rendered as their text.

Pure Python: the engine, the exports and the web pages all call these functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class RelationshipType(StrEnum):
    STRANGER = "0"
    KNOW_BY_NAME = "1"
    ACQUAINTANCE = "2"
    FRIEND = "3"
    ROMANTIC = "4"
    FAMILY = "5"


AgentIndex = Literal[0, 1]
ENVIRONMENT = "environment"
_GENDER_ADJECTIVE = {"Man": "male", "Woman": "female", "Nonbinary": "nonbinary"}
# <p viewer='agent_0'>…</p> or <p viewer="environment">…</p>: visible to that viewer only.
_VIEWER_BLOCK = re.compile(r"<p\s+viewer\s*=\s*(['\"])([^'\"]*)\1\s*>(.*?)</p>", re.DOTALL)
_TEXT_TAGS = re.compile(r"</?(extra_info|strategy_hint|clarification_hint)\s*>")
_TAG_NAMES = "extra_info|strategy_hint|clarification_hint"
# `…</extra_info><strategy_hint>…` would otherwise glue two sentences together
_ADJACENT_TAGS = re.compile(rf"</(?:{_TAG_NAMES})\s*>\s*<(?:{_TAG_NAMES})\s*>")
PUBLIC = "public"  # a viewer that sees no restricted block: what everyone may read


@dataclass(frozen=True)
class Profile:
    first_name: str
    last_name: str
    age: int | None  # None: unknown (a profile rebuilt from an imported prompt)
    occupation: str
    gender: str
    gender_pronoun: str
    public_info: str
    personality_and_values: str
    secret: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class TaskSpec:
    scenario: str
    relationship: RelationshipType | None  # None: unknown (a task rebuilt from an imported corpus)
    agents: tuple[Profile, Profile]
    goals: tuple[str, str]
    # an imported task's context blocks exactly as each side's prompt showed them ("" where no prompt of that side
    # was imported): agent_context gives them back verbatim instead of rebuilding them from partial profiles
    contexts: tuple[str, str] = ("", "")

    @property
    def names(self) -> tuple[str, str]:
        return (self.agents[0].name, self.agents[1].name)


def render_for(text: str, viewer: str) -> str:
    """Keep the viewer-restricted blocks `viewer` may see (agent_0 and agent_1 their own, the environment
    all of them), drop the others, and turn goal tags into their text."""

    def keep_if_visible(match: re.Match[str]) -> str:
        # the environment (the judges) sees every block; an agent only those addressed to it; PUBLIC none
        return match.group(3) if viewer in (ENVIRONMENT, match.group(2)) else ""

    rendered = _VIEWER_BLOCK.sub(keep_if_visible, text)
    rendered = _ADJACENT_TAGS.sub(" ", rendered)
    rendered = _TEXT_TAGS.sub("", rendered)
    return re.sub(r"[ \t]{2,}", " ", rendered).strip()


def restricted_blocks(text: str) -> list[tuple[str, str]]:
    """The viewer-restricted blocks of a text, as (viewer, rendered text)."""
    return [(m.group(2), render_for(m.group(3), ENVIRONMENT)) for m in _VIEWER_BLOCK.finditer(text)]


def _identity(p: Profile) -> str:
    if p.age is None:  # a partial profile: only what is known
        return p.name if not p.gender_pronoun else f"{p.name}. {p.gender_pronoun} pronouns."
    gender = _GENDER_ADJECTIVE.get(p.gender, p.gender.lower())
    return f"{p.name} is a {p.age}-year-old {gender} {p.occupation.lower()}. {p.gender_pronoun} pronouns."


def full_background(profile: Profile) -> str:
    """The background as its owner (and a judge) sees it, secret included."""
    parts = [
        _identity(profile),
        profile.public_info,
        f"Personality and values description: {profile.personality_and_values}",
        f"{profile.first_name}'s secrets: {profile.secret}",
    ]
    return " ".join(part.strip() for part in parts if part.strip())


def background_seen_by_other(profile: Profile, relationship: RelationshipType) -> str:
    """What the other agent knows of this one: nothing for strangers, more the closer they are, never the
    secret. An empty string means nothing is known (shown as `Unknown`)."""
    if relationship is None or relationship == RelationshipType.STRANGER:  # unknown: nothing is claimed
        return ""
    if relationship == RelationshipType.KNOW_BY_NAME:
        return profile.name
    parts = [_identity(profile), profile.public_info]
    if relationship != RelationshipType.ACQUAINTANCE:
        parts.append(f"Personality and values description: {profile.personality_and_values}")
    return " ".join(part.strip() for part in parts if part.strip())


def _context_block(scenario: str, names: tuple[str, str], backgrounds: list[str], goals: list[str]) -> str:
    lines = [
        "Here is the context of this interaction:",
        f"Scenario: {scenario}",
        f"Participants: {names[0]} and {names[1]}",
        *(f"{name}'s background: {bg or 'Unknown'}" for name, bg in zip(names, backgrounds, strict=True)),
        *(f"{name}'s goal: {goal}" for name, goal in zip(names, goals, strict=True)),
    ]
    return "\n".join(lines)


def agent_context(task: TaskSpec, agent: AgentIndex) -> str:
    """The context block exactly as agent `agent` (0 = agent 1, who speaks first) sees it."""
    if task.contexts[agent]:
        return task.contexts[agent]
    viewer = f"agent_{agent}"
    backgrounds = [
        full_background(profile) if i == agent else background_seen_by_other(profile, task.relationship)
        for i, profile in enumerate(task.agents)
    ]
    goals = [render_for(goal, viewer) if i == agent else "Unknown" for i, goal in enumerate(task.goals)]
    return _context_block(render_for(task.scenario, viewer), task.names, backgrounds, goals)


def omniscient_context(task: TaskSpec) -> str:
    """The context block for judges: everything about both agents, both goals, environment-only text."""
    backgrounds = [full_background(profile) for profile in task.agents]
    goals = [render_for(goal, ENVIRONMENT) for goal in task.goals]
    return _context_block(render_for(task.scenario, ENVIRONMENT), task.names, backgrounds, goals)
