"""Writes of the evaluation app. S_div: each agent's action texts (a curator's correction applied, empty contents
left out) are embedded in batches across dialogues; embeddings are stored per turn and reused while the text stays
the same, and an agent's score is recomputed only when its texts (or α) changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from dialogues.corpora.data import CHUNK, DialogueData, dialogues
from evaluation import embeddings, sdiv
from evaluation.models import ActionEmbedding, DiversityScore
from evaluation.plots import similarity_heatmap


@dataclass
class SdivCounts:
    dialogues: int = 0
    agents: int = 0
    recomputed: int = 0  # agents whose score was computed again (new or changed texts)
    encoded: int = 0  # actions embedded now (the rest were stored)
    undefined: int = 0  # agents with fewer than two actions


def agent_actions(dialogue: DialogueData, speaker: int) -> list[tuple[int, str]]:
    """(turn pk, text) of the agent's actions with content, as exports see them (corrections applied)."""
    return [(t.pk, t.text.strip()) for t in dialogue.turns if t.speaker == speaker and t.text.strip()]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sdiv_evaluate(
    dialogue_ids: list[int],
    *,
    alpha: float = sdiv.ALPHA,
    on_progress: Callable[[int, int], None] | None = None,
) -> SdivCounts:
    counts = SdivCounts()
    ids = list(dialogue_ids)
    for start in range(0, len(ids), CHUNK):
        chunk = list(dialogues(ids[start : start + CHUNK], annotations=False))
        _chunk(chunk, alpha, counts)
        counts.dialogues += len(chunk)
        if on_progress:
            on_progress(counts.dialogues, len(ids))
    return counts


def _chunk(chunk: list[DialogueData], alpha: float, counts: SdivCounts) -> None:
    stored = {
        (d.dialogue_id, d.speaker): d
        for d in DiversityScore.objects.filter(dialogue_id__in=[d.id for d in chunk]).only(
            "dialogue_id", "speaker", "texts_sha256", "alpha", "model"
        )
    }
    todo: list[tuple[DialogueData, int, list[tuple[int, str]], str]] = []
    for dialogue in chunk:
        for speaker in (0, 1):
            actions = agent_actions(dialogue, speaker)
            digest = _sha("\x1e".join(text for _, text in actions))
            counts.agents += 1
            old = stored.get((dialogue.id, speaker))
            if old and old.texts_sha256 == digest and old.alpha == alpha and old.model == embeddings.MODEL_NAME:
                continue
            todo.append((dialogue, speaker, actions, digest))
    if not todo:
        return
    vectors = _vectors([pair for _, _, actions, _ in todo for pair in actions], counts)
    scores = []
    for dialogue, speaker, actions, digest in todo:
        matrix = np.stack([vectors[pk] for pk, _ in actions]) if actions else np.zeros((0, embeddings.DIMENSIONS))
        x = sdiv.mean_pairwise(sdiv.similarity_matrix(matrix)) if len(actions) else None
        value = sdiv.s_div(x, alpha)
        counts.recomputed += 1
        counts.undefined += value is None
        scores.append(
            DiversityScore(
                dialogue_id=dialogue.id,
                speaker=speaker,
                actions=len(actions),
                x=x,
                s_div=value,
                alpha=alpha,
                model=embeddings.MODEL_NAME,
                texts_sha256=digest,
            )
        )
    DiversityScore.objects.bulk_create(
        scores,
        update_conflicts=True,
        unique_fields=["dialogue", "speaker"],
        update_fields=["actions", "x", "s_div", "alpha", "model", "texts_sha256", "computed_at"],
    )


def _vectors(actions: list[tuple[int, str]], counts: SdivCounts) -> dict[int, np.ndarray]:
    """The embedding of every (turn, text): stored ones whose text is unchanged, the rest encoded in one batch."""
    wanted = {pk: text for pk, text in actions}
    found: dict[int, np.ndarray] = {}
    for row in ActionEmbedding.objects.filter(turn_id__in=list(wanted), model=embeddings.MODEL_NAME):
        if row.text_sha256 == _sha(wanted[row.turn_id]):
            found[row.turn_id] = embeddings.from_bytes(row.vector)
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        encoded = embeddings.encode([wanted[pk] for pk in missing])
        counts.encoded += len(missing)
        with transaction.atomic():
            ActionEmbedding.objects.bulk_create(
                [
                    ActionEmbedding(
                        turn_id=pk,
                        text_sha256=_sha(wanted[pk]),
                        model=embeddings.MODEL_NAME,
                        vector=embeddings.to_bytes(vector),
                    )
                    for pk, vector in zip(missing, encoded, strict=True)
                ],
                update_conflicts=True,
                unique_fields=["turn"],
                update_fields=["text_sha256", "model", "vector", "created_at"],
            )
        found.update(zip(missing, encoded, strict=True))
    return found


@dataclass
class AgentDiversity:
    """What the dialogue page shows of one agent: its score (if evaluated) and the similarity heatmap."""

    speaker: int
    name: str
    score: DiversityScore | None
    stale: bool  # its texts changed since it was scored
    figure: str  # JSON, "" when there is nothing to draw


def dialogue_diversity(dialogue_id: int, data: DialogueData | None = None) -> list[AgentDiversity]:
    """Per agent: the stored score and a heatmap from the stored embeddings (no model is loaded here). `data`: the
    dialogue as exports read it, if the caller has it already."""

    data = data or next(iter(dialogues([dialogue_id], annotations=False)), None)
    if data is None:
        return []
    scores = {s.speaker: s for s in DiversityScore.objects.filter(dialogue_id=dialogue_id)}
    out = []
    for speaker in (0, 1):
        actions = agent_actions(data, speaker)
        score = scores.get(speaker)
        digest = _sha("\x1e".join(text for _, text in actions))
        stale = score is not None and score.texts_sha256 != digest
        stored = {
            row.turn_id: row
            for row in ActionEmbedding.objects.filter(
                turn_id__in=[pk for pk, _ in actions], model=embeddings.MODEL_NAME
            )
        }
        figure = ""
        usable = [(pk, text) for pk, text in actions if pk in stored and stored[pk].text_sha256 == _sha(text)]
        if score is not None and len(usable) >= 2 and len(usable) == len(actions):
            matrix = sdiv.similarity_matrix(np.stack([embeddings.from_bytes(stored[pk].vector) for pk, _ in usable]))
            index = {t.pk: t.index for t in data.turns}
            figure = json.dumps(similarity_heatmap([index[pk] for pk, _ in usable], [t for _, t in usable], matrix))
        out.append(AgentDiversity(speaker, data.spec.names[speaker], score, stale, figure))
    return out
