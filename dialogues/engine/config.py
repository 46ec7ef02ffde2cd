"""Every number of the method as a run parameter, with the paper's default (METHOD.md §2).

Where the authors' public script behaves differently, the script's behaviour is an option named after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from .branches import STRATEGIES


class Variant(StrEnum):
    DSI = "dsi"  # dynamic strategy injection (the method)
    RAW = "raw"  # no strategy injection
    NSI = "nsi"  # the negotiation workflow from turn 6 regardless of ratings
    HNSI = "hnsi"  # one side (drawn per task) runs the workflow from turn 6
    PLAIN = "plain"  # an evaluation episode as SOTOPIA plays it: plain prompts, no rating, no filter


class SsiRule(StrEnum):
    PAPER = "paper"  # goal_c <= 7.5 and goal_p >= 8.5  (paper Eq. 3)
    SCRIPT = "script"  # goal_c <= 7.5 and goal_p > 8.5   (authors' script)


class FilterRule(StrEnum):
    PAPER = "paper"  # regenerate if goal_c < 8.0 with NSI, < 8.5 without (paper Eq. 4)
    SCRIPT = "script"  # the script's swapped thresholds: < 8.5 with NSI, < 8.0 without


class UtilityForm(StrEnum):
    PAPER = "paper"  # matters with value u, weight w, ratio r; U = (1/n) Σ w·r·u (paper Eq. 1)
    SCRIPT = "script"  # matters with value and coefficient; U = Σ coefficient·value


STRATEGY_CHOICES = ("", *(b.value for b in STRATEGIES))  # force_strategy: none, or one of the strategies


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
    termination_overrides_nsi: bool = True  # strict (paper); the script starts NSI even when a sample voted to end
    # negotiation workflow (§2.4)
    utility_form: UtilityForm = UtilityForm.PAPER
    # filter and regeneration (§2.5, Eq. 4)
    filter_rule: FilterRule = FilterRule.PAPER
    filter_with_nsi: float = 8.0
    filter_without_nsi: float = 8.5
    attempts: int = 4
    keep_best: bool = True  # when no attempt passes, keep the best one (paper); the script kept none
    # experiments (forks): a branch forced for every model turn after the native start, or branches never chosen
    force_strategy: str = ""  # "", "NSC", "SSI" or "NSI"
    disabled_strategies: tuple[str, ...] = ()  # a subset of ("SSI", "NSI")
    # the expert
    model: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    # bounded retries for answers that arrive but cannot be used (garbage, wrong keys, out-of-range)
    unusable_retries: int = 3

    def __post_init__(self) -> None:
        for name, enum in (
            ("variant", Variant),
            ("ssi_rule", SsiRule),
            ("filter_rule", FilterRule),
            ("utility_form", UtilityForm),
        ):
            object.__setattr__(self, name, enum(getattr(self, name)))  # accept the plain strings too
        object.__setattr__(self, "disabled_strategies", tuple(sorted(set(self.disabled_strategies))))
        problems = []
        if self.force_strategy not in STRATEGY_CHOICES:
            problems.append(f"force_strategy must be one of {', '.join(repr(c) for c in STRATEGY_CHOICES)}")
        if not set(self.disabled_strategies) <= {"SSI", "NSI"}:
            problems.append("disabled_strategies may hold only 'SSI' and 'NSI'")
        if self.force_strategy and self.force_strategy in self.disabled_strategies:
            problems.append(f"{self.force_strategy} cannot be both forced and disabled")
        if self.judge_samples < 1:
            problems.append("judge_samples must be at least 1")
        if not 1 <= self.judge_min_valid <= max(1, self.judge_samples):
            problems.append("judge_min_valid must be between 1 and judge_samples")
        if self.attempts < 1:
            problems.append("attempts must be at least 1")
        if self.variant == Variant.PLAIN and self.attempts != 1:
            problems.append("an evaluation episode (plain) has exactly one attempt: nothing is regenerated")
        if self.max_turns < 1 or self.initial_native_turns < 1:
            problems.append("max_turns and initial_native_turns must be at least 1")
        if min(self.judge_reasks, self.unusable_retries, self.exit_overrun_turns, self.none_limit) < 0:
            problems.append("retries, re-asks, none_limit and exit_overrun_turns cannot be negative")
        for name in ("nsi_goal_c_max", "goal_p_high", "ssi_goal_c_max", "filter_with_nsi", "filter_without_nsi"):
            if not 0 <= getattr(self, name) <= 10:
                problems.append(f"{name} must be between 0 and 10")
        if not 0 <= self.sampling.temperature <= 2 or not 0 < self.sampling.top_p <= 1 or self.sampling.max_tokens < 1:
            problems.append("sampling: temperature in [0, 2], top_p in (0, 1], max_tokens at least 1")
        if problems:
            raise ValueError("invalid run configuration: " + "; ".join(problems))

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
