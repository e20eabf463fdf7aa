"""The small Z80 op routines (add, relu, embed, argmax) against the reference interpreter.

Random and corner inputs: int16 extremes, sums that saturate either way and those that land
exactly on 32767 / -32768, in-place results, odd addresses, lengths 1 and odd, lengths that
need more than one pass of the 8-bit counter, argmax ties anywhere (all equal, at the range's
ends), and embed for every (token shift, position shift) the Z80 routine accepts (-8..24,
whatever the quantise pass gives is checked against that range by embed.routine_asm), with the
first and last token and position and rows of extremes that saturate both ways.
"""
from __future__ import annotations

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import add, argmax, embed, relu

from z80_harness import Machine

CELLS = "STEP_TOKEN: DEFB 0\nSTEP_POS: DEFB 0\n"
CODE = 0x7000
DATA = 0xC000           # data areas above the code


def build(drivers: dict[str, str], routines: str) -> tuple[Machine, dict[str, int]]:
    m = Machine()
    text = "".join(f"{name}:\n{body}        RET\n" for name, body in drivers.items())
    symbols = m.assemble_at(text + CELLS + routines, CODE)
    assert max(symbols.values()) < DATA, "test code overlaps the data areas"
    return m, symbols


def extremes(rng, n, lo=-32768, hi=32767):
    values = rng.integers(lo, hi + 1, n)
    corners = [lo, hi, 0, -1, 1, lo + 1, hi - 1, 255, 256, -256, -255]
    picks = rng.random(n) < 0.3
    values[picks] = rng.choice(corners, picks.sum())
    return values


# pairs whose sums saturate, or land exactly on the ends, or carry between the bytes
ADD_CORNERS = [(32767, 0), (32767, 1), (1, 32767), (-32768, 0), (-32768, -1), (-1, -32768),
               (16384, 16383), (16384, 16384), (-16384, -16384), (-16384, -16385), (32767, 32767),
               (-32768, -32768), (32767, -32768), (-32768, 32767), (-1, -1), (255, 1), (-256, 255),
               (-32767, -1), (-32767, -2), (32766, 1), (32766, 2), (128, 127), (-129, 1), (0, 0),
               (30000, 2767), (30000, 2768), (-30000, -2768), (-30000, -2769), (20000, -30000)]

LENGTHS = [1, 2, 3, 7, 32, 33, 255, 256, 257, 300, 513]


# ---- add ----

@pytest.mark.parametrize("n", LENGTHS)
def test_add(n):
    rng = np.random.default_rng(n)
    a, b = extremes(rng, n), extremes(rng, n)
    k = min(n, len(ADD_CORNERS))
    a[:k], b[:k] = zip(*ADD_CORNERS[:k])
    pa, pb, py = DATA + 1, DATA + 0x1001, DATA + 0x2003           # odd addresses, too
    m, s = build({"drv": add.call_asm(f"0x{pa:04X}", f"0x{pb:04X}", f"0x{py:04X}", n)}, add.routine_asm())
    m.put_i16(pa, a)
    m.put_i16(pb, b)
    m.memory[py - 1] = m.memory[py + 2 * n] = 0x5A
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(py, n), ref.sat16(a + b))
    np.testing.assert_array_equal(m.i16(pa, n), a)                 # the operands are left alone
    np.testing.assert_array_equal(m.i16(pb, n), b)
    assert m.memory[py - 1] == m.memory[py + 2 * n] == 0x5A       # nothing written outside y


def test_add_all_corner_pairs():
    pairs = [(x, y) for x in (-32768, -32767, -16384, -257, -256, -129, -128, -1, 0, 1, 127, 128, 255, 256,
                              16383, 16384, 32766, 32767)
             for y in (-32768, -32767, -16385, -16384, -256, -1, 0, 1, 255, 16383, 16384, 32767)]
    a, b = np.array(pairs).T
    n = len(a)
    m, s = build({"drv": add.call_asm(f"0x{DATA:04X}", f"0x{DATA + 0x1000:04X}", f"0x{DATA + 0x2000:04X}", n)},
                 add.routine_asm())
    m.put_i16(DATA, a)
    m.put_i16(DATA + 0x1000, b)
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(DATA + 0x2000, n), ref.sat16(a + b))


