"""schedule: in the step form, the ops that only feed the output go after all the others.

A step computed only to fill the caches (a prompt's positions before its last) needs the
ops whose results reach a `store`; the rest (for the seed: the last layer's query, its
attention and feed-forward, the output projection and argmax) feed only the output. A
target skips them with one jump when they come last, so this pass moves them there,
keeping the order within each part. No dependency is broken: an op whose result reaches a
store has operands that reach it too.
"""
from __future__ import annotations

from soulc.ir.program import Program
from soulc.ir.verify import verify


def output_last(program: Program) -> Program:
    if program.form != "step":
        return program
    needed: set[str] = set()
    for op in reversed(program.body):
        if op.opcode == "store" or (op.result is not None and op.result in needed):
            needed.update(a[1:] for a in op.args if a.startswith("%"))
    early = [op for op in program.body if op.opcode == "store" or (op.result is not None and op.result in needed)]
    late = [op for op in program.body if not (op.opcode == "store" or (op.result is not None and op.result in needed))]
    if not any(op.opcode == "store" for op in program.body):
        return program
    out = program.copy()
    out.body = early + late
    return verify(out)
