"""Token sequences for training and measuring: `[SEP] input [SEP] response [END]`, cut to the context.

The prompt is framed as the chat loop frames it (ir/chat.py: the input cut to context - 3 tokens),
so every position the model is trained and measured on is one the chat loop can reach. The
targets are the response tokens and the <END> after them: the positions from the second <SEP>
to the one before the last token.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soulc.ir.chat import encode
from soulc.ir.program import Tokenizer

from .corpus import Exchange
from .tokenizer import END, SEP


@dataclass
class Sequences:
    ids: np.ndarray         # int64 [N, context], PAD (0) after each sequence
    targets: np.ndarray     # int64 [N, context]: the next token at each position
    mask: np.ndarray        # bool [N, context]: positions whose next token is a response token or <END>
    lengths: np.ndarray     # int64 [N]
    prompt_lengths: np.ndarray      # int64 [N]: [SEP] input [SEP]


def frame(tokenizer: Tokenizer, text: str, context: int) -> list[int] | None:
    ids = encode(tokenizer, text)
    return [SEP, *ids[: context - 3], SEP] if ids else None


def sequences(exchanges: list[Exchange], tokenizer: Tokenizer, context: int) -> Sequences:
    rows, prompts = [], []
    for e in exchanges:
        prompt = frame(tokenizer, e.prompt, context)
        if prompt is None:
            continue
        rows.append((prompt + encode(tokenizer, e.response) + [END])[:context])
        prompts.append(len(prompt))
    n = len(rows)
    ids = np.zeros((n, context), dtype=np.int64)
    mask = np.zeros((n, context), dtype=bool)
    for i, (row, p) in enumerate(zip(rows, prompts)):
        ids[i, : len(row)] = row
        mask[i, p - 1: len(row) - 1] = True
    targets = np.zeros_like(ids)
    targets[:, :-1] = ids[:, 1:]
    return Sequences(ids, targets, mask, np.array([len(r) for r in rows], dtype=np.int64),
                     np.array(prompts, dtype=np.int64))


def distinct_prompts(exchanges: list[Exchange], tokenizer: Tokenizer, context: int):
    """The distinct framed inputs (in corpus order), and for each the set of the corpus's responses
    to it (token ids, without <END>)."""
    answers: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
    for e in exchanges:
        prompt = frame(tokenizer, e.prompt, context)
        if prompt:
            answers.setdefault(tuple(prompt), set()).add(tuple(encode(tokenizer, e.response)))
    return [list(p) for p in answers], list(answers.values())