@pytest.mark.parametrize("into", ["a", "b"])
@pytest.mark.parametrize("n", [1, 5, 32, 260])
def test_add_in_place(into, n):
    """The arena may give a result the address of an operand that dies with the op."""
    rng = np.random.default_rng(n + len(into))
    a, b = extremes(rng, n), extremes(rng, n)
    k = min(n, len(ADD_CORNERS))
    a[:k], b[:k] = zip(*ADD_CORNERS[:k])
    pa, pb = DATA + 3, DATA + 0x1000
    py = pa if into == "a" else pb
    m, s = build({"drv": add.call_asm(f"0x{pa:04X}", f"0x{pb:04X}", f"0x{py:04X}", n)}, add.routine_asm())
    m.put_i16(pa, a)
    m.put_i16(pb, b)
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(py, n), ref.sat16(a + b))


def test_add_rejects_bad_lengths():
    for n in (0, 65536):
        with pytest.raises(ValueError):
            add.call_asm("a", "b", "y", n)


# ---- relu ----

@pytest.mark.parametrize("n", LENGTHS)
def test_relu(n):
    rng = np.random.default_rng(100 + n)
    x = extremes(rng, n)
    px, py = DATA + 1, DATA + 0x2000
    m, s = build({"drv": relu.call_asm(f"0x{px:04X}", f"0x{py:04X}", n)}, relu.routine_asm())
    m.put_i16(px, x)
    m.memory[py - 1] = m.memory[py + 2 * n] = 0x5A
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(py, n), np.maximum(x, 0))
    np.testing.assert_array_equal(m.i16(px, n), x)
    assert m.memory[py - 1] == m.memory[py + 2 * n] == 0x5A


@pytest.mark.parametrize("n", [1, 64, 257])
def test_relu_in_place(n):
    rng = np.random.default_rng(200 + n)
    x = extremes(rng, n)
    m, s = build({"drv": relu.call_asm(f"0x{DATA + 5:04X}", f"0x{DATA + 5:04X}", n)}, relu.routine_asm())
    m.put_i16(DATA + 5, x)
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(DATA + 5, n), np.maximum(x, 0))


def test_relu_all_high_bytes():
    """Every high byte with low bytes 0, 1, 0x80 and 0xFF: the sign is bit 7 of the high byte."""
    x = np.array([(h << 8 | low) - (65536 if h >= 128 else 0) for h in range(256) for low in (0, 1, 0x80, 0xFF)])
    m, s = build({"drv": relu.call_asm(f"0x{DATA:04X}", f"0x{DATA + 0x1000:04X}", len(x))}, relu.routine_asm())
    m.put_i16(DATA, x)
    m.call(s["drv"])
    np.testing.assert_array_equal(m.i16(DATA + 0x1000, len(x)), np.maximum(x, 0))


# ---- argmax ----

