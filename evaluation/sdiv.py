"""S_div (METHOD.md §3), pure numpy: the similarity matrix of one agent's action embeddings, x = the mean of its
off-diagonal entries (each action's mean similarity to the others, averaged), clamped to [0, 1], and
S_div = (1 − x^α)^α with α = 10 by default. Fewer than two actions: undefined (None)."""

from __future__ import annotations

import numpy as np

ALPHA = 10.0


def similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarities of the rows."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1, norms)
    return unit @ unit.T


def mean_pairwise(similarity: np.ndarray) -> float | None:
    n = similarity.shape[0]
    if n < 2:
        return None
    off_diagonal = (similarity.sum() - np.trace(similarity)) / (n * (n - 1))
    return float(min(max(off_diagonal, 0.0), 1.0))


def s_div(x: float | None, alpha: float = ALPHA) -> float | None:
    if x is None:
        return None
    return float((1.0 - x**alpha) ** alpha)
