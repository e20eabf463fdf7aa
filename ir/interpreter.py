"""The reference interpreter: executes a Program exactly, per the seed's NUMERICS.md.

Every target is tested against it, so each op is written to read like its definition.
All arithmetic is done in int64 numpy arrays and narrowed where the definition narrows.
"""
from __future__ import annotations

from math import isqrt

import numpy as np

from soulc.errors import SoulcError

from .program import Op, Program


def sat16(v):
    return np.clip(v, -32768, 32767)


def wrap32(v):
    """What a 32-bit two's complement accumulator holds."""
    return ((np.asarray(v, dtype=np.int64) + 2**31) % 2**32) - 2**31


def shift_right(v, s: int):
    """Flooring shift by s; a negative s shifts left."""
    return v >> s if s >= 0 else v << -s


def embed(token_row, tok_shift, pos_row, pos_shift):
    return sat16(shift_right(token_row, tok_shift - 8) + shift_right(pos_row, pos_shift - 8))


def rmsnorm(x, gain, gain_shift):
    xs = x >> 4
    mean = max(1, int((xs * xs).sum()) // len(x))
    root = max(1, isqrt(mean))
    inv = min(32767, 2**19 // root)
    return sat16(shift_right(((x * inv) >> 15) * gain, gain_shift))


def matvec(weight, x, bias, shift):
    acc = weight @ x
    if bias is not None:
        acc = acc + bias
    return sat16(shift_right(acc, shift))


def scores(q, keys, heads):
    """keys: the rows for positions 0..t. Returns int32 scores [heads, t+1]."""
    per_head = len(q) // heads
    qh = q.reshape(heads, per_head)
    kh = keys.reshape(len(keys), heads, per_head)
    return wrap32(np.einsum("hd,jhd->hj", qh, kh))


def softmax_lut(s, table, shift):
    """s: [heads, t+1] scores. Returns the table's weights [heads, t+1]."""
    scaled = s >> shift
    index = np.minimum(len(table) - 1, scaled.max(axis=1, keepdims=True) - scaled)
    return table[index]


def mix(w, values, heads):
    """w: [heads, t+1] weights; values: rows for positions 0..t. Returns the mixed vector."""
    per_head = values.shape[1] // heads
    vh = values.reshape(len(values), heads, per_head)
    total = np.einsum("hj,jhd->hd", w, vh)
    wsum = np.maximum(1, w.sum(axis=1, keepdims=True))
    return sat16(total // wsum).reshape(-1)


def argmax(logits, lo, hi):
    return lo + int(np.argmax(logits[lo:hi]))     # np.argmax takes the first, i.e. lowest, maximum


class Interpreter:
    """Runs a program position by position: feed the prompt, then ask for tokens.

    In the step form each call computes one position against the state buffers. In the seq
    form tokens are collected and `next_token` recomputes every position, as the seed did.
    """

    def __init__(self, program: Program):
        floats = program.float_consts()
        if floats:
            raise SoulcError(f"the program still has float constants (@{', @'.join(floats[:3])}"
                             f"{', ...' if len(floats) > 3 else ''}): run the quantise pass before interpreting it")
        self.program = program
        self.consts = {name: c.data.astype(np.int64) for name, c in program.consts.items()}
        self.shifts = {name: c.shift for name, c in program.consts.items()}
        self.reset()

    def reset(self) -> None:
        self.states = {name: np.zeros(s.type.shape, dtype=np.int64) for name, s in self.program.states.items()}
        self.tokens: list[int] = []
        self.values: dict[str, np.ndarray] = {}

    def feed(self, token: int) -> None:
        """Take the next token of the sequence without needing a prediction."""
        if self.program.form == "step":
            self._run_position(token, len(self.tokens), {})
        self.tokens.append(token)

    def next_token(self, token: int) -> int:
        """Take the next token of the sequence and predict the one after it."""
        if self.program.form == "step":
            result = self._run_position(token, len(self.tokens), {})
            self.tokens.append(token)
            return result
        self.tokens.append(token)
        history: dict[str, list] = {}
        for pos, tok in enumerate(self.tokens):
            result = self._run_position(tok, pos, history)
        return result

    def _run_position(self, token: int, pos: int, history: dict[str, list]):
        if pos >= self.program.settings.context:
            raise IndexError(f"position {pos} is past the context of {self.program.settings.context}")
        env = self.values = {}
        for op in self.program.body:
            out = self._execute(op, token, pos, env, history)
            if op.result is not None:
                env[op.result] = out
                history.setdefault(op.result, []).append(out)
        return out

    def _rows(self, arg: str, pos: int, history) -> np.ndarray:
        """The rows of a history operand for positions 0..pos."""
        if arg.startswith("@"):
            return self.states[arg[1:]][: pos + 1]
        return np.stack(history[arg[1:]][: pos + 1])

    def _execute(self, op: Op, token: int, pos: int, env, history):
        a, c = op.args, self.consts

        def value(i):
            return env[a[i][1:]]

        def const(i):
            return c[a[i][1:]]

        def shift(i):
            return self.shifts[a[i][1:]]

        code = op.opcode
        if code == "embed":
            return embed(const(0)[token], shift(0), const(1)[pos], shift(1))
        if code == "rmsnorm":
            return rmsnorm(value(0), const(1), shift(1))
        if code == "matvec":
            bias = const(2) if len(a) == 3 else None
            return matvec(const(0), value(1), bias, shift(0) + op.attrs.get("post", 0))
        if code == "relu":
            return np.maximum(value(0), 0)
        if code == "add":
            return sat16(value(0) + value(1))
        if code == "scores":
            out = np.zeros(op.type.shape, dtype=np.int64)
            out[:, : pos + 1] = scores(value(0), self._rows(a[1], pos, history), op.attrs["heads"])
            return out
        if code == "softmax_lut":
            out = np.zeros(op.type.shape, dtype=np.int64)
            out[:, : pos + 1] = softmax_lut(value(0)[:, : pos + 1], const(1), op.attrs["shift"])
            return out
        if code == "mix":
            return mix(value(0)[:, : pos + 1], self._rows(a[1], pos, history), op.attrs["heads"])
        if code == "store":
            self.states[a[0][1:]][pos] = value(1)
            return None
        if code == "concat":
            return np.concatenate([value(0), value(1)])
        if code == "bank":
            return None                 # paging moves no numbers
        if code == "argmax":
            return argmax(value(0), *self.program.settings.argmax)
        raise NotImplementedError(code)
