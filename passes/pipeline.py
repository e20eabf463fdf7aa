"""The pass pipeline: named `Program -> Program` functions run in one list.

Because every pass has the same signature, `--print-after PASS` and `--print-after-all`
are a loop over this list. Targets append their own passes to the host pipeline.
"""
from __future__ import annotations

from typing import Callable

from soulc.ir.program import Program

from .kv_cache import kv_cache
from .quantise import quantise

Pass = Callable[[Program], Program]

HOST_PASSES: list[tuple[str, Pass]] = [
    ("quantise", quantise),         # f32 constants (an ONNX model's) -> int8/int16/u8; else nothing
    ("kv_cache", kv_cache),
]


def run_pipeline(program: Program, passes: list[tuple[str, Pass]],
                 after: Callable[[str, Program], None] | None = None) -> Program:
    """Runs the passes in order; `after(name, program)` sees the program after each one."""
    for name, fn in passes:
        program = fn(program)
        if after:
            after(name, program)
    return program
