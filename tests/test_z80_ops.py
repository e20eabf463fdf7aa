"""Each Z80 op routine against the reference interpreter's function, on random and corner inputs.

A routine is assembled with a small driver (CALL + parameter block + RET) and run in
skoolkit's C simulator; inputs are poked into memory, outputs read back and compared.
"""
from __future__ import annotations

from math import isqrt

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.ir.tables import seed_softmax_table
from soulc.targets.z80.ops import add, argmax, embed, matvec, mix, relu, rmsnorm, scores, softmax_lut, store, subsets
from soulc.targets.z80.runtime_math import math_asm, sqtable_asm, sqtable_values

from z80_harness import Machine, extremes

CELLS = "STEP_TOKEN: DEFB 0\nSTEP_POS: DEFB 0\n"
A, B, C, D = 0xA000, 0xA800, 0xB000, 0xB800      # data areas used by the tests
CODE = 0x8000


def machine_with(driver: str, routines: str) -> tuple[Machine, dict[str, int]]:
    m = Machine()
    symbols = m.assemble_at("driver:\n" + driver + "        RET\n" + CELLS + routines + math_asm()
                            + sqtable_asm(), CODE)
    assert symbols["soul_sqtab"] + 512 <= A, "test code overlaps the data areas"
    return m, symbols


def i16(values):
    return np.asarray(values, dtype=np.int64)


def test_squares_table():
    m, symbols = machine_with("", "")
    page = symbols["soul_sqtab"]
    assert page % 256 == 0
    got = m.u8(page, 256) + 256 * m.u8(page + 256, 256)
    np.testing.assert_array_equal(got, np.arange(256) ** 2)
    assert sqtable_values()[255] == 65025


# ---- elementwise ----

def test_relu_and_add():
    rng = np.random.default_rng(2)
    n = 70
    a, b = extremes(rng, n), extremes(rng, n)
    driver = (relu.call_asm(f"0x{A:04X}", f"0x{C:04X}", n)
              + add.call_asm(f"0x{A:04X}", f"0x{B:04X}", f"0x{D:04X}", n))
    m, symbols = machine_with(driver, relu.routine_asm() + add.routine_asm())
    m.put_i16(A, a)
    m.put_i16(B, b)
    m.call(symbols["driver"])
    np.testing.assert_array_equal(m.i16(C, n), np.maximum(a, 0))
    np.testing.assert_array_equal(m.i16(D, n), ref.sat16(a + b))


def test_add_in_place():
    """The arena may give a result the address of an operand that dies with the op."""
    rng = np.random.default_rng(3)
    a, b = extremes(rng, 16), extremes(rng, 16)
    m, symbols = machine_with(add.call_asm(f"0x{A:04X}", f"0x{B:04X}", f"0x{A:04X}", 16), add.routine_asm())
    m.put_i16(A, a)
    m.put_i16(B, b)
    m.call(symbols["driver"])
    np.testing.assert_array_equal(m.i16(A, 16), ref.sat16(a + b))


def test_store_rows():
    width, rows = 12, 20
    m, symbols = machine_with(store.call_asm(f"0x{C:04X}", f"0x{A:04X}", 2 * width), store.routine_asm())
    state = np.zeros((rows, width), np.int64)
    rng = np.random.default_rng(4)
    for pos in (0, 1, 7, rows - 1):
        x = extremes(rng, width)
        m.put_i16(A, x)
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        state[pos] = x
        np.testing.assert_array_equal(m.i16(C, rows * width).reshape(rows, width), state)


@pytest.mark.parametrize("lo,hi", [(4, 128), (0, 7), (3, 4), (0, 256)])
def test_argmax_ties_lowest(lo, hi):
    rng = np.random.default_rng(lo + hi)
    m, symbols = machine_with(argmax.call_asm(f"0x{A:04X}", lo, hi), argmax.routine_asm())
    cases = [extremes(rng, hi), np.full(hi, -32768), np.full(hi, 5), rng.integers(-3, 3, hi)]
    top = np.zeros(hi, np.int64)
    top[lo:] = 32767
    cases.append(top)
    for logits in cases:
        m.put_i16(A, logits)
        m.call(symbols["driver"])
        assert m.sim.registers[0] == ref.argmax(logits, lo, hi) % 256


# ---- embed, rmsnorm ----

