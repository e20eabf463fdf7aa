"""The verifier: checks a Program is well formed and fills in each op's type.

It reports the first problem it finds, with the line and column of the op when the
program came from text.
"""
from __future__ import annotations

import numpy as np

from soulc.errors import SoulcError

from .ops import BANK_WINDOW, HISTORY_OPS, OPS, OPTIONAL, OpError
from .program import DTYPES, Op, Program


class VerifyError(SoulcError):
    pass


def _where(op: Op, index: int) -> str:
    if op.where:
        return f"line {op.where[0]}, column {op.where[1]}"
    return f"op {index} ({op.result or op.opcode})"


def verify(program: Program) -> Program:
    _verify_settings(program)
    _verify_tokenizer(program)
    for const in program.consts.values():
        _verify_const(const)
    if program.form not in ("seq", "step"):
        raise VerifyError(f"unknown body form {program.form!r}: use seq or step")
    types = {}
    for index, op in enumerate(program.body):
        try:
            inferred = _infer(program, op, types)
        except OpError as e:
            raise VerifyError(f"{_where(op, index)}: {op.opcode}: {e}") from None
        if op.type is not None and op.type != inferred:
            raise VerifyError(f"{_where(op, index)}: {op.opcode} yields {inferred}, the text says {op.type}")
        op.type = inferred
        if op.result is not None:
            if inferred is None:
                raise VerifyError(f"{_where(op, index)}: {op.opcode} yields no value to name")
            if op.result in types:
                raise VerifyError(f"{_where(op, index)}: %{op.result} is defined twice")
            types[op.result] = inferred
        elif inferred is not None:
            raise VerifyError(f"{_where(op, index)}: the result of {op.opcode} needs a name")
    if not program.body or program.body[-1].opcode != "argmax":
        raise VerifyError("the body must end with argmax, which yields the next token")
    if sum(op.opcode == "argmax" for op in program.body) != 1:
        raise VerifyError("the body must hold exactly one argmax")
    _verify_memory(program)
    _verify_banks(program)
    return program


def _infer(program: Program, op: Op, types):
    spec = OPS.get(op.opcode)
    if spec is None:
        raise OpError(f"unknown opcode; known: {', '.join(OPS)}")
    required = [k for k in spec.operands if not k.endswith("?")]
    if not len(required) <= len(op.args) <= len(spec.operands):
        raise OpError(f"takes {len(required)} to {len(spec.operands)} operands, got {len(op.args)}")
    for name in op.attrs:
        if name not in spec.attrs:
            raise OpError(f"unknown attribute {name!r}")
    for name, default in spec.attrs.items():
        if default is None and name not in op.attrs:
            raise OpError(f"needs attribute {name!r}")
    attrs = {**{k: None if v is OPTIONAL else v for k, v in spec.attrs.items()}, **op.attrs}
    operand_types = [_operand_type(program, kind.rstrip("?"), arg, types)
                     for kind, arg in zip(spec.operands, op.args)]
    if op.opcode == "store" and program.form != "step":
        raise OpError("store belongs to the step form")
    if op.opcode == "matvec":
        _check_matvec(program, op)
    return spec.infer(program, attrs, *operand_types)


def _operand_type(program: Program, kind: str, arg: str, types):
    if kind == "history":
        kind = "value" if program.form == "seq" else "state"
    if kind == "value":
        if not arg.startswith("%"):
            raise OpError(f"operand {arg} must be a value (%name)")
        if arg[1:] not in types:
            raise OpError(f"{arg} is used before it is defined")
        return types[arg[1:]]
    if not arg.startswith("@"):
        raise OpError(f"operand {arg} must be a {kind} (@name)")
    table = program.consts if kind == "const" else program.states
    if arg[1:] not in table:
        raise OpError(f"{arg} is not a declared {kind}")
    return table[arg[1:]].type


def _check_matvec(program: Program, op: Op) -> None:
    weight = program.consts[op.args[0][1:]]
    if weight.type.dtype == "f32":
        return              # shifts and the accumulator bound are the quantise pass's to establish
    if weight.shift is None:
        raise OpError(f"weight {op.args[0]} needs a shift")
    # The accumulator is int32 on every target: prove no sum can overflow it.
    worst = int(np.abs(weight.data.astype(np.int64)).sum(axis=1).max()) * 32768
    if len(op.args) == 3:
        bias = program.consts[op.args[2][1:]]
        if bias.shift != weight.shift + 8:
            raise OpError(f"bias {op.args[2]} has shift {bias.shift}; a bias is scaled like the "
                          f"accumulator, weight shift + 8 = {weight.shift + 8}")
        worst += int(np.abs(bias.data.astype(np.int64)).max())
    if worst >= 2**31:
        raise OpError(f"the int32 accumulator could overflow (worst case {worst})")


