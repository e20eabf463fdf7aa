"""Minimal reproducers for differential-testing failures.

`shrink` takes a failing (program, prompt) and a predicate `fails(program, prompt)`, and makes
both smaller while the predicate holds: drops whole layers, shortens the context, then cuts
the prompt (halves first, then single characters). `write_reproducer` saves the result as a
`.soul` IR file with the prompt, both sides' outputs and the first op that differs.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Callable

from soulc.errors import SoulcError
from soulc.ir.printer import print_program
from soulc.ir.program import Program
from soulc.ir.verify import verify
from soulc.passes.context import set_context

Fails = Callable[[Program, str], bool]


def layer_count(program: Program) -> int:
    """Layers of a decoder-shaped program (constants named l<i>.*)."""
    return len({name.split(".")[0] for name in program.consts if name.startswith("l") and "." in name})


def drop_layer(program: Program, index: int) -> Program | None:
    """The seq-form program without decoder layer `index` (its output replaced by its input),
    or None when the program is not shaped so."""
    prefix = f"l{index}."
    ops = [op for op in program.body if op.result and op.result.startswith(prefix)]
    if program.form != "seq" or not ops or ops[0].opcode != "rmsnorm" or not ops[-1].result.endswith("h2"):
        return None
    layer_in, layer_out = ops[0].args[0], f"%{ops[-1].result}"
    out = program.copy()
    out.body = [op for op in out.body if not (op.result and op.result.startswith(prefix))]
    for op in out.body:
        op.args = [layer_in if a == layer_out else a for a in op.args]
        op.type = None
    out.consts = {n: c for n, c in out.consts.items() if not n.startswith(prefix)}
    try:
        return verify(out)
    except SoulcError:
        return None


def _smaller_contexts(program: Program) -> list[int]:
    s = program.settings
    least = len(s.prompt_prefix) + len(s.prompt_suffix) + 2
    return sorted({c for c in (least, s.context // 2, s.context - 1) if least <= c < s.context})


def shrink(program: Program, prompt: str, fails: Fails, budget: int = 80) -> tuple[Program, str]:
    """A smaller (program, prompt) that still fails; at most `budget` calls of `fails`."""
    calls = 0

    def still(p: Program | None, text: str) -> bool:
        nonlocal calls
        if p is None or calls >= budget:
            return False
        calls += 1
        return fails(p, text)

    changed = True
    while changed:
        changed = False
        for index in reversed(range(layer_count(program))):
            if layer_count(program) > 1:
                candidate = drop_layer(program, index)
                if still(candidate, prompt):
                    program, changed = candidate, True
                    break
        for context in _smaller_contexts(program):
            try:
                candidate = set_context(program, context)
            except SoulcError:
                continue
            if still(candidate, prompt):
                program, changed = candidate, True
                break
    chunk = max(1, len(prompt) // 2)
    while chunk >= 1 and prompt:
        start, cut = 0, False
        while start < len(prompt):
            candidate = prompt[:start] + prompt[start + chunk:]
            if candidate != prompt and still(program, candidate):
                prompt, cut = candidate, True
            else:
                start += chunk
        if not cut:
            chunk //= 2
    return program, prompt


def write_reproducer(folder: str | Path, program: Program, prompt: str, details: dict) -> Path:
    """Writes model.soul, prompt.txt, details.json (both outputs) and README.txt into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.soul").write_text(print_program(program), encoding="utf-8")
    (folder / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
    (folder / "details.json").write_text(json.dumps(details, indent=2, default=str) + "\n", encoding="utf-8")
    readme = [
        "A difference between soulc's reference interpreter and the Z80 program on the emulated 48K.",
        "",
        "Reproduce:",
        "  soulc model.soul --target zx48 -o soul.tap",
        f"  soulc run soul.tap --prompt {shlex.quote(prompt)}",
        f"  printf '%s\\n' {shlex.quote(prompt)} | soulc chat model.soul",
        "",
    ]
    readme += [f"{key}: {value}" for key, value in details.items() if isinstance(value, str)]
    (folder / "README.txt").write_text("\n".join(readme) + "\n", encoding="utf-8")
    return folder
