"""The float path of differential testing: a random float model, exported to ONNX, run on
onnxruntime, against the program soulc quantises from that ONNX file.

The two cannot agree exactly; the bound is the quantisation error of the numerics (see
tests/test_onnx_shapes.py): int8 weights (about 1% per tensor), Q8.8 activations, and above
all the integer RMSNorm, whose root is only about 16 * rms (a few per cent per norm). Over
one to three layers the logits stay within TOLERANCE = 6% relative L2 error of the float
logits (2-3% is typical), provided the residual stream's rms stays above 1: below it the
integer RMSNorm's clamped inverse root does not normalise. So the random models here draw
their embeddings like a trained model's (rms about 2) and their gains near 1. The greedy
next token is reported too (top-1 agreement), but not bounded: with random weights two
logits are often closer than the error.

Needs torch (soulc.model) and onnxruntime.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soulc.ir.interpreter import Interpreter
from soulc.ir.program import Program, Tokenizer
from soulc.passes.kv_cache import kv_cache
from soulc.random_model import random_tokenizer

TOLERANCE = 0.06


def random_float_config(rng: np.random.Generator):
    """A SoulConfig within the zx48's reach: 1..8 heads of 2 or more, width up to 40, 1..3 layers.

    (Feature axes of size 1 are left out: the ONNX frontend takes a [1, T, heads, 1] query or
    a [1, T, 1] FFN activation for another layout and rejects the model.)"""
    from soulc.model import SoulConfig
    heads = int(rng.integers(1, 9))
    width = heads * int(rng.integers(max(2, 8 // heads), 40 // heads + 1))
    return SoulConfig(
        vocab=int(rng.integers(16, 129)), width=width, heads=heads, layers=int(rng.integers(1, 4)),
        ffn=int(rng.integers(2, 2 * width + 1)), context=int(rng.integers(6, 17)),
        ffn_bias=bool(rng.integers(2)), att_bias=bool(rng.integers(2)), out_bias=bool(rng.integers(2)),
        fused_qkv=bool(rng.integers(2)), attention=str(rng.choice(["manual", "sdpa"])),
        post_scale=float(rng.choice([0.5, 0.5, 1.0, 0.25])))


def random_float_model(rng: np.random.Generator, config):
    """SoulModel(config) with random weights: embeddings of rms about 2, biases that are not
    zero, gains around 1."""
    import torch

    from soulc.model import SoulModel
    torch.manual_seed(int(rng.integers(2**31)))
    model = SoulModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("te.weight", "pe.weight"):
                p.normal_(0, 2.0)
            elif name.endswith(".b"):
                p.normal_(0, 0.2)
            elif name.endswith("n1.w") or name.endswith("n2.w") or name == "norm.w":
                p.uniform_(0.5, 1.5)
    return model


def tokenizer_json(tokenizer: Tokenizer) -> dict:
    """The seed's tokenizer.json form of a Tokenizer (special tokens are named <...>)."""
    tokens = tokenizer.tokens
    return {"vocab": {text: i for i, text in enumerate(tokens)},
            "merges": [[tokens[a], tokens[b]] for a, b, _ in tokenizer.merges]}


def export_quietly(model, path: str | Path, tokenizer: dict) -> Path:
    """soulc.model.export_onnx (TorchScript exporter, dynamic length) without the exporter's chatter."""
    from soulc.model import export_onnx
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return export_onnx(model, path, tokenizer, dynamo=False)
    finally:
        logging.disable(logging.NOTSET)


def make_float_case(rng: np.random.Generator, folder: str | Path):
    """A random float model exported to folder/model.onnx; returns (config, path)."""
    config = random_float_config(rng)
    model = random_float_model(rng, config)
    tokenizer = random_tokenizer(rng, config.vocab)
    return config, export_quietly(model, Path(folder) / "model.onnx", tokenizer_json(tokenizer))


@dataclass
class FloatComparison:
    errors: list[float] = field(default_factory=list)     # relative L2 error per sequence
    agree: int = 0                                          # positions whose greedy token agrees
    positions: int = 0
    sequences: list[list[int]] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.errors, default=0.0)

    @property
    def agreement(self) -> float:
        return self.agree / self.positions if self.positions else 1.0

    def within(self, tolerance: float = TOLERANCE) -> bool:
        return self.worst < tolerance


def ir_logits(program: Program, ids: list[int]) -> np.ndarray:
    """The quantised program's logits as real numbers (Q8.8 / 256) at every position of `ids`."""
    interpreter = Interpreter(kv_cache(program))
    rows = []
    for token in ids:
        interpreter.next_token(token)
        rows.append(interpreter.values["logits"] / 256.0)
    return np.array(rows)


def compare_float(path: str | Path, program: Program, rng: np.random.Generator,
                  count: int = 3) -> FloatComparison:
    """onnxruntime's logits against the quantised program's on `count` random sequences that
    fill the context (a <SEP> first, as every prompt starts)."""
    from soulc.quant_report import FloatModel
    model = FloatModel(path)
    s, vocab = program.settings, len(program.tokenizer.tokens)
    lo, hi = s.argmax
    result = FloatComparison()
    for _ in range(count):
        ids = [1] + [int(t) for t in rng.integers(4, vocab, s.context - 1)]
        want, got = model.logits(ids), ir_logits(program, ids)
        result.errors.append(float(np.linalg.norm(got - want) / np.linalg.norm(want)))
        result.agree += int((np.argmax(got[:, lo:hi], axis=1) == np.argmax(want[:, lo:hi], axis=1)).sum())
        result.positions += len(ids)
        result.sequences.append(ids)
    return result
