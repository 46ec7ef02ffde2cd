"""How long an export's records are, for the cutoff_len a trainer needs (LLaMA-Factory truncates a record longer
than its cutoff_len, 1,024 tokens by default): counted with the tokenizer named by OMEGA_CUTOFF_TOKENIZER (a
tokenizer.json), or in characters when none is set or it cannot be read, and the version's page says which."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULT_CUTOFF = 1024  # LLaMA-Factory's default cutoff_len


def record_text(record: Any) -> str:
    """Every string of a record, in order: what a trainer tokenizes (prompt, history and answer)."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        return "\n".join(record_text(v) for v in record.values() if v is not None and v != "")
    if isinstance(record, list | tuple):
        return "\n".join(record_text(v) for v in record)
    return ""


@dataclass
class Measure:
    """Counts one record's length in `unit`; `tokenizer` names the tokenizer, or says why there is none."""

    unit: str = "characters"
    tokenizer: str = ""
    problem: str = ""
    _encode: Any = field(default=None, repr=False)

    @classmethod
    def configured(cls) -> Measure:
        source = getattr(settings, "OMEGA_CUTOFF_TOKENIZER", "")
        if not source:
            return cls(problem="no tokenizer configured (OMEGA_CUTOFF_TOKENIZER)")
        path = Path(source)
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # a missing or unreadable file: measure characters, and say why
            return cls(problem=f"the tokenizer {path} could not be read ({type(error).__name__})")
        return cls(unit="tokens", tokenizer=str(path), _encode=tokenizer.encode)

    def __call__(self, record: Any) -> int:
        text = record_text(record)
        if self._encode is None:
            return len(text)
        return len(self._encode(text).ids)


@dataclass
class LengthTally:
    longest: int = 0
    over_default: int = 0

    def add(self, length: int) -> None:
        self.longest = max(self.longest, length)
        if length > DEFAULT_CUTOFF:
            self.over_default += 1
