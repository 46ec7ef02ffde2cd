"""Every number of the method as a run parameter, with the paper's default (METHOD.md §2).

Where the authors' public script behaves differently, the script's behaviour is an option named after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class Variant(StrEnum):
    DSI = "dsi"  # dynamic strategy injection (the method)
    RAW = "raw"  # no strategy injection
    NSI = "nsi"  # the negotiation workflow from turn 6 regardless of ratings
    HNSI = "hnsi"  # one side (drawn per task) runs the workflow from turn 6


class SsiRule(StrEnum):
    PAPER = "paper"  # goal_c <= 7.5 and goal_p >= 8.5  (paper Eq. 3)
    SCRIPT = "script"  # goal_c <= 7.5 and goal_p > 8.5   (authors' script)


class FilterRule(StrEnum):
    PAPER = "paper"  # regenerate if goal_c < 8.0 with NSI, < 8.5 without (paper Eq. 4)
    SCRIPT = "script"  # the script's swapped thresholds: < 8.5 with NSI, < 8.0 without


class UtilityForm(StrEnum):
    PAPER = "paper"  # matters with value u, weight w, ratio r; U = (1/n) Σ w·r·u (paper Eq. 1)
    SCRIPT = "script"  # matters with value and coefficient; U = Σ coefficient·value


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 8192


@dataclass(frozen=True)
class RunConfig:
    variant: Variant = Variant.DSI
    # turns and phases
    max_turns: int = 20
    initial_native_turns: int = 6  # turns 0..5 use the plain prompt; the first rating follows turn 5
    exit_overrun_turns: int = 0  # the NSI exit may run past max_turns by this many turns (the script: 3)
    none_limit: int = 2  # the dialogue ends after more than this many consecutive `none` actions
    # step rating (§2.2)
    judge_samples: int = 5  # the script used 3
    judge_min_valid: int = 3  # fewer valid samples after the re-asks fails the step
    judge_reasks: int = 3  # re-asks for samples that were malformed
    judge_temperature: float = 1.0  # sampling must vary
    # strategy selection (§2.3, Eq. 3)
    nsi_goal_c_max: float = 7.5
    goal_p_high: float = 8.5
    ssi_goal_c_max: float = 8.5
    ssi_rule: SsiRule = SsiRule.PAPER
    termination_overrides_nsi: bool = False  # the script starts NSI even when a sample voted to end
    # negotiation workflow (§2.4)
    utility_form: UtilityForm = UtilityForm.PAPER
    # filter and regeneration (§2.5, Eq. 4)
    filter_rule: FilterRule = FilterRule.PAPER
    filter_with_nsi: float = 8.0
    filter_without_nsi: float = 8.5
    attempts: int = 4
    # the expert
    model: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    # bounded retries for answers that arrive but cannot be used (garbage, wrong keys, out-of-range)
    unusable_retries: int = 3

    def filter_threshold(self, *, nsi_used: bool) -> float:
        with_nsi, without = self.filter_with_nsi, self.filter_without_nsi
        if self.filter_rule == FilterRule.SCRIPT:
            with_nsi, without = without, with_nsi
        return with_nsi if nsi_used else without

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown run parameters: {sorted(unknown)}")
        values = dict(data)
        if "sampling" in values and isinstance(values["sampling"], dict):
            values["sampling"] = Sampling(**values["sampling"])
        for name, enum in (
            ("variant", Variant),
            ("ssi_rule", SsiRule),
            ("filter_rule", FilterRule),
            ("utility_form", UtilityForm),
        ):
            if name in values:
                values[name] = enum(values[name])
        return cls(**values)

    def with_changes(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)