def _argmax_cases(rng, lo, hi):
    n = hi - lo
    cases = [extremes(rng, hi), np.full(hi, -32768), np.full(hi, 32767), np.full(hi, 5), np.full(hi, -1),
             rng.integers(-3, 3, hi), rng.integers(-300, 300, hi)]
    top = np.zeros(hi, np.int64)
    top[lo:] = 32767
    cases.append(top)
    for where in {lo, hi - 1, lo + n // 2}:               # one maximum, at the ends and inside
        c = rng.integers(-32768, 32000, hi)
        c[where] = 32100
        cases.append(c)
    ends = rng.integers(-32768, 100, hi)                   # a tie at both ends
    ends[lo] = ends[hi - 1] = 200
    cases.append(ends)
    last2 = rng.integers(-32768, 100, hi)                  # a tie of the last two
    last2[hi - 2 if n > 1 else lo:] = 101
    cases.append(last2)
    # equal high bytes, the low byte decides (and its compare is unsigned)
    same_hi = (rng.integers(-128, 128, hi) * 256) | rng.integers(0, 256, hi)
    same_hi[lo:] = 0x1200 | rng.integers(0, 256, n)
    cases.append(same_hi)
    same_neg = np.full(hi, -256) + rng.integers(0, 256, hi)          # high byte FF
    cases.append(same_neg)
    cases.append(np.where(rng.random(hi) < 0.5, -1, 1))               # signed, not unsigned
    cases.append(np.where(rng.random(hi) < 0.5, -32768, 32767))
    cases.append(np.arange(hi) % 7 - 3)
    cases.append(-np.arange(hi))                                      # decreasing: the first wins
    cases.append(np.arange(hi) - 32768)                               # increasing: the last wins
    return cases


@pytest.mark.parametrize("lo,hi", [(4, 128), (0, 7), (3, 4), (0, 256), (0, 1), (255, 256), (1, 256), (4, 6),
                                   (0, 255), (10, 11)])
def test_argmax(lo, hi):
    rng = np.random.default_rng(lo * 1000 + hi)
    base = DATA + 1
    m, s = build({"drv": argmax.call_asm(f"0x{base:04X}", lo, hi)}, argmax.routine_asm())
    for logits in _argmax_cases(rng, lo, hi):
        logits = np.asarray(logits, np.int64)
        m.put_i16(base, logits)
        m.call(s["drv"])
        assert m.sim.registers[0] == ref.argmax(logits, lo, hi) % 256, (lo, hi, logits[lo:hi])


def test_argmax_rejects_bad_ranges():
    for lo, hi in [(0, 0), (5, 5), (0, 257), (256, 257), (7, 3)]:
        with pytest.raises(ValueError):
            argmax.call_asm("l", lo, hi)


# ---- embed ----

SHIFTS = list(range(embed.MIN_SHIFT, embed.MAX_SHIFT + 1))


def _tables(rng, vocab, positions, width):
    te = rng.integers(-128, 128, (vocab, width))
    pe = rng.integers(-128, 128, (positions, width))
    # first and last rows of extremes: every sign pairing of 127 / -128 / -127 / -1 / 0 / 1
    ends = np.array([127, -128, 127, -128, -127, -1, 0, 1, 127, -128, 64, -65])
    reps = -(-width // len(ends))
    te[0] = np.tile(ends, reps)[:width]
    pe[0] = np.tile(ends[[0, 0, 1, 1, 4, 5, 6, 7, 1, 0, 64 % 12, 3]], reps)[:width]
    te[-1] = -te[0] - (te[0] == 127)          # -128 where te[0] is 127
    pe[-1] = pe[0][::-1] if width > 1 else pe[0]
    te[1], pe[1] = 127, 127
    te[2], pe[2] = -128, -128
    return te.astype(np.int8), pe.astype(np.int8)


def _check_embeds(width, combos, vocab=256, positions=32, pairs=None, seed=0):
    """Builds one machine with a routine per (tok_shift, pos_shift) and checks each."""
    rng = np.random.default_rng(seed)
    te, pe = _tables(rng, vocab, positions, width)
    pt, pp = DATA + 1, DATA + 1 + vocab * width                  # odd addresses
    py = pp + positions * width + 2                                # odd, after the tables
    assert py + 2 * width < 0x10000
    drivers = {f"drv{i}": embed.call_asm(i, f"0x{pt:04X}", f"0x{pp:04X}", f"0x{py:04X}")
               for i in range(len(combos))}
    routines = "".join(embed.routine_asm(i, width, ts, ps) for i, (ts, ps) in enumerate(combos))
    m, s = build(drivers, routines)
    m.load(pt, te.tobytes())
    m.load(pp, pe.tobytes())
    last_tok, last_pos = vocab - 1, positions - 1
    pairs = pairs or [(0, 0), (0, last_pos), (last_tok, 0), (last_tok, last_pos), (1, 1), (2, 2), (1, 2),
                      (2, 1), (0, 1), (last_tok, 2), (int(rng.integers(vocab)), int(rng.integers(positions)))]
    for i, (ts, ps) in enumerate(combos):
        for tok, pos in pairs:
            m.memory[s["STEP_TOKEN"]] = tok
            m.memory[s["STEP_POS"]] = pos
            m.memory[py - 1] = m.memory[py + 2 * width] = 0x5A
            m.call(s[f"drv{i}"])
            want = ref.embed(te[tok].astype(np.int64), ts, pe[pos].astype(np.int64), ps)
            np.testing.assert_array_equal(m.i16(py, width), want, err_msg=f"shifts {ts},{ps} tok {tok} pos {pos}")
            assert m.memory[py - 1] == m.memory[py + 2 * width] == 0x5A


@pytest.mark.parametrize("tok_shift", SHIFTS)
def test_embed_every_shift_pair(tok_shift):
    _check_embeds(7, [(tok_shift, ps) for ps in SHIFTS], seed=tok_shift + 50)


@pytest.mark.parametrize("width,shifts", [(32, (5, 5)), (28, (3, 4)), (1, (8, 8)), (1, (-8, -8)), (256, (5, 5)),
                                          (256, (-3, 9)), (255, (2, 7)), (3, (0, 0)), (24, (12, -3))])
def test_embed_widths(width, shifts):
    _check_embeds(width, [shifts], vocab=128 if width < 200 else 40, positions=20, seed=width)


def test_embed_rejects_bad_shapes():
    for args in [(7, -9, 5), (7, 5, 25), (257, 5, 5), (0, 5, 5)]:
        with pytest.raises(ValueError):
            embed.routine_asm(0, *args)
