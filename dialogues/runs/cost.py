"""What a run cost on the model server, measured from its calls' usage: requests, sequences, prompt tokens and the
prompt tokens that needed prefill, by call kind (ADR 0028).

Prefill is what a server with prefix caching (vLLM's automatic prefix caching) still computes: the prompt tokens
it did not find in its cache. Where the server reports cached tokens (vLLM's usage.prompt_tokens_details.
cached_tokens, with --enable-prompt-tokens-details) they are used and the page says so; where it does not, the
prefill is estimated with the share `make bench cache` measured for DSI at the default cache capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, IntegerField, Q, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from dialogues.runs.models import DialogueStatus, LLMCall, Run

# Tokens needing prefill per prompt token of a DSI attempt, as `make bench cache --contexts sotopia` measured it with
# 256 dialogues in flight and a cache of 25,000 blocks (README, Benchmarks; ADR 0028). The prior where the server
# says nothing.
BENCH_PREFILL_SHARE = 0.48
KIND_ORDER = ["action", "rating", "negotiation", "style transfer", "other"]


def call_kind(purpose: str) -> str:
    """The kind the page groups a call's purpose into (every negotiation step together)."""
    if purpose.startswith("action."):
        return "action"
    if purpose == "rating":
        return "rating"
    if purpose == "nsi.style_transfer":
        return "style transfer"
    if purpose.startswith("nsi."):
        return "negotiation"
    return "other"


@dataclass
class KindCost:
    kind: str
    calls: int = 0
    requests: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported_calls: int = 0  # calls whose server reported cached tokens
    reported_prompt_tokens: int = 0  # their prompt tokens
    cached_tokens: int = 0  # and the cached ones among them

    @property
    def prefill_tokens(self) -> int | None:
        """Measured prefill of the calls that reported it (None when none did)."""
        return self.reported_prompt_tokens - self.cached_tokens if self.reported_calls else None

    @property
    def prefill_share(self) -> float | None:
        if not self.reported_calls or not self.reported_prompt_tokens:
            return None
        return (self.reported_prompt_tokens - self.cached_tokens) / self.reported_prompt_tokens

    def add(self, other: KindCost) -> None:
        for name in ("calls", "requests", "sequences", "prompt_tokens", "completion_tokens", "reported_calls",
                     "reported_prompt_tokens", "cached_tokens"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunCost:
    attempts: int  # settled attempts (finished or failed)
    kinds: list[KindCost] = field(default_factory=list)
    total: KindCost = field(default_factory=lambda: KindCost("all"))

    @property
    def reporting(self) -> str:
        """'all', 'some' or 'none' of the calls came with the server's cached tokens."""
        if not self.total.calls or not self.total.reported_calls:
            return "none"
        return "all" if self.total.reported_calls == self.total.calls else "some"

    @property
    def estimated_prefill_tokens(self) -> float:
        """Where the server reported nothing: the prompt tokens times the bench's share."""
        return self.total.prompt_tokens * BENCH_PREFILL_SHARE

    @property
    def unreported_calls(self) -> int:
        return self.total.calls - self.total.reported_calls

    @property
    def per_attempt(self) -> dict[str, float | None]:
        """Requests, sequences, prompt tokens and (measured where every call reported it) prefill per attempt."""
        n = max(self.attempts, 1)
        t = self.total
        prefill = t.prefill_tokens / n if self.reporting == "all" else None
        return {"requests": t.requests / n, "sequences": t.sequences / n, "prompt_tokens": t.prompt_tokens / n,
                "prefill_tokens": prefill}  # fmt: skip

    @property
    def bench_share(self) -> float:
        return BENCH_PREFILL_SHARE


def run_cost(run: Run) -> RunCost:
    rows = (
        LLMCall.objects.filter(dialogue__run=run)
        .values("purpose")
        .annotate(
            calls=Count("id"),
            requests=Sum("requests"),
            sequences=Sum(Coalesce(Cast(KT("params__n"), IntegerField()), Value(1))),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            reported=Count("cached_tokens"),
            reported_prompt=Sum("prompt_tokens", filter=Q(cached_tokens__isnull=False)),
            cached=Sum("cached_tokens"),
        )
    )
    kinds: dict[str, KindCost] = {}
    for row in rows:
        kind = kinds.setdefault(call_kind(row["purpose"]), KindCost(call_kind(row["purpose"])))
        kind.add(
            KindCost(
                kind.kind,
                calls=row["calls"],
                requests=row["requests"] or 0,
                sequences=row["sequences"] or 0,
                prompt_tokens=row["prompt"] or 0,
                completion_tokens=row["completion"] or 0,
                reported_calls=row["reported"],
                reported_prompt_tokens=row["reported_prompt"] or 0,
                cached_tokens=row["cached"] or 0,
            )
        )
    attempts = run.dialogues.filter(status__in=[DialogueStatus.FINISHED, DialogueStatus.FAILED]).count()
    cost = RunCost(attempts, sorted(kinds.values(), key=lambda k: KIND_ORDER.index(k.kind)))
    for kind in cost.kinds:
        cost.total.add(kind)
    return cost
