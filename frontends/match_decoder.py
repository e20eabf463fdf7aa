"""Maps a traced body (generic names) onto the decoder soulc compiles (frontends/decoder.py).

The decoder's own body, built with every optional bias, is the template. Matching starts at
the argmax and follows operands back, op by op; a residual `add` may take its operands in
either order. Each template constant is bound to the traced one in its place, so the traced
constants get the decoder's names (@te, @l0.q, ...); a template bias with no traced
counterpart is absent. Post shifts and head counts are read off as they are found.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soulc.errors import SoulcError

from .decoder import DecoderShape, decoder_body
from .onnx_patterns import Trace

BIASES = ("q_b", "k_b", "v_b", "proj_b", "fc1_b", "fc2_b")


@dataclass
class Decoder:
    """A recognised decoder: float constants by decoder name, and what the body needs."""
    layers: int
    heads: int
    consts: dict[str, np.ndarray]
    sources: dict[str, str]                 # decoder name -> the ONNX name it came from
    posts: dict[str, int]                   # weight name -> post shift
    scales: list[float] = field(default_factory=list)      # each layer's softmax scale on q.k


def template_names(layers: int) -> set[str]:
    names = {"te", "pe", "norm", "out", "out_b"}
    for i in range(layers):
        names |= {f"l{i}.{n}" for n in ("n1", "q", "k", "v", "proj", "n2", "fc1", "fc2", "lut") + BIASES}
    return names


class _State:
    def __init__(self, values=None, consts=None, attrs=None):
        self.values = dict(values or {})        # template value -> traced value
        self.consts = dict(consts or {})        # template constant -> traced constant (None: absent)
        self.attrs = dict(attrs or {})          # (template value, attribute) -> traced attribute value

    def copy(self) -> "_State":
        return _State(self.values, self.consts, self.attrs)


class _Mismatch(Exception):
    pass


def match_decoder(trace: Trace, where: str) -> Decoder:
    layers = sum(op.opcode == "mix" for op in trace.body)
    if layers == 0:
        raise SoulcError(f"{where}: no causal self-attention found in the graph; soulc compiles decoder "
                         "transformers (embedding, attention blocks, final norm, output projection)")
    template = decoder_body(DecoderShape(layers, 0, None), template_names(layers))
    tdef = {op.result: op for op in template}
    rdef = {op.result: op for op in trace.body}
    deepest: list = []

    def fail(top, rv, why):
        if not deepest or len(deepest[0]) < len(why_path):
            deepest[:] = [list(why_path), top, rv, why]
        raise _Mismatch

    why_path: list[str] = []

    def value(tv: str, rv: str, st: _State) -> _State:
        if tv in st.values:
            if st.values[tv] != rv:
                fail(tdef[tv], rv, "is shared differently")
            return st
        top, rop = tdef[tv], rdef.get(rv)
        if rop is None or rop.opcode != top.opcode:
            fail(top, rv, "differs")
        st = st.copy()
        st.values[tv] = rv
        why_path.append(tv)
        try:
            if top.opcode == "add":
                first = _try(lambda: operands(top, rop, rop.args, st))
                return first if first is not None else operands(top, rop, rop.args[::-1], st)
            return operands(top, rop, rop.args, st)
        finally:
            why_path.pop()

    def operands(top, rop, rargs, st: _State) -> _State:
        if len(rargs) > len(top.args):
            fail(top, rop.result, "has more operands")
        for i, targ in enumerate(top.args):
            rarg = rargs[i] if i < len(rargs) else None
            if targ.startswith("@"):
                if rarg is None and targ[1:].endswith(BIASES + ("out_b",)):
                    got = None
                elif rarg is None or not rarg.startswith("@"):
                    fail(top, rop.result, "differs")
                else:
                    got = rarg[1:]
                if st.consts.setdefault(targ[1:], got) != got:
                    fail(top, rop.result, "reuses a constant differently")
            elif rarg is None or not rarg.startswith("%"):
                fail(top, rop.result, "differs")
            else:
                st = value(targ[1:], rarg[1:], st)
        for name, v in rop.attrs.items():
            st.attrs[(top.result, name)] = v
        return st

    def _try(fn):
        try:
            return fn()
        except _Mismatch:
            return None

    root_t, root_r = template[-1].result, trace.body[-1].result
    try:
        st = value(root_t, root_r, _State())
    except _Mismatch:
        path, top, rv, why = deepest
        rop = rdef.get(rv)
        found = f"{rop.opcode} (from ONNX node '{trace.nodes.get(rv, '?')}')" if rop else "nothing"
        raise SoulcError(f"{where}: the graph is not the decoder soulc compiles: where the decoder computes "
                         f"{top.opcode} %{top.result}, the graph has {found}, which {why}; soulc compiles "
                         "embedding -> (RMSNorm, causal attention, residual add, RMSNorm, ReLU MLP, residual "
                         "add) per layer -> RMSNorm -> output projection") from None
    heads = {v for (tv, name), v in st.attrs.items() if name == "heads"}
    if len(heads) != 1:
        raise SoulcError(f"{where}: the layers' attention has different head counts {sorted(heads)}; "
                         "soulc compiles one head count for the whole model")
    consts, sources, posts, scales = {}, {}, {}, []
    for name, traced in st.consts.items():
        if traced is not None:
            consts[name] = trace.consts[traced]
            sources[name] = trace.sources[traced]
    for op in template:
        if op.opcode == "matvec":
            posts[op.args[0][1:]] = st.attrs.get((op.result, "post"), 0)
        if op.opcode == "softmax_lut":
            scales.append(float(consts.pop(op.args[1][1:])[0]))
    return Decoder(layers, heads.pop(), consts, sources, posts, scales)
