"""Random valid programs, for property tests and differential testing.

A random program is a real decoder (frontends/decoder.py) with random shapes, random int8
weights and shifts, and a random tokenizer. `harsh` programs go where implementations
disagree: int16 saturation (full-range weights, small and negative shifts, full-range
biases), negative and zero total shifts, flooring of negative values, softmax tables whose
weights can all be 0 (a zero attention sum), scores that wrap around int32 (saturated
queries and keys), identical output rows (argmax ties), per-layer tables and random post
shifts; and chat settings off the seed's (argmax ranges over special tokens, other stop
tokens or none, other prompt framing, a reply limit), and now and then a token of 200 to 255
characters.

Every token string is printable ASCII (32..126), as the Spectrum's chat loop requires.
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


def random_shape(rng: np.random.Generator, max_width: int = 32, max_vocab: int = 128,
                 heads: tuple[int, ...] = (1, 2, 4), max_layers: int = 2, max_context: int = 20) -> ModelShape:
    """Heads from `heads`, width a multiple of them up to max_width, FFN 1..2*width (odd or even)."""
    n_heads = int(rng.choice(list(heads)))
    width = n_heads * int(rng.integers(1, max(1, max_width // n_heads) + 1))
    return ModelShape(
        layers=int(rng.integers(1, max_layers + 1)), width=width, heads=n_heads,
        ffn=int(rng.integers(1, 2 * width + 1)),
        vocab=int(rng.integers(len(SPECIALS) + 8, max_vocab + 1)),
        context=int(rng.integers(4, max_context + 1)), bias=bool(rng.integers(0, 2)),
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
    shift = int(rng.integers(-2, 4) if harsh else rng.integers(5, 9))     # negative: a left shift
    return data, shift


def harsh_table(rng: np.random.Generator) -> np.ndarray:
    """A softmax table of 1..256 u8 entries; some give every position the weight 0."""
    kind = int(rng.integers(6))
    if kind == 0:
        return seed_softmax_table()
    length = int(rng.choice([1, 2, 3, 16, 127, 128, 129, 255, 256]))
    if kind == 1:
        return np.zeros(length, dtype=np.uint8)                     # every weight 0: wsum 0
    if kind == 2:
        return np.full(length, 255, dtype=np.uint8)                 # all positions alike
    table = rng.integers(0, 256, size=length).astype(np.uint8)
    if kind == 3:
        table[: int(rng.integers(1, length + 1))] = 0               # the maximum's own weight is 0
    elif kind == 4:
        table[rng.random(length) < 0.5] = 0
    return table


def _harsh_settings(rng: np.random.Generator, vocab: int, context: int) -> Settings:
    lo = int(rng.integers(0, len(SPECIALS) + 1))
    hi = int(rng.integers(lo + 1, vocab + 1)) if rng.random() < 0.5 else vocab
    stop = (0, 1, 3) if rng.random() < 0.5 else tuple(
        sorted({int(t) for t in rng.integers(0, vocab, size=int(rng.integers(0, 4)))}))
    framing = min(4, context - 2)
    prefix_len = int(rng.integers(0, min(2, framing) + 1))
    suffix_len = int(rng.integers(0, min(2, framing - prefix_len) + 1))
    prefix = tuple(int(t) for t in rng.integers(0, vocab, size=prefix_len))
    suffix = tuple(int(t) for t in rng.integers(0, vocab, size=suffix_len))
    max_reply = int(rng.integers(0, 6)) if rng.random() < 0.3 else 0
    return Settings(context=context, argmax=(lo, hi), stop=stop, prompt_prefix=prefix,
                    prompt_suffix=suffix, max_reply=max_reply)


def _harsh_touches(rng: np.random.Generator, consts: dict[str, Const], layers: int) -> None:
    """Identical rows in the output projection (argmax ties) and the token table, per-layer tables."""
    for name in ("out", "te"):
        c = consts[name]
        data = c.data.copy()
        rows = data.shape[0]
        for _ in range(int(rng.integers(1, 4))):
            src = int(rng.integers(rows))
            dst = rng.integers(0, rows, size=int(rng.integers(1, max(2, rows // 4))))
            data[dst] = data[src]
        consts[name] = Const(name, c.type, data, c.shift)
    for i in range(layers):
        if rng.random() < 0.3:
            table = harsh_table(rng)
            consts[f"l{i}.lut"] = Const(f"l{i}.lut", TensorType("u8", table.shape), table)


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
    decoder = DecoderShape(shape.layers, shape.heads, score_shift)
    if harsh:
        table = harsh_table(rng)
        consts["lut"] = Const("lut", TensorType("u8", table.shape), table)
        _harsh_touches(rng, consts, shape.layers)
        if rng.random() < 0.3:
            score_shift = int(rng.integers(20, 32))             # most scores shift to 0 or -1
        weights = [n for n in consts if n.split(".")[-1] in ("q", "k", "v", "proj", "fc1", "fc2", "out")]
        posts = tuple((n, int(rng.integers(0, 3))) for n in weights if rng.random() < 0.5)
        decoder = DecoderShape(shape.layers, shape.heads, score_shift, posts=posts)
        settings = _harsh_settings(rng, shape.vocab, shape.context)
    body = decoder_body(decoder, set(consts))
    tokenizer = random_tokenizer(rng, shape.vocab)
    if harsh and rng.random() < 0.1:
        tokenizer = _with_a_long_token(rng, tokenizer)
    return verify(Program(settings, tokenizer, consts, {}, "seq", body))


def _with_a_long_token(rng: np.random.Generator, tokenizer: Tokenizer) -> Tokenizer:
    """One token no merge touches becomes 200..255 characters long (a byte counts up to 255, the
    longest token a target whose chat loop keeps lengths in a byte takes)."""
    merged = {t for triple in tokenizer.merges for t in triple}
    free = [i for i, text in enumerate(tokenizer.tokens)
            if i not in merged and i not in tokenizer.special and len(text) > 1]
    if not free:
        return tokenizer
    tokens = list(tokenizer.tokens)
    chars = sorted(tokenizer.char_ids)
    tokens[int(rng.choice(free))] = "".join(rng.choice(chars, size=int(rng.integers(200, 256))))
    return Tokenizer(tokens, tokenizer.special, tokenizer.merges, tokenizer.lowercase)


def random_prompt(rng: np.random.Generator, length: int | None = None) -> str:
    length = int(rng.integers(0, 30)) if length is None else length
    alphabet = BASE_CHARS + "ABCXYZ0123#@"
    return "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(length))
