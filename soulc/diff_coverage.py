"""Which corner cases of the numerics a program actually reaches on given token sequences.

Differential testing only finds disagreements where the inputs go, so the random generator's
harsh settings are checked against this list: `exercised` runs the reference interpreter and
names each corner case some op reached.
"""
from __future__ import annotations

import numpy as np

from soulc.ir.interpreter import Interpreter, shift_right
from soulc.ir.program import Program
from soulc.passes.kv_cache import kv_cache

CORNERS = (
    "embed saturates",              # an embedding sum outside int16
    "matvec saturates",             # a shifted sum outside int16
    "add saturates",
    "matvec floors a negative",     # a negative sum shifted right with bits lost
    "mix floors a negative",        # a negative weighted sum not divisible by the weight sum
    "zero attention sum",           # a head whose softmax weights are all 0 (wsum 0 -> 1)
    "scores wrap around int32",
    "argmax tie",                   # the largest logit in the range more than once
    "negative total shift",         # a matvec whose weight shift + post is below 0 (a left shift)
    "zero total shift",
)


def static_corners(program: Program) -> set[str]:
    found = set()
    for op in program.body:
        if op.opcode == "matvec":
            total = program.consts[op.args[0][1:]].shift + op.attrs.get("post", 0)
            if total < 0:
                found.add("negative total shift")
            elif total == 0:
                found.add("zero total shift")
    return found


def _op_corners(program: Program, op, env: dict, states: dict, token: int, pos: int) -> set[str]:
    """The corners one op reached for `token` at position `pos` (env: the values, states: the caches)."""
    found = set()
    out = env.get(op.result) if op.result else None

    def const(i):
        return program.consts[op.args[i][1:]].data.astype(np.int64)

    def rows(i):
        return states[op.args[i][1:]][: pos + 1]

    if op.opcode == "embed":
        te, pe = program.consts[op.args[0][1:]], program.consts[op.args[1][1:]]
        token_row = shift_right(te.data[token].astype(np.int64), te.shift - 8)
        total = token_row + shift_right(pe.data[pos].astype(np.int64), pe.shift - 8)
        if ((total > 32767) | (total < -32768)).any():
            found.add("embed saturates")
    elif op.opcode == "matvec":
        acc = const(0) @ env[op.args[1][1:]] + (const(2) if len(op.args) == 3 else 0)
        shift = program.consts[op.args[0][1:]].shift + op.attrs.get("post", 0)
        shifted = shift_right(acc, shift)
        if ((shifted > 32767) | (shifted < -32768)).any():
            found.add("matvec saturates")
        if shift > 0 and ((acc < 0) & (acc % (1 << shift) != 0) & (shifted >= -32768)).any():
            found.add("matvec floors a negative")
    elif op.opcode == "add":
        total = env[op.args[0][1:]] + env[op.args[1][1:]]
        if ((total > 32767) | (total < -32768)).any():
            found.add("add saturates")
    elif op.opcode == "scores":
        q, keys, heads = env[op.args[0][1:]], rows(1), op.attrs["heads"]
        per_head = len(q) // heads
        exact = np.einsum("hd,jhd->hj", q.reshape(heads, per_head), keys.reshape(len(keys), heads, per_head))
        if not np.array_equal(exact, out[:, : pos + 1]):
            found.add("scores wrap around int32")
    elif op.opcode == "softmax_lut":
        if (out[:, : pos + 1].sum(axis=1) == 0).any():
            found.add("zero attention sum")
    elif op.opcode == "mix":
        w, values, heads = env[op.args[0][1:]][:, : pos + 1], rows(1), op.attrs["heads"]
        wsum = np.maximum(1, w.sum(axis=1))[:, None]
        total = np.einsum("hj,jhd->hd", w, values.reshape(len(values), heads, -1))
        if ((total < 0) & (total % wsum != 0)).any():
            found.add("mix floors a negative")
    elif op.opcode == "argmax":
        lo, hi = program.settings.argmax
        logits = env[op.args[0][1:]][lo:hi]
        if (logits == logits.max()).sum() > 1:
            found.add("argmax tie")
    return found


def exercised(program: Program, sequences: list[list[int]]) -> set[str]:
    """The CORNERS the program reaches on these token sequences (each fed from position 0)."""
    step = kv_cache(program)
    found = static_corners(step)
    interpreter = Interpreter(step)
    for tokens in sequences:
        interpreter.reset()
        for pos, token in enumerate(tokens[: step.settings.context]):
            interpreter.next_token(token)
            for op in step.body:
                if op.opcode != "store":
                    found |= _op_corners(step, op, interpreter.values, interpreter.states, token, pos)
    return found
