"""op_softmax_lut and op_storek / op_store against the reference interpreter, on corner inputs.

softmax: every shift the quantiser can give (0..31, passes/quantise.py and the verifier's
range), scores at the int32 extremes, all equal, differences of exactly last and last + 1 after
the shift, negative scores flooring, positions 0 and context - 1, 1 to 8 heads, tables of other
lengths than 128. store: keys at the int16 extremes, the cache layout scores reads.
"""
from __future__ import annotations

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.ir.tables import seed_softmax_table
from soulc.targets.z80.ops import scores, softmax_lut, store

from test_z80_ops import A, B, C, D, extremes, key_layout, machine_with, scores_routines

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def softmax_cases(rng, heads, context, shift, last):
    """Score arrays [heads, context] that probe the routine's corners for this shift."""
    step = 1 << shift
    cases = [
        rng.integers(INT32_MIN, INT32_MAX + 1, (heads, context), dtype=np.int64),
        rng.integers(-2**20, 2**20, (heads, context)) * rng.integers(1, 64, (heads, 1)),
        np.full((heads, context), INT32_MIN), np.full((heads, context), INT32_MAX),
        np.full((heads, context), rng.integers(INT32_MIN, INT32_MAX + 1)),
        np.array([[INT32_MAX, INT32_MIN] * context] * heads)[:, :context],
        np.array([[INT32_MIN, INT32_MAX] * context] * heads)[:, :context],
        np.where(rng.random((heads, context)) < 0.5, INT32_MIN, INT32_MAX),
    ]
    # differences of last - 1, last, last + 1, last + 2 after the shift, around a random top,
    # the scores anywhere inside their step (the shift floors them)
    top = int(rng.integers(-2**31 // step, (2**31 - 1) // step + 1))
    for base in (top, -2**31 // step, (2**31 - 1) // step, 0, -1):
        sf = base - rng.choice([0, 1, last - 1, last, last + 1, last + 2, 2 * last + 3], (heads, context))
        sf[:, 0] = base
        s = sf * step + rng.integers(0, step, sf.shape)
        cases.append(np.clip(s, INT32_MIN, INT32_MAX))
    s = -rng.integers(0, 3 * step + 2, (heads, context))          # negative scores floor
    cases.append(s)
    cases.append(s - 2**31 + 3 * step + 2)
    return [np.clip(np.asarray(c, dtype=np.int64), INT32_MIN, INT32_MAX) for c in cases]


def run_softmax(shift, heads, context, positions, table, seed=0):
    rng = np.random.default_rng(seed)
    m, symbols = machine_with(softmax_lut.call_asm(0, f"0x{A:04X}", f"0x{B:04X}", f"0x{C:04X}", heads,
                                                   len(table)),
                              softmax_lut.routine_asm(0, shift, context))
    m.load(B, bytes(table.astype(np.uint8)))
    last = len(table) - 1
    times = []
    for s in softmax_cases(rng, heads, context, shift, last):
        for pos in positions:
            m.load(A, s.astype("<i4").tobytes())
            m.load(C, bytes([0xEE]) * (heads * context + 1))
            m.memory[symbols["STEP_POS"]] = pos
            times.append(m.call(symbols["driver"]))
            got = m.u8(C, heads * context).reshape(heads, context)
            want = ref.softmax_lut(s[:, :pos + 1], table.astype(np.int64), shift)
            np.testing.assert_array_equal(got[:, :pos + 1], want, err_msg=f"shift {shift} pos {pos}")
            assert (got[:, pos + 1:] == 0xEE).all(), "wrote past the positions"
            assert m.memory[C + heads * context] == 0xEE
            np.testing.assert_array_equal(m.i32(A, heads * context).reshape(heads, context), s,
                                          err_msg="the scores changed")
    return times


@pytest.mark.parametrize("shift", range(32))
def test_softmax_every_shift(shift):
    run_softmax(shift, 4, 20, (0, 1, 19), seed_softmax_table(), seed=shift)


@pytest.mark.parametrize("heads", range(1, 9))
def test_softmax_heads(heads):
    run_softmax(14, heads, 20, (0, 7, 19), seed_softmax_table(), seed=100 + heads)


@pytest.mark.parametrize("length,shift", [(1, 14), (2, 3), (100, 9), (256, 14), (257, 20), (300, 5),
                                          (1000, 0), (2048, 31), (2048, 12)])
def test_softmax_table_lengths(length, shift):
    rng = np.random.default_rng(length)
    table = rng.integers(0, 256, length)
    run_softmax(shift, 3, 20, (0, 19), table, seed=length + shift)


def test_softmax_long_context():
    run_softmax(14, 8, 32, (0, 31), seed_softmax_table(), seed=5)


def test_softmax_speed():
    """The seed's shape: 4 heads, shift 14, 20 positions; per position both passes."""
    rng = np.random.default_rng(1)
    heads, context, pos = 4, 20, 19
    table = seed_softmax_table()
    m, symbols = machine_with(softmax_lut.call_asm(0, f"0x{A:04X}", f"0x{B:04X}", f"0x{C:04X}", heads, 128),
                              softmax_lut.routine_asm(0, 14, context))
    m.load(B, bytes(table))
    s = rng.integers(-2**21, 2**21, (heads, context))       # most positions inside the table
    m.load(A, s.astype("<i4").tobytes())
    m.memory[symbols["STEP_POS"]] = pos
    t = m.call(symbols["driver"])
    assert t < 320 * heads * (pos + 1), t
