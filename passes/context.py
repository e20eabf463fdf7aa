"""set_context: change the context length of a program (the `--context N` option)."""
from __future__ import annotations

from soulc.errors import SoulcError
from soulc.ir.program import Program, State, TensorType
from soulc.ir.verify import verify


def set_context(program: Program, context: int) -> Program:
    old = program.settings.context
    if context == old:
        return program
    if context < 2:
        raise SoulcError(f"--context {context}: a context needs at least 2 positions")
    out = program.copy()
    out.settings.context = context
    for name, state in out.states.items():
        if state.type.shape and state.type.shape[0] == old:
            out.states[name] = State(name, TensorType(state.type.dtype, (context, *state.type.shape[1:])))
    for op in out.body:
        op.type = None          # shapes that follow the context are inferred again
    try:
        return verify(out)
    except SoulcError as e:
        raise SoulcError(f"--context {context}: {e}") from None
