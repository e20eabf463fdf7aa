"""The body of a decoder-only transformer in the IR, shared by the frontends.

Constant names follow one scheme: @te, @pe, @lut, @l{i}.{n1,q,k,v,proj,n2,fc1,fc1_b,fc2,fc2_b},
@norm, @out. Biases are optional (q_b, k_b, v_b, proj_b, fc1_b, fc2_b, out_b are used when the
program has them); so is a layer's own softmax table @l{i}.lut, used instead of the shared @lut.
"""
from __future__ import annotations

from dataclasses import dataclass

from soulc.ir.program import Op


@dataclass(frozen=True)
class DecoderShape:
    layers: int
    heads: int
    score_shift: int | None     # scores >> score_shift index the softmax table (None: a float
                                # table, whose shift the quantise pass chooses)
    post_shift: int = 1         # the 0.5 the seed's blocks multiply q, k, v, proj, fc1, fc2 by
    posts: tuple[tuple[str, int], ...] = ()     # per-weight exceptions: (weight name, post shift)


def decoder_body(shape: DecoderShape, consts) -> list[Op]:
    """The seq-form body; `consts` is the set of constant names the program declares."""
    body: list[Op] = []

    def emit(result, opcode, *args, **attrs):
        body.append(Op(opcode, list(args), attrs, result))
        return f"%{result}"

    posts = dict(shape.posts)

    def linear(result, weight, x, bias=None, post=shape.post_shift):
        args = [f"@{weight}", x] + ([f"@{bias}"] if bias in consts else [])
        return emit(result, "matvec", *args, post=posts.get(weight, post))

    def softmax(result, s, p):
        table = f"@{p}lut" if f"{p}lut" in consts else "@lut"
        if shape.score_shift is None:
            return emit(result, "softmax_lut", s, table)
        return emit(result, "softmax_lut", s, table, shift=shape.score_shift)

    h = emit("h", "embed", "@te", "@pe")
    for i in range(shape.layers):
        p = f"l{i}."
        x = emit(p + "x", "rmsnorm", h, f"@{p}n1")
        q = linear(p + "q", p + "q", x, p + "q_b")
        k = linear(p + "k", p + "k", x, p + "k_b")
        v = linear(p + "v", p + "v", x, p + "v_b")
        s = emit(p + "scores", "scores", q, k, heads=shape.heads)
        w = softmax(p + "weights", s, p)
        a = emit(p + "att", "mix", w, v, heads=shape.heads)
        o = linear(p + "proj", p + "proj", a, p + "proj_b")
        h = emit(p + "h1", "add", h, o)
        x2 = emit(p + "x2", "rmsnorm", h, f"@{p}n2")
        f1 = linear(p + "fc1", p + "fc1", x2, p + "fc1_b")
        r = emit(p + "relu", "relu", f1)
        f2 = linear(p + "fc2", p + "fc2", r, p + "fc2_b")
        h = emit(p + "h2", "add", h, f2)
    xf = emit("xf", "rmsnorm", h, "@norm")
    logits = linear("logits", "out", xf, "out_b", post=0)
    emit("next", "argmax", logits)
    return body
