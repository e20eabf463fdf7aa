"""The Z80 matvec (subset-sum tables over bit planes of the weights) against the interpreter.

Random and corner inputs: saturation and flooring in the finisher, negative and left
shifts, biases at the int16 ends, rows of every plane count (6, 7, 8) and offset, chunks of
one to four groups, several chunks, the exact fallback for large x (sum |x| > 65535: x split
into bytes) with and without batching of the parked rows, and consecutive matvecs on one x.
"""
from __future__ import annotations

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import matvec, subsets

from z80_harness import Machine, extremes

W, X, Y = 0xC000, 0xB000, 0xB800       # stream, x (what lies before it is read as nothing), y
CODE = 0x8000


def matvec_routines(shifts, shapes, prune_shifts=()) -> str:
    variants = {g for _, cols in shapes for g in matvec.chunk_groups(cols)}
    return (subsets.tables_asm() + matvec.ktab_asm()
            + matvec.kernel_asm(shifts, variants, matvec.park_rows(shapes), prune_shifts)
            + "".join(subsets.planes_asm(g, matvec.row_label(g)) for g in sorted(variants))
            + subsets.build_asm())


def machine_with(driver: str, routines: str) -> tuple[Machine, dict[str, int]]:
    m = Machine(stack_top=0x7F00)
    symbols = m.assemble_at("driver:\n" + driver + "        RET\n" + routines, CODE)
    assert max(v for k, v in symbols.items() if k not in ("W", "X", "Y")) < X - 8, "test code overlaps the data"
    return m, symbols


def want(weight, x, bias, shift):
    return ref.matvec(weight.astype(np.int64), np.asarray(x, np.int64),
                      None if bias is None else bias.astype(np.int64), shift)


def run_matvec(weight, x, bias, shift):
    """(got, want, T-states) for one op_matvec call."""
    rows, cols = weight.shape
    driver = (f"W EQU 0x{W:04X}\nX EQU 0x{X:04X}\nY EQU 0x{Y:04X}\n"
              + matvec.call_asm("W", "X", "Y", rows, cols, shift, bias is not None,
                                wide=not matvec.fits_24_bits(weight, bias)))
    m, symbols = machine_with(driver, matvec_routines([shift], [(rows, cols)]))
    stream = matvec.encode_weights(weight, bias)
    assert W + len(stream) <= 0x10000
    m.load(W, stream)
    m.load(X - 8, bytes(range(200, 208)))              # nothing before x may be read as x
    m.put_i16(X, x)
    t = m.call(symbols["driver"])
    return m.i16(Y, rows), want(weight, x, bias, shift), t


def test_subset_tables():
    m, symbols = machine_with("        LD A,4\n        CALL st_build\n", subsets.tables_asm() + subsets.build_asm())
    rng = np.random.default_rng(1)
    for x in [rng.integers(-1000, 1000, 32), np.array([-2048] * 16 + [2047] * 16), np.zeros(32, np.int64),
              np.array([8191, -8192] * 16)]:
        m.put_i16(symbols["st_x"], x)
        m.load(symbols["st_src"], symbols["st_x"].to_bytes(2, "little"))
        m.call(symbols["driver"])
        for g in range(4):
            page = symbols[subsets.TABLES] + 512 * g
            got = m.u8(page, 256) + 256 * m.u8(page + 256, 256)
            table, n = subsets.table_values(x[8 * g:8 * g + 8])
            np.testing.assert_array_equal(got, table)
            record = symbols["st_n"] + subsets.ST_RECORD * g
            assert int.from_bytes(m.read(record, 2), "little") == n


@pytest.mark.parametrize("rows,cols,shift,with_bias", [
    (32, 32, 7, True), (32, 32, 8, False), (8, 64, 8, True), (5, 7, 3, True), (16, 32, -2, False),
    (3, 13, 12, True), (7, 20, 0, False), (4, 36, 17, True), (2, 255, 9, True), (6, 4, 31, False),
    (3, 8, -9, True), (1, 1, 5, True), (9, 40, 6, True), (4, 24, 4, False), (33, 16, 5, True),
    (40, 96, 7, False),
])
def test_matvec_random(rows, cols, shift, with_bias):
    rng = np.random.default_rng(rows * 1000 + cols * 10 + shift)
    weight = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    bias = extremes(rng, rows).astype(np.int16) if with_bias else None
    for x in (rng.integers(-700, 700, cols), extremes(rng, cols)):     # fast path, then mostly split
        got, expected, _ = run_matvec(weight, x, bias, shift)
        np.testing.assert_array_equal(got, expected)


