"""op_scores (the subset-sum table path, heads of 8) against the interpreter's scores.

The key cache is in op_storek's layout (bit planes of k + 32768). Corners: q and k at the
int16 extremes, heads whose sum |q| passes 65535 (the split path: q's high bytes, then its
low bytes), heads at exactly 65535, 1..8 heads (four per table build, so 5..8 take two
batches), positions 0, 1 and context - 1, scores that wrap int32, keys whose top planes all
equal the sign plane (the collapsed entry at every level 15..8) or none, and nothing written
outside the positions 0..pos of each head's row.
"""
from __future__ import annotations

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import scores

from test_z80_ops import A, B, D, key_layout, machine_with, scores_routines
from z80_harness import extremes

CONTEXT = 20


def run_cases(heads, pos, cases, context=CONTEXT):
    width = heads * 8
    keys_at = B if context * 2 * width <= D - B else 0xC000
    m, symbols = machine_with(scores.call_asm(f"0x{A:04X}", f"0x{keys_at:04X}", f"0x{D:04X}", heads, 8, 2 * width,
                                              context, True), scores_routines())
    times = []
    for i, (q, keys) in enumerate(cases):
        m.put_i16(A, q)
        m.load(D, bytes([0xEE]) * (4 * heads * context + 4))
        m.load(keys_at, key_layout(keys, heads))
        m.memory[symbols["STEP_POS"]] = pos
        times.append(m.call(symbols["driver"]))
        got = m.i32(D, heads * context).reshape(heads, context)
        np.testing.assert_array_equal(got[:, :pos + 1], ref.scores(q, keys[:pos + 1], heads),
                                      err_msg=f"case {i}")
        raw = m.u8(D, 4 * heads * context + 4)
        rows = raw[:4 * heads * context].reshape(heads, 4 * context)
        assert (rows[:, 4 * (pos + 1):] == 0xEE).all(), "wrote past the positions"
        if keys_at == B:
            assert (raw[-4:] == 0xEE).all()
        np.testing.assert_array_equal(m.i16(A, width), q, err_msg="q changed")
    return times


def magnitude_keys(rng, context, width, bits):
    """Keys in -2^bits .. 2^bits - 1 (their planes 15..bits all equal k's sign)."""
    return rng.integers(-(1 << bits), 1 << bits, (context, width))


def standard_cases(rng, heads, context=CONTEXT):
    width = heads * 8
    cases = []
    cases.append((extremes(rng, width), extremes(rng, context * width).reshape(context, width)))
    cases.append((np.full(width, -32768), np.full((context, width), -32768)))        # wraps int32
    cases.append((np.full(width, 32767), np.full((context, width), -32768)))
    cases.append((np.full(width, -32768), np.full((context, width), 32767)))
    cases.append((np.full(width, 32767), np.full((context, width), 32767)))
    q = rng.integers(-2000, 2000, width)                                              # the seed's sizes
    for bits in range(0, 16):
        cases.append((q, magnitude_keys(rng, context, width, bits)))
    keys = magnitude_keys(rng, context, width, 10)
    keys[:, ::3] = rng.integers(-32768, 32768, keys[:, ::3].shape)                    # mixed in one head
    cases.append((q, keys))
    cases.append((np.zeros(width, np.int64), extremes(rng, context * width).reshape(context, width)))
    cases.append((rng.integers(-300, 300, width), np.zeros((context, width), np.int64)))
    cases.append((rng.integers(0, 2, width), np.full((context, width), -1)))
    q = np.zeros(width, np.int64)
    q[0::8] = [32767 if h % 2 else -32768 for h in range(heads)]                      # N = 32768, T[S] = 0
    cases.append((q, extremes(rng, context * width).reshape(context, width)))
    q = np.zeros(width, np.int64)                                                      # sum |q| = 65535 exactly
    q[0::8], q[1::8] = 32767, -32768
    cases.append((q, extremes(rng, context * width).reshape(context, width)))
    q = rng.integers(-2000, 2000, width)                                               # some heads split
    q[:8] = 16000
    if heads > 2:
        q[16:24] = extremes(rng, 8, -32768, -20000)
    cases.append((q, extremes(rng, context * width).reshape(context, width)))
    q = extremes(rng, width, -32768, -16000)                                           # every head split
    cases.append((q, magnitude_keys(rng, context, width, 11)))
    cases.append((q, np.full((context, width), -32768)))
    q = np.zeros(width, np.int64)                                                      # 65536: just split
    q[0::8], q[1::8], q[2::8] = 32767, -32768, 1
    cases.append((q, extremes(rng, context * width).reshape(context, width)))
    return cases


@pytest.mark.parametrize("heads", range(1, 9))
@pytest.mark.parametrize("pos", [0, 1, CONTEXT - 1])
def test_scores_heads_positions(heads, pos):
    rng = np.random.default_rng(heads * 100 + pos)
    run_cases(heads, pos, standard_cases(rng, heads))


def test_scores_long_context():
    """256 positions (the key count wraps the byte counter) and a row far from the first."""
    heads, context = 2, 256
    rng = np.random.default_rng(7)
    width = heads * 8
    cases = [(extremes(rng, width), extremes(rng, context * width).reshape(context, width)),
             (rng.integers(-2000, 2000, width), magnitude_keys(rng, context, width, 11))]
    run_cases(heads, context - 1, cases, context)
    run_cases(heads, 130, cases, context)


def test_scores_speed():
    """The seed's shape (4 heads, 20 positions, |k| < 2048, |q| < 2000): per key and head
    well under the old row code's 1,625 T-states."""
    heads = 4
    rng = np.random.default_rng(3)
    width = heads * 8
    case = [(rng.integers(-2000, 2000, width), magnitude_keys(rng, CONTEXT, width, 11))]
    t0 = run_cases(heads, 0, case)[0]
    t19 = run_cases(heads, CONTEXT - 1, case)[0]
    per_key_head = (t19 - t0) / (CONTEXT - 1) / heads
    assert per_key_head < 1_250, per_key_head