def _verify_const(const) -> None:
    want = np.dtype(DTYPES[const.type.dtype]) if const.type.dtype in DTYPES else None
    if want is None or const.data.dtype != want or tuple(const.data.shape) != const.type.shape:
        raise VerifyError(f"constant @{const.name}: data {const.data.dtype}{list(const.data.shape)} "
                          f"does not match its type {const.type}")
    if const.shift is not None and not -32 <= const.shift <= 40:
        raise VerifyError(f"constant @{const.name}: shift {const.shift} is out of range")
    if const.type.dtype == "f32":
        if const.shift is not None:
            raise VerifyError(f"constant @{const.name}: a float constant has no shift")
        if not np.isfinite(const.data).all():
            raise VerifyError(f"constant @{const.name}: holds NaN or infinite values")


def _verify_settings(program: Program) -> None:
    s, vocab = program.settings, len(program.tokenizer.tokens)
    for name in ("stop", "prompt_prefix", "prompt_suffix"):
        for token in getattr(s, name):
            if not 0 <= token < vocab:
                raise VerifyError(f"settings: {name} token {token} is not in the vocabulary of {vocab}")
    framing = len(s.prompt_prefix) + len(s.prompt_suffix)
    if s.context < framing + 2:
        raise VerifyError(f"settings: context {s.context} leaves no room for a prompt and a reply")
    if s.max_reply < 0:
        raise VerifyError("settings: max_reply must be 0 (no limit) or more")


def _verify_tokenizer(program: Program) -> None:
    tok = program.tokenizer
    n = len(tok.tokens)
    if not 1 <= n <= 256:
        raise VerifyError(f"tokenizer: {n} tokens; soulc handles 1 to 256")
    for a, b, merged in tok.merges:
        if not all(0 <= t < n for t in (a, b, merged)):
            raise VerifyError(f"tokenizer: merge {a} {b} -> {merged} names a token outside 0..{n - 1}")
        if tok.tokens[a] + tok.tokens[b] != tok.tokens[merged]:
            raise VerifyError(f"tokenizer: merge {a} {b} -> {merged}: {tok.tokens[a]!r} + {tok.tokens[b]!r} "
                              f"is not {tok.tokens[merged]!r}")



def _verify_memory(program: Program) -> None:
    """Every placed name is declared and lies inside the 64K address space.

    Values may share addresses (the allocator reuses a buffer once its value is dead),
    so overlaps are the allocator's to prove, not the verifier's. A constant is held in the
    target's own encoding, which may be shorter than the tensor (or longer): only its start
    is checked here.
    """
    sizes = {f"@{c.name}": 1 for c in program.consts.values()}
    sizes.update({f"@{s.name}": s.type.nbytes for s in program.states.values()})
    sizes.update({f"%{op.result}": op.type.nbytes for op in program.body if op.result})
    for name, address in program.memory.items():
        if name not in sizes:
            raise VerifyError(f"memory: {name} is placed but not declared")
        if not (0 <= address and address + sizes[name] <= 0x10000):
            raise VerifyError(f"memory: {name} at 0x{address:04X} runs past 0xFFFF")


def _verify_banks(program: Program) -> None:
    """Banked names lie in the bank window, and every op that reads or writes one runs while
    its bank is paged in: a `bank` op before it, none for another bank in between. The bank
    paged in when a step begins is unknown (the last one of the step before, or whatever the
    chat loop left), so each step must page its first bank itself."""
    lo, hi = BANK_WINDOW
    sizes = {f"@{c.name}": 1 for c in program.consts.values()}        # see _verify_memory
    sizes.update({f"@{s.name}": s.type.nbytes for s in program.states.values()})
    for name, bank in program.banks.items():
        if name not in sizes:
            raise VerifyError(f"banks: {name} is given a bank but is not a declared constant or state")
        if not 0 <= bank <= 7:
            raise VerifyError(f"banks: {name} is in bank {bank}, outside 0..7")
        address = program.memory.get(name)
        if address is not None and not (lo <= address and address + sizes[name] <= hi):
            raise VerifyError(f"memory: {name} is in bank {bank} but not inside the bank window "
                              f"0x{lo:04X}-0x{hi - 1:04X}")
    paged = None
    for index, op in enumerate(program.body):
        if op.opcode == "bank":
            paged = op.attrs["n"]
            continue
        for arg in op.args:
            bank = program.banks.get(arg)
            if bank is not None and bank != paged:
                now = "no bank is paged in yet" if paged is None else f"bank {paged} is paged in"
                raise VerifyError(f"{_where(op, index)}: {op.opcode} uses {arg}, which lies in bank {bank}, "
                                  f"but {now}")
