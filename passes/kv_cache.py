"""kv_cache: seq form -> step form.

Every value that attention reads as history (the keys of `scores`, the values of `mix`)
gets a state buffer with one row per position; a `store` right after the value's
definition writes the current position's row, and the attention ops read the buffer.
Attention is causal, so one step then computes exactly one new position.
"""
from __future__ import annotations

from soulc.ir.ops import HISTORY_OPS
from soulc.ir.program import Op, Program, State, TensorType
from soulc.ir.verify import verify


def kv_cache(program: Program) -> Program:
    if program.form == "step":
        return program
    out = program.copy()
    history = {op.args[1][1:] for op in out.body if op.opcode in HISTORY_OPS}
    types = out.value_types()
    cache_of = {}
    body = []
    for op in out.body:
        if op.opcode in HISTORY_OPS:
            op.args[1] = "@" + cache_of[op.args[1][1:]]
        body.append(op)
        if op.result in history:
            name = f"{op.result}.cache"
            width = types[op.result].shape[0]
            out.states[name] = State(name, TensorType("i16", (out.settings.context, width)))
            cache_of[op.result] = name
            body.append(Op("store", [f"@{name}", f"%{op.result}"]))
    out.body = body
    out.form = "step"
    return verify(out)
