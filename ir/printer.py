"""Prints a Program in its textual form: settings, tokenizer, declarations, body, then data.

The layout is canonical: parsing a printed program and printing it again gives the same text.
"""
from __future__ import annotations

import json

import numpy as np

from .program import Op, Program

SETTING_NAMES = ("context", "argmax", "stop", "prompt_prefix", "prompt_suffix", "max_reply")
VERSION = 1


def _ints(values) -> str:
    return " ".join(str(int(v)) for v in values)


def _numbers(values) -> str:
    """Integers as integers; f32 values in the shortest form that reads back to the same float."""
    if np.asarray(values).dtype.kind == "f":
        return " ".join(str(np.float32(v)) for v in values)
    return _ints(values)


def print_op(op: Op) -> str:
    text = " ".join([op.opcode] + ([", ".join(op.args)] if op.args else []))
    text += "".join(f" {name} {value}" for name, value in op.attrs.items())
    if op.result is not None:
        return f"%{op.result} = {text} : {op.type}"
    return text


def print_data(data: np.ndarray) -> str:
    if data.ndim > 1:
        rows = data.reshape(data.shape[0], -1)
    else:
        rows = [data[i:i + 16] for i in range(0, data.size, 16)]
    return "{\n" + "".join(f"  {_numbers(row)}\n" for row in rows) + "}"


def print_program(program: Program, with_data: bool = True) -> str:
    s, tok = program.settings, program.tokenizer
    out = [f"soul {VERSION}", "", "settings {"]
    for name in SETTING_NAMES:
        value = getattr(s, name)
        out.append(f"  {name} {_ints(value) if isinstance(value, tuple) else value}".rstrip())
    out += ["}", "", "tokenizer {"]
    if tok.lowercase:
        out.append("  lowercase")
    for i, text in enumerate(tok.tokens):
        out.append(f"  {'special' if i in tok.special else 'token'} {i} {json.dumps(text)}")
    for left, right, merged in tok.merges:
        out.append(f"  merge {left} {right} -> {merged}    # {json.dumps(tok.tokens[merged])}")
    out += ["}", ""]
    for c in program.consts.values():
        shift = f" shift {c.shift}" if c.shift is not None else ""
        out.append(f"const @{c.name} : {c.type}{shift}")
    for st in program.states.values():
        out.append(f"state @{st.name} : {st.type}")
    if program.memory:
        out += ["", "memory {"]
        out += [f"  {name} 0x{address:04X}" + (f" bank {program.banks[name]}" if name in program.banks else "")
                for name, address in program.memory.items()]
        out.append("}")
    out += ["", f"{program.form} {{"]
    out += [f"  {print_op(op)}" for op in program.body]
    out.append("}")
    if with_data:
        for c in program.consts.values():
            out += ["", f"data @{c.name} {print_data(c.data)}"]
    return "\n".join(out) + "\n"
