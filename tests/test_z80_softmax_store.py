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

from test_z80_ops import A, B, C, D, key_layout, machine_with, scores_routines
from z80_harness import extremes

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


# ---- the key cache (op_storek) and plain stores (op_store) ----

KEY_CORNERS = (-32768, 32767, 0, -1, 1, -32767, 32766, 256, -256, 255, -255)


def key_rows(rng, rows, width):
    """Rows of keys: random with the int16 corners mixed in, and rows of only one corner."""
    keys = extremes(rng, rows * width).reshape(rows, width)
    for i, corner in enumerate(KEY_CORNERS[:rows]):
        if i % 2:
            keys[i] = corner
    keys[rows - 1, ::2] = -32768
    keys[rows - 1, 1::2] = 32767
    return keys


@pytest.mark.parametrize("heads,context", [(h, 20) for h in range(1, 9)] + [(4, 32), (2, 256), (8, 40)])
def test_storek_layout(heads, context):
    """Every row written at its position, as scores reads it; nothing else touched."""
    per_head, width = 8, heads * 8
    rows = context                      # the cache from C up (D and the rest are free here)
    m, symbols = machine_with(store.keys_call_asm(f"0x{C:04X}", f"0x{A:04X}", 2 * width, heads, per_head),
                              store.routine_asm() + store.keys_routine_asm())
    rng = np.random.default_rng(heads * 7 + context)
    keys = key_rows(rng, context, width)
    fill = bytes(rng.integers(0, 256, 2 * width * rows + 64, dtype=np.uint8))
    m.load(C, fill)
    m.load(A - 16, bytes(range(16)))
    written = sorted({0, 1, rows // 2, rows - 1})
    for pos in written:
        m.put_i16(A, keys[pos])
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        np.testing.assert_array_equal(m.i16(A, width), keys[pos], err_msg="x changed")
        assert m.read(A - 16, 16) == bytes(range(16))
    got = m.u8(C, 2 * width * rows + 64)
    want = np.frombuffer(fill, np.uint8).astype(np.int64).copy()
    for pos in written:
        want[pos * 2 * width:(pos + 1) * 2 * width] = key_layout(keys[pos:pos + 1], heads)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("heads,pos", [(4, 0), (4, 19), (1, 5), (8, 19), (3, 11)])
def test_storek_then_scores(heads, pos):
    """Keys stored by op_storek, then op_scores on the cache: the interpreter's scores."""
    per_head, context = 8, 20
    width = heads * per_head
    Q = D + 0x400
    m, symbols = machine_with(
        store.keys_call_asm(f"0x{B:04X}", f"0x{A:04X}", 2 * width, heads, per_head) + "        RET\nscore:\n"
        + scores.call_asm(f"0x{Q:04X}", f"0x{B:04X}", f"0x{D:04X}", heads, per_head, 2 * width, context, True),
        store.routine_asm() + store.keys_routine_asm() + scores_routines())
    rng = np.random.default_rng(heads * 31 + pos)
    keys = key_rows(rng, context, width)
    for row in range(pos + 1):
        m.put_i16(A, keys[row])
        m.memory[symbols["STEP_POS"]] = row
        m.call(symbols["driver"])
    for q in (extremes(rng, width), np.full(width, -32768), np.full(width, 32767), rng.integers(-300, 300, width)):
        m.put_i16(Q, q)
        m.call(symbols["score"])
        got = m.i32(D, heads * context).reshape(heads, context)[:, :pos + 1]
        np.testing.assert_array_equal(got, ref.scores(q, keys[:pos + 1], heads))


def test_store_plain_rows():
    width, rows = 40, 20
    m, symbols = machine_with(store.call_asm(f"0x{C:04X}", f"0x{A:04X}", 2 * width), store.routine_asm())
    rng = np.random.default_rng(9)
    state = rng.integers(-32768, 32768, (rows, width))
    m.put_i16(C, state)
    for pos in (0, rows - 1, 3):
        x = key_rows(rng, 1, width)[0]
        m.put_i16(A, x)
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        state[pos] = x
        np.testing.assert_array_equal(m.i16(C, rows * width).reshape(rows, width), state)


def test_storek_speed():
    """The seed's shape (4 heads of 8): well under the bit-by-bit loop's 13,700 T-states."""
    m, symbols = machine_with(store.keys_call_asm(f"0x{C:04X}", f"0x{A:04X}", 64, 4, 8),
                              store.routine_asm() + store.keys_routine_asm())
    m.memory[symbols["STEP_POS"]] = 0
    assert m.call(symbols["driver"]) < 9_600
