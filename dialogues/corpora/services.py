"""Writes for corpora: define or edit one (guarded by its version like every curated item), record or withdraw
the overrides that let eval-split or simulated dialogues into a training corpus, and export a version (frozen now,
its files written by a worker once that commits)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dialogues.annotation.services import Conflict
from dialogues.corpora.export import corpus_version_request
from dialogues.corpora.formats import ExportOptions
from dialogues.corpora.models import Corpus, CorpusVersion
from dialogues.corpora.selection import OVERRIDE_KINDS, CorpusFilters
from dialogues.corpora.tasks import corpus_version_build_task
from dialogues.runs.models import Dialogue


def _ids(values: list[int], what: str) -> list[int]:
    ids = sorted(set(values))
    known = set(Dialogue.objects.filter(pk__in=ids).values_list("pk", flat=True))
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"{what}: there is no dialogue {', '.join(f'#{i}' for i in unknown[:10])}")
    return ids


def corpus_save(
    *,
    corpus_id: int | None,
    name: str,
    description: str,
    filters: CorpusFilters,
    includes: list[int],
    excludes: list[int],
    version: int,
    user: Any,
) -> Corpus:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise ValueError("a corpus needs a name of at most 200 characters")
    if filters.goal_min is not None and filters.goal_max is not None and filters.goal_min > filters.goal_max:
        raise ValueError("the lowest final goal_c is above the highest")
    values = {
        "name": name,
        "description": description.strip(),
        "filters": filters.to_json(),
        "includes": _ids(includes, "include"),
        "excludes": _ids(excludes, "exclude"),
    }
    try:
        with transaction.atomic():
            if corpus_id is None:
                return Corpus.objects.create(created_by=user, **values)
            if not Corpus.objects.filter(pk=corpus_id, version=version).update(version=F("version") + 1, **values):
                current = Corpus.objects.filter(pk=corpus_id).first()
                raise Conflict(current, "someone changed this corpus since you opened it")
            return Corpus.objects.get(pk=corpus_id)
    except IntegrityError as taken:
        raise ValueError(f"there is a corpus named {name!r} already") from taken


def override_record(*, corpus_id: int, kind: str, reason: str, user: Any) -> Corpus:
    """Record (or replace) the decision to include what `kind` names, with its reason, who and when."""
    if kind not in OVERRIDE_KINDS:
        raise ValueError(f"an override is one of {', '.join(OVERRIDE_KINDS)}")
    reason = reason.strip()
    if not reason:
        raise ValueError("an override needs a reason: it is recorded in every export's manifest")
    with transaction.atomic():
        corpus = Corpus.objects.select_for_update().get(pk=corpus_id)
        kept = [o for o in corpus.overrides if o.get("kind") != kind]
        entry = {
            "kind": kind,
            "what": OVERRIDE_KINDS[kind],
            "reason": reason,
            "by": user.get_username() if user else None,
            "at": timezone.now().isoformat(),
        }
        corpus.overrides = [*kept, entry]
        corpus.version += 1
        corpus.save(update_fields=["overrides", "version", "updated_at"])
        return corpus


def override_withdraw(*, corpus_id: int, kind: str) -> Corpus:
    with transaction.atomic():
        corpus = Corpus.objects.select_for_update().get(pk=corpus_id)
        corpus.overrides = [o for o in corpus.overrides if o.get("kind") != kind]
        corpus.version += 1
        corpus.save(update_fields=["overrides", "version", "updated_at"])
        return corpus


def corpus_version_export(
    *, corpus_id: int, formats: list[str], options: ExportOptions, created_by: Any
) -> CorpusVersion:
    """Freeze what the corpus selects now into a new version and enqueue the writing of its files once that commits.
    Raises ValueError (nothing selected, an unknown format, a missing override) with the reason."""
    with transaction.atomic():
        version = corpus_version_request(corpus_id=corpus_id, formats=formats, options=options, created_by=created_by)
        transaction.on_commit(lambda: corpus_version_build_task.delay(version.pk))
    return version
