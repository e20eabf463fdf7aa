"""The op set: for each opcode, what its operands must be and what type it yields.

Semantics live in interpreter.py; each target renders the same ops in its own code.
Operand kinds: `value` is an SSA value (%x), `const` a constant (@w), `state` a state
buffer (@k), `history` the rows of a value at positions 0..t: a value in the seq form,
a state buffer in the step form.

A program straight from a float frontend has f32 constants wherever the quantised one has
int8 weights, int16 biases or the softmax table (an f32[1] holding the float softmax's scale
on q.k, with no `shift`: the quantise pass picks the shift and computes the table). Such a
program verifies but does not run; its activations are typed as they will be once quantised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .program import TOKEN, Program, TensorType


class OpError(Exception):
    """An op whose operands or attributes do not fit its opcode."""


BANK_WINDOW = (0xC000, 0x10000)     # where a `bank` op pages its bank in
BANK_MAX = 7
OPTIONAL = "optional"     # an attribute's default meaning "may be absent" (the infer function sees None)


@dataclass(frozen=True)
class OpSpec:
    operands: tuple[str, ...]           # kinds, in order; a trailing "?" marks an optional one
    attrs: dict[str, int]               # attribute name -> default (None: required; OPTIONAL)
    infer: Callable[..., TensorType | None]
    doc: str


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise OpError(message)


WEIGHT = ("i8", "f32")      # an int8 weight, or the float one quantise turns into it
BIAS = ("i16", "f32")
TABLE = ("u8", "f32")


def _dtypes(dtype: str | tuple[str, ...]) -> tuple[str, ...]:
    return (dtype,) if isinstance(dtype, str) else dtype


def _vector(t: TensorType, what: str, dtype: str | tuple[str, ...] = "i16") -> int:
    _need(t.dtype in _dtypes(dtype) and len(t.shape) == 1, f"{what} must be {' or '.join(_dtypes(dtype))}[n], not {t}")
    return t.shape[0]


def _rows(t: TensorType, what: str, dtype: str | tuple[str, ...] = "i16") -> tuple[int, int]:
    _need(t.dtype in _dtypes(dtype) and len(t.shape) == 2,
          f"{what} must be {' or '.join(_dtypes(dtype))}[rows, cols], not {t}")
    return t.shape


def _history_width(t: TensorType, p: Program, what: str) -> int:
    """Width of a history operand: an i16[d] value (seq form) or an i16[context, d] state."""
    if len(t.shape) == 2:
        rows, width = _rows(t, what)
        _need(rows == p.settings.context, f"{what} holds {rows} positions, the context is {p.settings.context}")
        return width
    return _vector(t, what)


def _heads(width: int, heads: int) -> None:
    _need(heads >= 1 and width % heads == 0, f"heads {heads} does not divide width {width}")


def infer_embed(p, attrs, tok_table, pos_table):
    vocab, width = _rows(tok_table, "token table", WEIGHT)
    positions, pwidth = _rows(pos_table, "position table", WEIGHT)
    _need(width == pwidth, f"token table width {width} != position table width {pwidth}")
    _need(positions >= p.settings.context,
          f"position table has {positions} rows, the context needs {p.settings.context}")
    _need(vocab == len(p.tokenizer.tokens), f"token table has {vocab} rows, the vocabulary {len(p.tokenizer.tokens)}")
    return TensorType("i16", (width,))


def infer_rmsnorm(p, attrs, x, gain):
    n = _vector(x, "input")
    _need(_vector(gain, "gain", WEIGHT) == n, f"gain {gain} does not fit input {x}")
    return x


def infer_matvec(p, attrs, weight, x, bias=None):
    rows, cols = _rows(weight, "weight", WEIGHT)
    _need(_vector(x, "input") == cols, f"weight {weight} cannot multiply input {x}")
    if bias is not None:
        _need(_vector(bias, "bias", BIAS) == rows, f"bias {bias} does not fit weight {weight}")
        _need((bias.dtype == "f32") == (weight.dtype == "f32"),
              f"bias {bias} and weight {weight}: both float or neither")
    return TensorType("i16", (rows,))


def infer_elementwise(p, attrs, a, b=None):
    _vector(a, "operand")
    _need(b is None or b == a, f"operands differ: {a} and {b}")
    return a


def infer_scores(p, attrs, q, keys):
    width = _vector(q, "query")
    _need(_history_width(keys, p, "keys") == width, f"keys {keys} do not fit query {q}")
    _heads(width, attrs["heads"])
    return TensorType("i32", (attrs["heads"], p.settings.context))


def infer_softmax_lut(p, attrs, scores, lut):
    _rows(scores, "scores", "i32")
    _vector(lut, "table", TABLE)
    if lut.dtype == "f32":
        _need(lut.shape == (1,), f"a float softmax takes its scale as f32[1], not {lut}")
        _need(attrs["shift"] is None, "a float softmax has no shift: the quantise pass chooses it")
    else:
        _need(attrs["shift"] is not None, "needs attribute 'shift'")
        _need(0 <= attrs["shift"] <= 31, f"shift {attrs['shift']} is outside 0..31")
    return TensorType("u8", scores.shape)


def infer_mix(p, attrs, weights, values):
    heads, ctx = _rows(weights, "weights", "u8")
    width = _history_width(values, p, "values")
    _need(heads == attrs["heads"], f"weights have {heads} heads, the op says {attrs['heads']}")
    _heads(width, heads)
    return TensorType("i16", (width,))


def infer_store(p, attrs, state, x):
    _, width = _rows(state, "state")
    _need(_vector(x, "stored value") == width, f"{x} does not fit a row of {state}")
    return None


def infer_concat(p, attrs, a, b):
    return TensorType("i16", (_vector(a, "first part") + _vector(b, "second part"),))


def infer_bank(p, attrs):
    _need(0 <= attrs["n"] <= BANK_MAX, f"bank {attrs['n']} is outside 0..{BANK_MAX}")
    return None


def infer_argmax(p, attrs, logits):
    n = _vector(logits, "logits")
    lo, hi = p.settings.argmax
    _need(0 <= lo < hi <= n, f"argmax range {lo}..{hi} does not fit {n} logits")
    return TOKEN


OPS: dict[str, OpSpec] = {
    "embed": OpSpec(("const", "const"), {}, infer_embed,
                    "token row plus position row, both brought to Q8.8, saturated"),
    "rmsnorm": OpSpec(("value", "const"), {}, infer_rmsnorm,
                      "RMS normalisation with an int8 gain (seed numerics, no epsilon)"),
    "matvec": OpSpec(("const", "value", "const?"), {"post": 0}, infer_matvec,
                     "int8 matrix times Q8.8 vector, optional int16 bias, >> (weight shift + post), saturated"),
    "relu": OpSpec(("value",), {}, infer_elementwise, "negatives become 0"),
    "add": OpSpec(("value", "value"), {}, infer_elementwise, "saturating add"),
    "scores": OpSpec(("value", "history"), {"heads": None}, infer_scores,
                     "per head, q . k for every position so far (int32)"),
    "softmax_lut": OpSpec(("value", "const"), {"shift": OPTIONAL}, infer_softmax_lut,
                          "per head, table[min(last, max - (s >> shift))] (u8 weights)"),
    "mix": OpSpec(("value", "history"), {"heads": None}, infer_mix,
                  "per head, sum w*v floor-divided by max(1, sum w), saturated"),
    "store": OpSpec(("state", "value"), {}, infer_store,
                    "write the value into the state row of the current position"),
    "concat": OpSpec(("value", "value"), {}, infer_concat,
                     "the first vector's elements, then the second's (joins a matvec split by rows)"),
    "bank": OpSpec((), {"n": None}, infer_bank,
                   "page memory bank n in at 0xC000 (BANK_WINDOW): the constants and states placed in "
                   "that bank are readable until the next bank op; no effect on the values"),
    "argmax": OpSpec(("value",), {}, infer_argmax,
                     "the id in the settings' argmax range with the largest logit, lowest on a tie"),
}

HISTORY_OPS = ("scores", "mix")