@pytest.mark.parametrize("tok_shift,pos_shift", [(5, 5), (8, 0), (12, -3), (9, 8), (0, 20)])
def test_embed(tok_shift, pos_shift):
    vocab, positions, width = 40, 20, 24
    rng = np.random.default_rng(tok_shift * 31 + pos_shift)
    te = rng.integers(-128, 128, (vocab, width)).astype(np.int8)
    pe = rng.integers(-128, 128, (positions, width)).astype(np.int8)
    te[3] = 127
    pe[2] = 127
    te[4] = -128
    pe[5] = -128
    m, symbols = machine_with(embed.call_asm(0, f"0x{A:04X}", f"0x{B:04X}", f"0x{C:04X}"),
                              embed.routine_asm(0, width, tok_shift, pos_shift))
    m.load(A, te.tobytes())
    m.load(B, pe.tobytes())
    for tok, pos in [(0, 0), (3, 2), (4, 5), (3, 5), (39, 19), (17, 11)]:
        m.memory[symbols["STEP_TOKEN"]] = tok
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        want = ref.embed(te[tok].astype(np.int64), tok_shift, pe[pos].astype(np.int64), pos_shift)
        np.testing.assert_array_equal(m.i16(C, width), want)


@pytest.mark.parametrize("n,gain_shift", [(32, 6), (32, 5), (7, 0), (64, 3), (5, -2), (16, 12)])
def test_rmsnorm(n, gain_shift):
    rng = np.random.default_rng(n * 7 + gain_shift)
    m, symbols = machine_with(rmsnorm.call_asm(f"0x{A:04X}", f"0x{B:04X}", f"0x{C:04X}", n, gain_shift),
                              rmsnorm.routine_asm() + rmsnorm.finishers_asm([gain_shift]))
    gain = rng.integers(-128, 128, n).astype(np.int8)
    gain[0], gain[-1] = 127, -128
    m.load(B, gain.tobytes())
    cases = [extremes(rng, n), rng.integers(-300, 300, n), np.zeros(n, np.int64), np.full(n, -32768),
             np.full(n, 32767), rng.integers(-15, 16, n), np.array([20] + [0] * (n - 1))]
    for x in cases:
        m.put_i16(A, x)
        m.call(symbols["driver"])
        np.testing.assert_array_equal(m.i16(C, n), ref.rmsnorm(i16(x), gain.astype(np.int64), gain_shift))


def test_isqrt_and_divide():
    driver = ("        LD HL,(0xA000)\n        LD DE,(0xA002)\n        CALL m_isqrt\n        LD (0xA004),HL\n"
              "        LD HL,(0xA000)\n        LD DE,(0xA002)\n        LD BC,(0xA006)\n        CALL m_div32\n"
              "        LD (0xA008),HL\n        LD (0xA00A),DE\n        LD (0xA00C),BC\n")
    m, symbols = machine_with(driver, "")
    rng = np.random.default_rng(9)
    values = [0, 1, 2, 3, 4, 15, 16, 17, 2**22, 2**30 - 1, 65535, 65536] + list(rng.integers(0, 2**30, 40))
    for n in values:
        d = int(rng.integers(1, 65536))
        m.load(0xA000, int(n).to_bytes(4, "little") + bytes(2) + d.to_bytes(2, "little"))
        m.call(symbols["driver"])
        got = [int(v) for v in np.frombuffer(m.read(0xA004, 10), "<u2")]
        n = int(n)
        assert got[0] == isqrt(n)
        assert got[2] + 65536 * got[3] == n // d and got[4] == n % d


# ---- attention ----

def attention_case(rng, heads, per_head, context, pos):
    width = heads * per_head
    q = extremes(rng, width)
    keys = extremes(rng, context * width).reshape(context, width)
    return q, keys


def key_layout(keys, heads):
    """The key cache as op_storek writes it: per row, per head, the bit planes of the keys in
    offset form (k + 32768), planes 15..8 then 7..0, bit d of a plane byte from value d."""
    u = (keys.astype(np.int64) + 32768).reshape(len(keys), heads, -1)
    planes = np.arange(15, -1, -1)
    bits = (u[:, :, None, :] >> planes[None, None, :, None]) & 1
    return (bits << np.arange(u.shape[2])).sum(axis=3).astype(np.uint8).reshape(-1)


def scores_routines() -> str:
    return (subsets.tables_asm() + matvec.ktab_asm() + matvec.kernel_asm([], {1}, 1)
            + subsets.planes_asm(1, matvec.row_label(1)) + subsets.build_asm() + scores.routine_asm())


@pytest.mark.parametrize("heads,per_head,pos,fast", [
    (4, 8, 0, True), (4, 8, 19, True), (2, 8, 5, True), (1, 8, 9, True), (6, 8, 7, True),
    (4, 8, 19, False), (2, 3, 5, False), (1, 16, 9, False)])
