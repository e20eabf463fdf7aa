"""The figures training optimises and the quantisation report prints, for a logits function.

- teacher-forced: at every position of the corpus responses (and the <END> after them), the
  integer model's next token against the float model's (agreement) and against the corpus
  (accuracy), each given the corpus's own prefix;
- replies: for each distinct corpus input, whether the integer model's greedy reply equals the
  float model's exactly (the chat loop's rules: argmax range, stop tokens, context, max_reply).

A logits function maps ids [N, T] (PAD after each sequence; attention is causal, so padding
does not change earlier positions) to logits [N, T, vocab].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soulc.ir.program import Settings

from .data import Sequences


def next_tokens(logits: np.ndarray, settings: Settings) -> np.ndarray:
    lo, hi = settings.argmax
    return lo + np.asarray(logits)[..., lo:hi].argmax(-1)       # the lowest id wins a tie


def greedy(logits_fn, prompts: list[list[int]], settings: Settings, batch: int = 1024) -> list[list[int]]:
    """Every prompt's greedy reply tokens, as ir/chat.py's generate gives them."""
    replies: list[list[int]] = []
    for start in range(0, len(prompts), batch):
        replies += _greedy(logits_fn, prompts[start: start + batch], settings)
    return replies


def _greedy(logits_fn, prompts, settings: Settings) -> list[list[int]]:
    context = settings.context
    n = len(prompts)
    ids = np.zeros((n, context), dtype=np.int64)
    length = np.array([len(p) for p in prompts])
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = p
    replies: list[list[int]] = [[] for _ in prompts]
    active = np.ones(n, dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        top = int(length[rows].max())
        logits = logits_fn(ids[rows, :top])
        chosen = next_tokens(logits[np.arange(len(rows)), length[rows] - 1], settings)
        for row, token in zip(rows, chosen):
            if token in settings.stop:
                active[row] = False
                continue
            replies[row].append(int(token))
            ids[row, length[row]] = token
            length[row] += 1
            if length[row] >= context or (settings.max_reply and len(replies[row]) >= settings.max_reply):
                active[row] = False
    return replies


@dataclass
class Figures:
    positions: int = 0
    agree: int = 0              # integer next token == float next token
    int_correct: int = 0        # integer next token == the corpus's
    float_correct: int = 0
    prompts: int = 0
    same_replies: int = 0       # integer reply == float reply, exactly
    whole_replies: int = 0      # the integer reply is one of the corpus's responses to the input, whole
    ended_replies: int = 0      # the integer reply ended with a stop token (not at the context's end)

    @property
    def agreement(self) -> float:
        return self.agree / max(1, self.positions)

    @property
    def int_accuracy(self) -> float:
        return self.int_correct / max(1, self.positions)

    @property
    def float_accuracy(self) -> float:
        return self.float_correct / max(1, self.positions)

    @property
    def exact_rate(self) -> float:
        return self.same_replies / max(1, self.prompts)

    @property
    def whole_rate(self) -> float:
        return self.whole_replies / max(1, self.prompts)

    @property
    def ended_rate(self) -> float:
        return self.ended_replies / max(1, self.prompts)


def teacher_forced(int_fn, float_fn, seqs: Sequences, settings: Settings, figures: Figures,
                   batch: int = 512) -> Figures:
    for start in range(0, len(seqs.ids), batch):
        part = slice(start, start + batch)
        ids, mask, targets = seqs.ids[part], seqs.mask[part], seqs.targets[part]
        top = int(seqs.lengths[part].max())
        ints = next_tokens(int_fn(ids[:, :top]), settings)[mask[:, :top]]
        floats = next_tokens(float_fn(ids[:, :top]), settings)[mask[:, :top]]
        want = targets[:, :top][mask[:, :top]]
        figures.positions += len(want)
        figures.agree += int((ints == floats).sum())
        figures.int_correct += int((ints == want).sum())
        figures.float_correct += int((floats == want).sum())
    return figures


def replies(int_fn, float_fn, prompts: list[list[int]], settings: Settings, figures: Figures,
            responses: list[set[tuple[int, ...]]] | None = None):
    """`responses`: for each prompt, the corpus's responses to it (token ids, without <END>)."""
    ints = greedy(int_fn, prompts, settings)
    floats = greedy(float_fn, prompts, settings)
    figures.prompts += len(prompts)
    figures.same_replies += sum(a == b for a, b in zip(ints, floats))
    if responses is not None:
        figures.whole_replies += sum(tuple(r) in want for r, want in zip(ints, responses))
    figures.ended_replies += sum(stopped(p, r, settings) for p, r in zip(prompts, ints))
    return ints, floats


def stopped(prompt: list[int], reply: list[int], settings: Settings) -> bool:
    """Whether generation ended on a stop token rather than at the context or max_reply."""
    return len(prompt) + len(reply) < settings.context and not (settings.max_reply and
                                                                 len(reply) >= settings.max_reply)