def test_matvec_saturates_and_floors():
    cols = 64
    weight = np.array([[127] * cols, [-128] * cols, [1] + [0] * (cols - 1), [-1] + [0] * (cols - 1),
                       [127, -127] * (cols // 2), [0] * cols], dtype=np.int8)
    for x, bias in [([32767] * cols, None), ([-32768] * cols, None), ([-3] + [5] * (cols - 1), [0, 0, -1, 0, 7, -32768]),
                    ([-32768, 32767] * (cols // 2), [32767, -32768, 32767, -32768, 0, 32767])]:
        for shift in (0, 1, 7, 8, 15, -1, -3):
            b = None if bias is None else np.array(bias, np.int16)
            got, expected, _ = run_matvec(weight, np.array(x), b, shift)
            np.testing.assert_array_equal(got, expected, err_msg=f"x={x[:2]} shift={shift}")


def test_matvec_row_forms():
    """Rows of 6, 7 and 8 planes with offsets below, around and above zero; all-zero rows."""
    rng = np.random.default_rng(21)
    rows = []
    for lo, hi in [(-128, 127), (-64, 63), (0, 127), (-50, 13), (40, 103), (-128, -65), (64, 127),
                   (0, 0), (-1, -1), (-128, -128), (127, 127), (-9, 54), (-100, 27), (-16, 47)]:
        row = rng.integers(lo, hi + 1, 32)
        row[0], row[1] = lo, hi
        rows.append(row)
    weight = np.array(rows, dtype=np.int8)
    forms = {matvec.row_form(r.astype(np.int64), 4)[0] for r in weight}
    assert forms == {6, 7, 8}
    for x in (rng.integers(-2000, 2000, 32), extremes(rng, 32), np.full(32, 2047)):
        got, expected, _ = run_matvec(weight, x, None, 7)
        np.testing.assert_array_equal(got, expected)


def test_matvec_stream_is_no_longer_than_the_weights():
    rng = np.random.default_rng(3)
    small = rng.integers(-30, 31, (16, 32)).astype(np.int8)
    assert len(matvec.encode_weights(small, None)) == 16 * (1 + 6 * 4)
    full = rng.integers(-128, 128, (16, 24)).astype(np.int8)                 # three groups: 8 planes
    assert len(matvec.encode_weights(full, np.zeros(16, np.int16))) == 16 * (1 + 8 * 3 + 2)


@pytest.mark.parametrize("total", [65535, 65536])
def test_matvec_fast_path_edge(total):
    """sum |x| over a chunk at 65535 takes the tables as they are; one more splits x."""
    x = np.zeros(32, np.int64)
    x[:2] = [32767, -32768]
    x[2] = (total - 65535) * (1 if total > 65535 else 0)
    assert np.abs(x).sum() == total
    rng = np.random.default_rng(total)
    weight = rng.integers(-128, 128, (5, 32)).astype(np.int8)
    weight[0] = 127
    weight[1] = -128
    got, expected, _ = run_matvec(weight, x, None, 0)
    np.testing.assert_array_equal(got, expected)


def test_matvec_fallback_batches_the_rows():
    """A split x on a matrix of more rows than the park area holds goes a batch at a time."""
    rng = np.random.default_rng(8)
    weight = rng.integers(-128, 128, (70, 16)).astype(np.int8)
    x = np.full(16, -20000)
    assert matvec.park_rows([(70, 16)]) < 70
    got, expected, _ = run_matvec(weight, x, rng.integers(-30000, 30000, 70).astype(np.int16), 12)
    np.testing.assert_array_equal(got, expected)


def test_matvec_mixed_chunks():
    """Several chunks, one split and one not, one of odd groups."""
    rng = np.random.default_rng(9)
    weight = rng.integers(-128, 128, (11, 56)).astype(np.int8)
    x = np.concatenate([extremes(rng, 32), rng.integers(-50, 50, 24)])
    x[:4] = 32767
    got, expected, _ = run_matvec(weight, x, rng.integers(-300, 300, 11).astype(np.int16), 9)
    np.testing.assert_array_equal(got, expected)


def test_matvec_same_x_reuses_the_tables():
    rng = np.random.default_rng(13)
    w1 = rng.integers(-128, 128, (6, 32)).astype(np.int8)
    w2 = rng.integers(-9, 9, (9, 32)).astype(np.int8)
    w3 = rng.integers(-128, 128, (4, 32)).astype(np.int8)
    b3 = rng.integers(-900, 900, 4).astype(np.int16)
    s1, s2 = len(matvec.encode_weights(w1, None)), len(matvec.encode_weights(w2, None))
    for x in (rng.integers(-500, 500, 32), extremes(rng, 32)):
        driver = (f"X EQU 0x{X:04X}\n"
                  + matvec.call_asm(f"0x{W:04X}", "X", f"0x{Y:04X}", 6, 32, 7, False)
                  + matvec.call_asm(f"0x{W + s1:04X}", "X", f"0x{Y + 64:04X}", 9, 32, 3, False, same_x=True)
                  + matvec.call_asm(f"0x{W + s1 + s2:04X}", "X", f"0x{Y + 128:04X}", 4, 32, 5, True, same_x=True))
        m, symbols = machine_with(driver, matvec_routines([7, 3, 5], [(6, 32), (9, 32), (4, 32)]))
        m.load(W, matvec.encode_weights(w1, None) + matvec.encode_weights(w2, None) + matvec.encode_weights(w3, b3))
        m.put_i16(X, x)
        m.call(symbols["driver"])
        np.testing.assert_array_equal(m.i16(Y, 6), want(w1, x, None, 7))
        np.testing.assert_array_equal(m.i16(Y + 64, 9), want(w2, x, None, 3))
        np.testing.assert_array_equal(m.i16(Y + 128, 4), want(w3, x, b3, 5))


def test_matvec_speed_seed_shape():
    """T-states per multiply-accumulate for a 32x32 matrix, one call, everything included."""
    rng = np.random.default_rng(5)
    weight = rng.integers(-60, 61, (32, 32)).astype(np.int8)
    got, expected, t = run_matvec(weight, rng.integers(-2000, 2000, 32), None, 7)
    np.testing.assert_array_equal(got, expected)
    assert t / (32 * 32) < 150
