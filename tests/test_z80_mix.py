"""The Z80 mix routine (targets/z80/ops/mix.py) against the interpreter's mix: random and corner
inputs, the head shapes the codegen gives (per_head = width // heads, chunks of 8 dims and
the remainders), every weight 0..255 (its NAF digits, levels without digits), the accumulators'
wraps, the divide's ranges (the 8-step one for -256 * wsum <= sum < 256 * wsum, the 16-step one,
m_div16q past wsum 32767) at their ends, contexts 1 and 256, and the weights left as they were;
mv_valid cleared and nothing written outside the scratch (mv_tab), the output and the routine's
own patched immediates."""
from __future__ import annotations

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import mix, subsets
from soulc.targets.z80.runtime_math import math_asm

from z80_harness import Machine

CELLS = "STEP_TOKEN: DEFB 0\nSTEP_POS: DEFB 0\nmv_valid: DEFB 0\n" + subsets.tables_asm()
W, V, OUT = 0xA000, 0xA800, 0xF000
CODE = 0x8000


def build(heads, per_head, context):
    width = heads * per_head
    m = Machine()
    driver = mix.call_asm(f"0x{W:04X}", f"0x{V:04X}", f"0x{OUT:04X}", heads, per_head, 2 * width, context)
    symbols = m.assemble_at("driver:\n" + driver + "        RET\n" + CELLS + mix.routine_asm(True) + math_asm(), CODE)
    assert max(symbols.values()) < W
    assert V + 2 * width * context <= OUT
    return m, symbols


def run(m, symbols, w, v, pos):
    heads, context = w.shape
    m.load(W, w.astype(np.uint8).tobytes())
    m.put_i16(V, v.reshape(-1))
    m.memory[symbols["STEP_POS"]] = pos
    m.memory[symbols["mv_valid"]] = 1
    width = v.shape[1]
    before = np.frombuffer(bytes(m.memory), np.uint8)
    t = m.call(symbols["driver"])
    assert m.memory[symbols["mv_valid"]] == 0                      # the next matvec rebuilds its tables
    changed = before != np.frombuffer(bytes(m.memory), np.uint8)
    changed[:0x6000] = False                                       # the stack
    tab = symbols["mv_tab"]
    for lo, hi in ((tab, tab + subsets.TABLE_BYTES), (OUT, OUT + 2 * width), (symbols["mv_valid"], symbols["mv_valid"] + 1),
                   (symbols["op_mix"], symbols["mx_end"])):    # the scratch, the output, the flag, the code's immediates
        changed[lo:hi] = False
    assert not changed.any(), [hex(a) for a in np.flatnonzero(changed)[:8]]
    got = m.i16(OUT, width)
    np.testing.assert_array_equal(got, ref.mix(w[:, :pos + 1], v[:pos + 1], heads))
    np.testing.assert_array_equal(m.u8(W, heads * context).reshape(heads, context), w)   # weights restored
    return t


def corner_values(rng, context, width):
    values = rng.integers(-32768, 32768, (context, width))
    picks = rng.random((context, width)) < 0.3
    values[picks] = rng.choice([-32768, 32767, 0, -1, 1, -32767, 32766], picks.sum())
    return values


def weight_cases(rng, heads, context):
    every = np.arange(256)
    cases = [rng.integers(0, 256, (heads, context)),
             np.zeros((heads, context), np.int64),                 # wsum 0 -> 1
             np.full((heads, context), 255),
             np.full((heads, context), 128),
             np.full((heads, context), 129),
             rng.choice([0, 1, 127, 128, 129, 254, 255], (heads, context)),
             np.resize(every, (heads, context)),
             np.resize(every[::-1], (heads, context))]
    single = np.zeros((heads, context), np.int64)
    single[:, 0] = rng.integers(1, 256, heads)
    single[-1, -1] = 77
    cases.append(single)
    return cases


@pytest.mark.parametrize("heads,per_head", [(4, 8), (2, 16), (2, 5), (1, 1), (3, 12), (1, 24), (8, 2)])
def test_mix_random_and_corners(heads, per_head):
    context = 20
    width = heads * per_head
    m, symbols = build(heads, per_head, context)
    rng = np.random.default_rng(heads * 100 + per_head)
    value_sets = [corner_values(rng, context, width), np.full((context, width), -32768),
                  np.full((context, width), 32767), np.zeros((context, width), np.int64),
                  np.full((context, width), -1),
                  rng.integers(-1300, 1300, (context, width))]
    alternating = np.full((context, width), 32767)
    alternating[1::2] = -32768
    value_sets.append(alternating)
    for w in weight_cases(rng, heads, context):
        for v in value_sets:
            for pos in (0, 1, 7, context - 1):
                run(m, symbols, w, v, pos)


