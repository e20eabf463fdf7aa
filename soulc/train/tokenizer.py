"""A BPE tokenizer trained for the seed's encoding rules (ir/chat.py).

The rules the trained tokenizer has to follow, on every target: lowercase the text, map each
character to its single-character token and drop the others, then apply the merges in their
listed order, each as one left-to-right, non-overlapping pass over the whole sequence. The
vocabulary is the seed's: <PAD> 0, <SEP> 1, <UNK> 2, <END> 3, then single characters, then one
token per merge, in merge order.

Training follows those rules exactly: the corpus is kept as id sequences, each new merge is
applied to them with the same pass the chat loop uses, and the next merge is the most frequent
adjacent pair of the result (ties: the pair whose strings sort first), so the merges are learnt
from exactly the segmentation the model will see. Characters are printable ASCII only (the
Spectrum prints 32..126); merges never contain a space (so a token is part of one word) and
never spell a string that looks like a special token (`<...>`). A merge whose string is already
a token is skipped, so every token has one spelling and one way to be made.

Why not the `tokenizers` library: its BPE applies merges by rank with a priority queue, which
equals the pass-per-merge rule only while no token can be made by two different merges; its
trainer makes such merges, and its vocabulary ids and byte-level alphabet do not follow the
seed's layout. Matching the chat loop exactly is simpler with the forty lines below.
"""
from __future__ import annotations

import json
from collections import Counter

from soulc.errors import SoulcError
from soulc.frontends.tokenizer_json import is_special, tokenizer_from_json
from soulc.ir.chat import apply_merge
from soulc.ir.program import Tokenizer

SPECIALS = ("<PAD>", "<SEP>", "<UNK>", "<END>")
PAD, SEP, UNK, END = range(4)
MIN_VOCAB, MAX_VOCAB = 8, 256


def printable(ch: str) -> bool:
    return 32 <= ord(ch) <= 126


def _alphabet(counts: Counter, room: int) -> list[str]:
    """Space, then letters, then the other characters by frequency; the most frequent `room`."""
    chars = [c for c in counts if printable(c)]
    kept = sorted(chars, key=lambda c: (-counts[c], c))[:room]

    def order(c):
        return (0, c) if c == " " else (1, c) if c.isalpha() else (2, -counts[c], c)
    return sorted(kept, key=order)


def train_bpe(texts: list[str], vocab_size: int = 128) -> dict:
    """The tokenizer JSON (the seed's format) for these texts."""
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise SoulcError(f"--vocab {vocab_size}: use {MIN_VOCAB} to {MAX_VOCAB}")
    texts = [t.lower() for t in texts]
    chars = _alphabet(Counter("".join(texts)), vocab_size - len(SPECIALS))
    if not chars:
        raise SoulcError("the corpus has no printable ASCII characters to build a vocabulary from")
    tokens = list(SPECIALS) + chars
    ids = {t: i for i, t in enumerate(tokens)}
    words: Counter = Counter()
    for text in texts:
        for word in "".join(c for c in text if c in ids).split(" "):
            if word:
                words[tuple(ids[c] for c in word)] += 1
    merges: list[tuple[int, int]] = []
    while len(tokens) < vocab_size:
        pairs: Counter = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        candidates = [(n, pair) for pair, n in pairs.items()
                      if n >= 2 and tokens[pair[0]] + tokens[pair[1]] not in ids
                      and not is_special(tokens[pair[0]] + tokens[pair[1]])]
        if not candidates:
            break
        n, (left, right) = min(candidates, key=lambda c: (-c[0], tokens[c[1][0]], tokens[c[1][1]]))
        merged = len(tokens)
        tokens.append(tokens[left] + tokens[right])
        ids[tokens[-1]] = merged
        merges.append((left, right))
        new: Counter = Counter()
        for word, count in words.items():
            new[tuple(apply_merge(list(word), left, right, merged))] += count
        words = new
    return {"vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [[tokens[a], tokens[b]] for a, b in merges],
            "vocab_size": len(tokens)}


def tokenizer_json_text(data: dict) -> str:
    """The JSON text stored in a model (deterministic: keys in id order, no whitespace)."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def as_tokenizer(data: dict) -> Tokenizer:
    return tokenizer_from_json(data, "trained tokenizer")
