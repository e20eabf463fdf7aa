"""The reference interpreter's arithmetic, over a batch of whole sequences at once (numpy only).

`batch_logits(program, ids)` gives the integer logits of a quantised seq-form program at every
position of every sequence, as `Interpreter` computes them position by position (the same
numbers: tests/test_train.py checks it against the interpreter); it is what lets training measure
integer accuracy on the whole corpus at every evaluation. Each value holds a [batch, T, ...] array;
scores and mixes see the positions up to their own, as the seq form defines.
"""
from __future__ import annotations

import numpy as np

from soulc.ir.interpreter import sat16, shift_right, wrap32
from soulc.ir.program import Program


def isqrt(m: np.ndarray) -> np.ndarray:
    r = np.floor(np.sqrt(m.astype(np.float64))).astype(np.int64)
    r -= (r * r > m)
    r += ((r + 1) * (r + 1) <= m)
    return r


def exact(a, b, spec: str | None = None) -> np.ndarray:
    """An integer matmul or einsum through float64 BLAS: exact, as every product and sum here is
    far below 2^53 (int8 x int16 x width; Q8.8 q.k; u8 weights x int16 values x context)."""
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    out = fa @ fb if spec is None else np.einsum(spec, fa, fb, optimize=True)
    return np.rint(out).astype(np.int64)


def rmsnorm(x, gain, gain_shift):
    xs = x >> 4
    mean = np.maximum(1, (xs * xs).sum(-1, keepdims=True) // x.shape[-1])
    root = np.maximum(1, isqrt(mean))
    inv = np.minimum(32767, 2**19 // root)
    return sat16(shift_right(((x * inv) >> 15) * gain, gain_shift))


def batch_logits(program: Program, ids: np.ndarray) -> np.ndarray:
    """ids [batch, T] -> int64 logits [batch, T, vocab]; positions after a sequence's end are ignored."""
    if program.form != "seq":
        raise ValueError("batch_logits runs the seq form (before kv_cache)")
    ids = np.asarray(ids, dtype=np.int64)
    T = ids.shape[1]
    c = {name: k.data.astype(np.int64) for name, k in program.consts.items()}
    s = {name: k.shift for name, k in program.consts.items()}
    causal = np.tril(np.ones((T, T), dtype=bool))           # [query t, key j]
    env: dict[str, np.ndarray] = {}
    out = None
    for op in program.body:
        a = op.args

        def value(i):
            return env[a[i][1:]]

        code = op.opcode
        if code == "embed":
            te, pe = a[0][1:], a[1][1:]
            out = sat16(shift_right(c[te][ids], s[te] - 8) + shift_right(c[pe][:T], s[pe] - 8)[None])
        elif code == "rmsnorm":
            out = rmsnorm(value(0), c[a[1][1:]], s[a[1][1:]])
        elif code == "matvec":
            w = c[a[0][1:]]
            acc = exact(value(1), w.T)
            if len(a) == 3:
                acc = acc + c[a[2][1:]]
            out = sat16(shift_right(acc, s[a[0][1:]] + op.attrs.get("post", 0)))
        elif code == "relu":
            out = np.maximum(value(0), 0)
        elif code == "add":
            out = sat16(value(0) + value(1))
        elif code == "scores":
            heads = op.attrs["heads"]
            q, k = value(0), value(1)
            B, _, D = q.shape
            qh, kh = q.reshape(B, T, heads, D // heads), k.reshape(B, T, heads, D // heads)
            out = wrap32(exact(qh, kh, "bthd,bjhd->bthj"))          # [B, T, heads, T]
        elif code == "softmax_lut":
            table = c[a[1][1:]]
            scaled = value(0) >> op.attrs["shift"]
            top = np.where(causal[None, :, None, :], scaled, np.iinfo(np.int64).min).max(-1, keepdims=True)
            index = np.minimum(len(table) - 1, np.where(causal[None, :, None, :], top - scaled, 0))
            out = np.where(causal[None, :, None, :], table[index], 0)
        elif code == "mix":
            heads = op.attrs["heads"]
            w, v = value(0), value(1)
            B, _, D = v.shape
            vh = v.reshape(B, T, heads, D // heads)
            total = exact(w, vh, "bthj,bjhd->bthd")
            wsum = np.maximum(1, w.sum(-1, keepdims=True))
            out = sat16(total // wsum).reshape(B, T, D)
        elif code == "argmax":
            return value(0)
        else:
            raise NotImplementedError(f"batch_logits: {code}")
        env[op.result] = out
    raise ValueError("the program has no argmax")


def batch_next(program: Program, ids: np.ndarray) -> np.ndarray:
    """The integer model's next token at every position: [batch, T]."""
    lo, hi = program.settings.argmax
    return lo + batch_logits(program, ids)[..., lo:hi].argmax(-1)