def test_scores(heads, per_head, pos, fast):
    context = 20
    width = heads * per_head
    rng = np.random.default_rng(heads * 100 + pos)
    q, keys = attention_case(rng, heads, per_head, context, pos)
    routine = scores_routines() if fast else scores.fallback_routine_asm()
    m, symbols = machine_with(scores.call_asm(f"0x{A:04X}", f"0x{B:04X}", f"0x{D:04X}", heads, per_head,
                                              2 * width, context, fast), routine)
    for case in range(6):
        if case == 1:
            q[:], keys[:] = -32768, -32768
        if case == 2:
            q[:], keys[:] = 32767, -32768
        if case == 3:
            q[:] = rng.integers(-300, 300, width)
            keys[:] = rng.integers(-300, 300, keys.shape)
        if case == 4:                   # some heads small (one table), some past 65535 (split)
            q[:] = rng.integers(-2000, 2000, width)
            q[:per_head] = 16000
            keys[:] = extremes(rng, keys.size).reshape(keys.shape)
        if case == 5:                   # sum |q| at 65535 in a head
            q[:] = 0
            q[:2] = [32767, -32768]
        m.put_i16(A, q)
        m.load(B, key_layout(keys, heads) if fast else keys.astype("<i2").tobytes())
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        got = m.i32(D, heads * context).reshape(heads, context)[:, :pos + 1]
        np.testing.assert_array_equal(got, ref.scores(q, keys[:pos + 1], heads), err_msg=f"case {case}")


@pytest.mark.parametrize("heads", [1, 4, 6])
def test_store_keys_layout(heads):
    per_head, rows = 8, 20
    width = heads * per_head
    m, symbols = machine_with(store.keys_call_asm(f"0x{C:04X}", f"0x{A:04X}", 2 * width, heads, per_head),
                              store.routine_asm() + store.keys_routine_asm())
    rng = np.random.default_rng(8)
    keys = np.zeros((rows, width), np.int64)
    for pos in (0, 5, rows - 1):
        keys[pos] = extremes(rng, width)
        m.put_i16(A, keys[pos])
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
    written = [0, 5, rows - 1]
    got = m.u8(C, rows * 2 * width).reshape(rows, -1)[written]
    np.testing.assert_array_equal(got, key_layout(keys, heads).reshape(rows, -1)[written])


@pytest.mark.parametrize("shift,pos", [(14, 19), (14, 0), (0, 7), (31, 3), (9, 12), (3, 19)])
def test_softmax_lut(shift, pos):
    heads, context = 4, 20
    table = seed_softmax_table().astype(np.int64)
    rng = np.random.default_rng(shift * 50 + pos)
    m, symbols = machine_with(softmax_lut.call_asm(0, f"0x{A:04X}", f"0x{B:04X}", f"0x{C:04X}", heads, 128),
                              softmax_lut.routine_asm(0, shift, context))
    m.load(B, bytes(table.astype(np.uint8)))
    for s in [rng.integers(-2**31, 2**31, (heads, context)), rng.integers(-2**20, 2**20, (heads, context)),
              np.full((heads, context), -2**31), np.array([[2**31 - 1, -2**31] * 10] * heads)]:
        m.load(A, s.astype("<i4").tobytes())
        m.memory[symbols["STEP_POS"]] = pos
        m.call(symbols["driver"])
        got = m.u8(C, heads * context).reshape(heads, context)[:, :pos + 1]
        np.testing.assert_array_equal(got, ref.softmax_lut(s[:, :pos + 1], table, shift))


@pytest.mark.parametrize("heads,per_head,pos", [(4, 8, 19), (4, 8, 0), (2, 5, 6), (1, 16, 11)])
def test_mix(heads, per_head, pos):
    context = 20
    width = heads * per_head
    rng = np.random.default_rng(heads * 10 + pos)
    m, symbols = machine_with(mix.call_asm(f"0x{A:04X}", f"0x{B:04X}", f"0x{D:04X}", heads, per_head,
                                           2 * width, context), mix.routine_asm())
    values = extremes(rng, context * width).reshape(context, width)
    cases = [rng.integers(0, 256, (heads, context)), np.zeros((heads, context), np.int64),
             np.full((heads, context), 255), rng.integers(0, 2, (heads, context))]
    for w in cases:
        for v in (values, np.full((context, width), -32768), np.full((context, width), 32767)):
            m.load(A, w.astype(np.uint8).tobytes())
            m.put_i16(B, v.reshape(-1))
            m.memory[symbols["STEP_POS"]] = pos
            m.call(symbols["driver"])
            np.testing.assert_array_equal(m.i16(D, width), ref.mix(w[:, :pos + 1], v[:pos + 1], heads))
