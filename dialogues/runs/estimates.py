"""What a run will cost before it starts: LLM requests, sequences, tokens, and the prompt tokens a server with
prefix caching still prefills.

A prior from the method's structure (METHOD.md §2), refined by dialogues that already finished with the same
variant and model: their measured requests, tokens and attempts per task replace the prior in proportion to how
many there are. The prefill's prior is the share `make bench cache` measured (dialogues/runs/cost.py); the
server's reported cached tokens replace it where earlier calls came with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Avg, Count, IntegerField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from dialogues.engine.config import RunConfig, Variant
from dialogues.runs.cost import BENCH_PREFILL_SHARE
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall

# Per attempt, from the method's structure. A native attempt: 6 native turns, about 4 rated strategy turns and
# two forced leaves -> 10 actions and 5 ratings. A negotiation attempt: 6 native turns, about 8 workflow turns of
# three calls each, the exit's confirm and native turn, and 3 ratings.
NATIVE_ACTIONS, NATIVE_RATINGS = 10, 5
NSI_CALLS, NSI_RATINGS = 6 + 8 * 3 + 2, 3
PROMPT_TOKENS_PER_REQUEST = 1400
COMPLETION_TOKENS = {"action": 90, "nsi": 250, "rating_sample": 450}
PRIOR_NSI_SHARE = {"hard": 0.8, "other": 0.2}
PRIOR_ATTEMPTS_PER_TASK = 1.3
FULL_TRUST_AFTER = 50  # finished attempts after which the measurement replaces the prior entirely


@dataclass(frozen=True)
class Estimate:
    tasks: int
    attempts: float
    requests: float
    sequences: float
    prompt_tokens: float
    completion_tokens: float
    measured_attempts: int  # settled attempts (finished or failed) the estimate learned from
    measured_failed: int = 0  # of which failed
    prefill_share: float = BENCH_PREFILL_SHARE  # prompt tokens needing prefill per prompt token
    prefill_reported: bool = False  # the share comes from cached tokens the server reported for earlier calls

    @property
    def prefill_tokens(self) -> float:
        return self.prompt_tokens * self.prefill_share

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens

    def describe(self) -> str:
        basis = (
            f"refined from {self.measured_attempts} settled attempts with this variant and model "
            f"({self.measured_attempts - self.measured_failed} finished, {self.measured_failed} failed)"
            if self.measured_attempts
            else "from the method's structure (no settled attempts to learn from yet)"
        )
        prefill = (
            "as the server reported cached tokens for earlier calls"
            if self.prefill_reported
            else "with vLLM's prefix cache, as make bench cache measured it"
        )
        return (
            f"~{self.attempts:,.0f} attempts for {self.tasks} tasks, ~{self.requests:,.0f} LLM requests "
            f"(~{self.sequences:,.0f} sequences), ~{self.prompt_tokens / 1e6:,.2f}M prompt tokens "
            f"(~{self.prefill_tokens / 1e6:,.2f}M needing prefill, {self.prefill_share:.2f} of them, {prefill}) + "
            f"~{self.completion_tokens / 1e6:,.2f}M completion tokens; {basis}"
        )


def _nsi_share(config: RunConfig, hard: int, tasks: int) -> float:
    if config.variant == Variant.RAW:
        return 0.0
    if config.variant in (Variant.NSI, Variant.HNSI):
        return 1.0
    return (hard * PRIOR_NSI_SHARE["hard"] + (tasks - hard) * PRIOR_NSI_SHARE["other"]) / max(tasks, 1)


def _prior_per_attempt(config: RunConfig, nsi_share: float) -> tuple[float, float, float, float]:
    n = config.judge_samples
    native_requests = NATIVE_ACTIONS + NATIVE_RATINGS
    native_sequences = NATIVE_ACTIONS + NATIVE_RATINGS * n
    nsi_requests = NSI_CALLS + NSI_RATINGS
    nsi_sequences = NSI_CALLS + NSI_RATINGS * n
    requests = (1 - nsi_share) * native_requests + nsi_share * nsi_requests
    sequences = (1 - nsi_share) * native_sequences + nsi_share * nsi_sequences
    ratings = (1 - nsi_share) * NATIVE_RATINGS + nsi_share * NSI_RATINGS
    completion = (
        (1 - nsi_share) * NATIVE_ACTIONS * COMPLETION_TOKENS["action"]
        + nsi_share * (6 * COMPLETION_TOKENS["action"] + (NSI_CALLS - 6) * COMPLETION_TOKENS["nsi"])
        + ratings * n * COMPLETION_TOKENS["rating_sample"]
    )
    return requests, sequences, requests * PROMPT_TOKENS_PER_REQUEST, completion


def run_estimate(*, config: RunConfig, tasks: int, hard: int, model: str) -> Estimate:
    nsi_share = _nsi_share(config, hard, tasks)
    requests, sequences, prompt, completion = _prior_per_attempt(config, nsi_share)
    attempts_per_task = PRIOR_ATTEMPTS_PER_TASK
    prefill_share, prefill_reported = BENCH_PREFILL_SHARE, False
    done = Dialogue.objects.filter(
        run__variant=config.variant.value, run__model=model, status__in=[DialogueStatus.FINISHED, DialogueStatus.FAILED]
    )
    measured = done.count()
    failed = done.filter(status=DialogueStatus.FAILED).count() if measured else 0
    if measured:
        weight = min(1.0, measured / FULL_TRUST_AFTER)
        calls = LLMCall.objects.filter(dialogue__in=done).aggregate(
            requests=Sum("requests"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            sequences=Sum(Cast(KT("params__n"), IntegerField())),
            reported_prompt=Sum("prompt_tokens", filter=Q(cached_tokens__isnull=False)),
            cached=Sum("cached_tokens"),
        )
        observed = {
            "requests": (calls["requests"] or 0) / measured,
            "sequences": (calls["sequences"] or calls["requests"] or 0) / measured,
            "prompt": (calls["prompt"] or 0) / measured,
            "completion": (calls["completion"] or 0) / measured,
        }
        per_task = done.values("run_id", "task_id").annotate(n=Count("id")).aggregate(avg=Avg("n"))["avg"] or 1.0
        requests = (1 - weight) * requests + weight * observed["requests"]
        sequences = (1 - weight) * sequences + weight * observed["sequences"]
        prompt = (1 - weight) * prompt + weight * observed["prompt"]
        completion = (1 - weight) * completion + weight * observed["completion"]
        if calls["reported_prompt"]:  # the server's own count of cached tokens replaces the bench's share
            prefill_share = 1 - (calls["cached"] or 0) / calls["reported_prompt"]
            prefill_reported = True
        settled = done.filter(Q(kept=True) | Q(status=DialogueStatus.FAILED)).values("run_id", "task_id").distinct()
        if settled.exists():
            attempts_per_task = (1 - weight) * attempts_per_task + weight * per_task
    attempts = tasks * attempts_per_task
    return Estimate(
        tasks,
        attempts,
        attempts * requests,
        attempts * sequences,
        attempts * prompt,
        attempts * completion,
        measured,
        failed,
        prefill_share,
        prefill_reported,
    )


def launch_confirmation_reasons(estimate: Estimate) -> list[str]:
    """Why a launch must be confirmed first: more tasks, or more estimated tokens, than the settings allow without
    (OMEGA_LAUNCH_CONFIRM_TASKS, OMEGA_LAUNCH_CONFIRM_TOKENS). Empty when it may start at once."""
    reasons = []
    if estimate.tasks > settings.OMEGA_LAUNCH_CONFIRM_TASKS:
        reasons.append(f"{estimate.tasks:,} tasks, more than {settings.OMEGA_LAUNCH_CONFIRM_TASKS:,}")
    if estimate.tokens > settings.OMEGA_LAUNCH_CONFIRM_TOKENS:
        reasons.append(f"~{estimate.tokens:,.0f} tokens, more than {settings.OMEGA_LAUNCH_CONFIRM_TOKENS:,}")
    return reasons