def exact_values(w, targets):
    """Values (positions x dims) with sum_j w[j] * v[j, d] = targets[d] (w's last weight 1)."""
    assert w[-1] == 1
    wsum = int(w.sum())
    v = np.zeros((len(w), len(targets)), np.int64)
    for d, t in enumerate(targets):
        v[:, d] = t // wsum
        rest = t - (t // wsum) * wsum
        for j in range(len(w)):
            if w[j]:
                step = min(rest // int(w[j]), 32767 - int(v[j, d]))
                v[j, d] += step
                rest -= step * int(w[j])
        assert rest == 0 and v.min() >= -32768 and v.max() <= 32767
    return v


@pytest.mark.parametrize("wsum", [1, 2, 3, 255, 256, 257, 1000, 5101, 32767, 32768, 32769, 65026])
def test_mix_divide_boundaries(wsum):
    """out = floor(sum / wsum) where the 8-step divide's ranges end (-256 * wsum <= sum < 256 * wsum,
    and out's high byte 1 or -2 next to it) and the 16-step one's (-32768 and 32767), remainders
    0 and wsum - 1, wsum up to 65026 (255 positions of 255 and a 1): wsum <= 32767 takes the
    short divides, above m_div16q."""
    context, per_head = 256, 8
    m, symbols = build(1, per_head, context)
    rng = np.random.default_rng(wsum)
    n = 1 - (-(wsum - 1) // 255)                   # positions: weights up to 255, the last one 1
    w = np.zeros(n, np.int64)
    w[-1] = 1
    left = wsum - 1
    for j in range(n - 1):
        w[j] = min(255, left - (n - 2 - j))
        left -= w[j]
    w[: n - 1] = rng.permutation(w[: n - 1])
    assert w.sum() == wsum and w.max() <= 255 and (w[:-1] > 0).all()
    qs = [0, -1, 1, 255, 256, 257, -255, -256, -257, -258, 511, 512, -511, -512, -513, 32767, -32768, 4000, -4000]
    targets = [q * wsum + r for q in qs for r in (0, wsum - 1)]
    targets = [t for t in targets if -32768 * wsum <= t <= 32767 * wsum]
    weights = np.zeros((1, context), np.int64)
    weights[0, :n] = w
    for i in range(0, len(targets), per_head):
        chunk = (targets[i:i + per_head] + [0] * per_head)[:per_head]
        v = np.zeros((context, per_head), np.int64)
        v[:n] = exact_values(w, chunk)
        run(m, symbols, weights, v, n - 1)


def test_mix_every_weight_and_context_ends():
    """Each weight 0..255 alone in a head (its NAF digits: levels with no digit skip their scan),
    pairs around the level-8 and level-7 codes, and the contexts 1 and 256 (pos 0 and 255)."""
    heads, per_head, context = 8, 3, 256
    m, symbols = build(heads, per_head, context)
    rng = np.random.default_rng(4)
    width = heads * per_head
    v = corner_values(rng, context, width)
    for start in range(0, 256, heads):
        w = np.zeros((heads, context), np.int64)
        w[:, 0] = np.arange(start, start + heads)
        run(m, symbols, w, v, 0)
        w[:, 1] = rng.choice([85, 86, 127, 128, 129, 170, 171, 172, 191, 192, 255], heads)
        run(m, symbols, w, v, 1)
    for w in (rng.integers(0, 256, (heads, context)), np.full((heads, context), 171),
              np.full((heads, context), 170), rng.choice([0, 1, 2, 4, 8], (heads, context))):
        run(m, symbols, w, v, context - 1)


def test_mix_calls_of_two_shapes():
    """Two mix ops of different shapes share the routine, whose chunk entries are patched: a call
    finds the entries of the other shape, and the scratch (the matvec's tables) may hold anything,
    also the n of its first chunk."""
    m = Machine()
    shapes = [(2, 5), (4, 8)]                      # (heads, per_head), width 10 and 32
    context = 20
    drivers = "".join(f"d{i}:\n" + mix.call_asm(f"0x{W:04X}", f"0x{V:04X}", f"0x{OUT + 0x100 * i:04X}", heads, per_head,
                                                 2 * heads * per_head, context) + "        RET\n"
                      for i, (heads, per_head) in enumerate(shapes))
    symbols = m.assemble_at(drivers + CELLS + mix.routine_asm(True) + math_asm(), CODE)
    rng = np.random.default_rng(12)
    for pos in (0, 6, context - 1):
        for i in (0, 1, 0, 1):
            heads, per_head = shapes[i]
            width = heads * per_head
            w = rng.integers(0, 256, (heads, context))
            v = corner_values(rng, context, width)
            m.load(W, w.astype(np.uint8).tobytes())
            m.put_i16(V, v.reshape(-1))
            m.memory[symbols["STEP_POS"]] = pos
            m.memory[symbols["mx_n"]] = min(8, per_head)              # as if this shape had set the entries
            m.call(symbols[f"d{i}"])
            np.testing.assert_array_equal(m.i16(OUT + 0x100 * i, width), ref.mix(w[:, :pos + 1], v[:pos + 1], heads))


def test_mix_floors_negative_sums():
    heads, per_head, context = 1, 8, 20
    m, symbols = build(heads, per_head, context)
    w = np.zeros((1, context), np.int64)
    w[0, :3] = [3, 5, 1]
    v = np.zeros((context, per_head), np.int64)
    v[:3] = [[-1] * 8, [-2] * 8, [-7] * 8]
    v[:3, 1] = [1, -1, 0]
    run(m, symbols, w, v, 2)


def test_mix_long_context_and_big_sums():
    """wsum above 32767 (the 17-bit remainder case of the divide) and many accumulator wraps."""
    heads, per_head, context = 2, 8, 200
    m, symbols = build(heads, per_head, context)
    rng = np.random.default_rng(9)
    width = heads * per_head
    for w in (np.full((heads, context), 255), rng.integers(0, 256, (heads, context)),
              np.full((heads, context), 129)):
        for v in (np.full((context, width), 32767), np.full((context, width), -32768),
                  corner_values(rng, context, width)):
            for pos in (0, 150, context - 1):
                run(m, symbols, w, v, pos)


def test_mix_speed_seed_shape():
    """The seed's shape (4 heads of 8, 20 positions) on softmax-like weights: T-states per
    multiply-accumulate, all in (divides included; the old shift-and-add routine took about 800)."""
    heads, per_head, context = 4, 8, 20
    m, symbols = build(heads, per_head, context)
    rng = np.random.default_rng(5)
    table = np.array([255, 240, 225, 211, 199, 187, 175, 165, 155, 145, 136, 128, 120, 113, 106, 100, 94,
                      88, 83, 78, 73, 69, 64, 61, 57, 53, 50, 47, 44, 42, 39, 37, 35, 32, 30, 29, 27, 25,
                      24, 22, 21, 20, 18, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 9, 9, 8, 8, 7, 7, 6, 6,
                      6, 5, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2] + [1] * 45 + [0])
    w = table[np.minimum(len(table) - 1, rng.integers(0, 100, (heads, context)))]
    w[:, 3] = 255
    v = rng.integers(-1300, 1300, (context, heads * per_head))
    t = run(m, symbols, w, v, context - 1)
    per_mac = t / (heads * per_head * context)
    assert per_mac < 330, per_mac                                  # 317 (380 before the 8-step divides and NAF digits)


def test_mix_divide_edges():
    """mx_d8 twice (the fast divide, wsum <= 32767) against floor division: divisor 1 and the
    largest, quotients 0 and 65535, remainders 0 and divisor - 1; m_div16q beyond."""
    m = Machine()
    driver = """div:
        LD A,D
        CALL mx_d8
        CPL
        LD (quot+1),A
        LD A,E
        CALL mx_d8
        CPL
        LD E,A
        LD A,(quot+1)
        LD D,A
        RET
quot:   DEFW 0
"""
    symbols = m.assemble_at(driver + CELLS + mix.routine_asm() + math_asm(), CODE)
    rng = np.random.default_rng(3)
    divisors = [1, 2, 3, 255, 256, 257, 5100, 16383, 16384, 32766, 32767, 32768]
    divisors += list(rng.integers(1, 32769, 20))
    for b in divisors:
        b = int(b)
        for q in (0, 1, 2, 32767, 32768, 65534, 65535, int(rng.integers(0, 65536))):
            for r in (0, 1, b - 1, b // 2, int(rng.integers(0, b))):
                r = min(r, b - 1)
                n = q * b + r
                t = m.call(symbols["div"], {5: n & 0xFF, 4: (n >> 8) & 0xFF, 7: (n >> 16) & 0xFF,
                                            6: (n >> 24) & 0xFF, 3: b & 0xFF, 2: b >> 8})
                regs = m.sim.registers
                assert (regs[4] << 8 | regs[5]) == q, (n, b)
                assert (regs[6] << 8 | regs[7]) == r, (n, b)
