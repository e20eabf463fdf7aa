"""quantise: float constants -> the fixed-point numbers of the seed's NUMERICS.md.

A float frontend (ONNX) gives a program whose constants are f32. This pass gives each one
the form its use asks for; what a constant is follows from the ops that read it:
- weights of `matvec`, tables of `embed`, gains of `rmsnorm`: int8 with one power-of-two shift
  per tensor, the largest `s` with `max|w| * 2^s <= 127`, `q = round_half_even(w * 2^s)`;
- biases of `matvec`: int16 scaled to the accumulator, `clip(round_half_even(b * 2^(8 + s_w)))`;
- the f32[1] of a `softmax_lut` (the float softmax's scale `c` on q.k): a u8 table calibrated
  to that scale. Q8.8 q and k make `s = q.k * 2^16`, so the table index `(max - s) >> S` stands for
  a drop of `i * 2^S / 2^16` in q.k and its entry is `round(255 * exp(-c * i * 2^S / 2^16))`. S is
  the smallest shift whose 128 entries reach past where the weight rounds to 0 (the last entry
  is 0, as in the seed's table), which keeps the steps between entries as fine as they can be.
The seed's own table (`--numerics soulplayer`) is chosen by the frontend, which then gives the
program a u8 table: constants that are already integers are left as they are, so this pass is
a no-op on a quantised program.
"""
from __future__ import annotations

import math

import numpy as np

from soulc.errors import SoulcError
from soulc.ir.program import Const, Program, TensorType
from soulc.ir.verify import verify

MIN_SHIFT, MAX_SHIFT = -32, 40      # what the verifier accepts
TABLE_SIZE = 128


def weight_shift(data: np.ndarray) -> int:
    """The largest s with max|w| * 2^s <= 127, i.e. floor(log2(127 / max|w|)), computed exactly."""
    peak = float(np.abs(data.astype(np.float64)).max()) if data.size else 0.0
    if peak == 0.0:
        return 0
    s = math.floor(math.log2(127 / peak))
    while peak * 2.0**s > 127:          # log2 of a rounded quotient can be off by one at a boundary
        s -= 1
    while peak * 2.0 ** (s + 1) <= 127:
        s += 1
    return max(MIN_SHIFT, min(MAX_SHIFT, s))


def quantise_weight(data: np.ndarray) -> tuple[np.ndarray, int]:
    s = weight_shift(data)
    q = np.clip(np.round(data.astype(np.float64) * 2.0**s), -127, 127)     # np.round: half to even
    return q.astype(np.int8), s


def quantise_bias(data: np.ndarray, weight_shift_: int) -> tuple[np.ndarray, int]:
    s = weight_shift_ + 8
    q = np.clip(np.round(data.astype(np.float64) * 2.0**s), -32768, 32767)
    return q.astype(np.int16), s


def softmax_table(scale: float) -> tuple[np.ndarray, int]:
    """The u8 table and score shift for a float softmax of `scale * q.k` (see the module doc)."""
    if not (math.isfinite(scale) and scale > 0):
        raise SoulcError(f"the attention's softmax scale {scale} is not a positive number")
    cutoff = math.log(2 * 255)          # a weight below 0.5/255 rounds to 0
    shift = 0
    while shift < 31 and scale * (TABLE_SIZE - 1) * 2.0**shift / 2**16 <= cutoff:
        shift += 1
    step = scale * 2.0**shift / 2**16
    table = [round(255 * math.exp(-step * i)) for i in range(TABLE_SIZE - 1)] + [0]
    return np.array(table, dtype=np.uint8), shift


def _roles(program: Program) -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}

    def mark(arg, role):
        roles.setdefault(arg[1:], set()).add(role)

    for op in program.body:
        if op.opcode == "matvec":
            mark(op.args[0], "weight")
            if len(op.args) == 3:
                mark(op.args[2], "bias")
        elif op.opcode == "embed":
            mark(op.args[0], "weight")
            mark(op.args[1], "weight")
        elif op.opcode == "rmsnorm":
            mark(op.args[1], "weight")
        elif op.opcode == "softmax_lut":
            mark(op.args[1], "softmax")
    return roles


def quantise(program: Program) -> Program:
    floats = program.float_consts()
    if not floats:
        return program
    out = program.copy()
    roles = _roles(out)
    for name in floats:
        kinds = roles.get(name, set())
        if len(kinds) > 1:
            raise SoulcError(f"constant @{name} is used as {' and as '.join(sorted(kinds))}; "
                             "a constant has one fixed-point form")
    consts = out.consts

    def replace(name, data, shift):
        consts[name] = Const(name, TensorType(_dtype_name(data), tuple(data.shape)), data, shift)

    for name in floats:                           # weights first: biases take their shift
        if roles.get(name) in ({"weight"}, None):
            replace(name, *quantise_weight(consts[name].data))
    bias_shift: dict[str, int] = {}
    for op in out.body:
        if op.opcode == "matvec" and len(op.args) == 3:
            bias, weight = op.args[2][1:], consts[op.args[0][1:]]
            if bias_shift.setdefault(bias, weight.shift) != weight.shift:
                raise SoulcError(f"float bias @{bias} serves weights with different shifts")
    for name in floats:
        if roles.get(name) == {"bias"}:
            replace(name, *quantise_bias(consts[name].data, bias_shift[name]))
    tables = {}
    for name in floats:
        if roles.get(name) == {"softmax"}:
            tables[name] = softmax_table(float(consts[name].data[0]))
            replace(name, tables[name][0], None)
    for op in out.body:
        if op.opcode == "softmax_lut" and op.args[1][1:] in tables:
            op.attrs["shift"] = tables[op.args[1][1:]][1]
    for op in out.body:
        op.type = None
    return verify(out)


def _dtype_name(data: np.ndarray) -> str:
    return {np.int8: "i8", np.int16: "i16", np.uint8: "u8"}[data.dtype.type]
