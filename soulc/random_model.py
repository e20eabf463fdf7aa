"""Random valid programs, for property tests and differential testing.

A random program is a real decoder (frontends/decoder.py) with random shapes, random int8
weights and shifts, and a random tokenizer. `harsh` weights push activations into
saturation, negative flooring and zero attention sums, where implementations disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soulc.frontends.decoder import DecoderShape, decoder_body
from soulc.ir.program import Const, Program, Settings, TensorType, Tokenizer
from soulc.ir.tables import seed_softmax_table
from soulc.ir.verify import verify

BASE_CHARS = " abcdefghijklmnopqrstuvwxyz.'!?,;:-"
SPECIALS = ["<PAD>", "<SEP>", "<UNK>", "<END>"]


@dataclass
class ModelShape:
    layers: int = 1
    width: int = 16
    heads: int = 2
    ffn: int = 32
    vocab: int = 64
    context: int = 12
    bias: bool = True


def random_shape(rng: np.random.Generator, max_width: int = 32, max_vocab: int = 128) -> ModelShape:
    heads = int(rng.choice([1, 2, 4]))
    width = heads * int(rng.integers(1, max_width // heads + 1))
    return ModelShape(
        layers=int(rng.integers(1, 3)), width=width, heads=heads,
        ffn=int(rng.integers(1, 2 * width + 1)),
        vocab=int(rng.integers(len(SPECIALS) + 8, max_vocab + 1)),
        context=int(rng.integers(4, 21)), bias=bool(rng.integers(0, 2)),
    )


def random_tokenizer(rng: np.random.Generator, vocab: int) -> Tokenizer:
    chars = list(BASE_CHARS[: min(len(BASE_CHARS), max(4, (vocab - len(SPECIALS)) // 2))])
    tokens = SPECIALS + chars
    merges = []
    while len(tokens) < vocab:
        a, b = (int(rng.integers(len(SPECIALS), len(tokens))) for _ in range(2))
        text = tokens[a] + tokens[b]
        if text in tokens or len(text) > 8:
            tokens.append(chars[int(rng.integers(len(chars)))] * (len(tokens) % 7 + 2))  # never merged to
            if tokens[-1] in tokens[:-1]:
                tokens[-1] = f"[{len(tokens)}]"
            continue
        tokens.append(text)
        merges.append((a, b, len(tokens) - 1))
    return Tokenizer(tokens, frozenset(range(len(SPECIALS))), merges, lowercase=True)


def _weights(rng, shape, harsh: bool) -> tuple[np.ndarray, int]:
    limit = 127 if harsh else int(rng.integers(8, 128))
    data = rng.integers(-limit, limit + 1, size=shape).astype(np.int8)
    if harsh and rng.random() < 0.3:
        data[rng.random(shape) < 0.5] = 0               # sparse rows, zero sums
    shift = int(rng.integers(0, 4) if harsh else rng.integers(5, 9))
    return data, shift


def random_program(rng: np.random.Generator, shape: ModelShape | None = None, harsh: bool = False) -> Program:
    shape = shape or random_shape(rng)
    consts: dict[str, Const] = {}

    def add(name, dims, bias_of=None):
        if bias_of is not None:
            w = consts[bias_of]
            data = rng.integers(-4000 if not harsh else -32768, 4001 if not harsh else 32768,
                                size=dims).astype(np.int16)
            consts[name] = Const(name, TensorType("i16", dims), data, w.shift + 8)
            return
        data, shift = _weights(rng, dims, harsh)
        consts[name] = Const(name, TensorType("i8", dims), data, shift)

    d, f = shape.width, shape.ffn
    add("te", (shape.vocab, d))
    add("pe", (shape.context, d))
    for i in range(shape.layers):
        p = f"l{i}."
        add(p + "n1", (d,))
        for name in ("q", "k", "v", "proj"):
            add(p + name, (d, d))
        add(p + "n2", (d,))
        add(p + "fc1", (f, d))
        add(p + "fc2", (d, f))
        if shape.bias:
            add(p + "fc1_b", (f,), bias_of=p + "fc1")
            add(p + "fc2_b", (d,), bias_of=p + "fc2")
    add("norm", (d,))
    add("out", (shape.vocab, d))
    consts["lut"] = Const("lut", TensorType("u8", (128,)), seed_softmax_table())
    score_shift = int(rng.integers(0, 20)) if harsh else 14
    settings = Settings(context=shape.context, argmax=(len(SPECIALS), shape.vocab), stop=(0, 1, 3),
                        prompt_prefix=(1,), prompt_suffix=(1,), max_reply=0)
    body = decoder_body(DecoderShape(shape.layers, shape.heads, score_shift), set(consts))
    return verify(Program(settings, random_tokenizer(rng, shape.vocab), consts, {}, "seq", body))


def random_prompt(rng: np.random.Generator, length: int | None = None) -> str:
    length = int(rng.integers(0, 30)) if length is None else length
    alphabet = BASE_CHARS + "ABCXYZ0123#@"
    return "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(length))
