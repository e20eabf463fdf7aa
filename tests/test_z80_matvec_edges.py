"""matvec rows at the edges of the subset-sum kernel: a row's weight span at the limits of
6, 7 and 8 bit planes (with its offset, a multiple of 16), and sum |x| at the 16-bit limit
of the tables' entries, where the exact fallback takes over."""
import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import matvec

from test_z80_matvec import run_matvec


@pytest.mark.parametrize("lo,span", [(0, 63), (0, 64), (-16, 63), (-15, 63), (-1, 127), (0, 127),
                                     (-1, 128), (-128, 255), (112, 15)])
def test_rows_at_the_plane_limits(lo, span):
    row = np.arange(32) % (span + 1) + lo
    row[0], row[1] = lo, lo + span
    weight = np.array([row, row[::-1], [lo] * 32], dtype=np.int8)
    planes, m = matvec.row_form(weight[0].astype(np.int64), 4)
    assert m % 16 == 0 and m <= lo and lo + span - m < 1 << planes
    rng = np.random.default_rng(span)
    for x in (rng.integers(-2047, 2048, 32), np.full(32, 2047), np.full(32, -2048)):
        got, want, _ = run_matvec(weight, x, None, 6)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("extra", [-1, 0, 1, 2])
def test_sum_of_x_at_the_table_limit(extra):
    x = np.array([2047] * 31 + [65535 - 31 * 2047 + extra])
    weight = np.full((2, 32), 127, dtype=np.int8)
    weight[1] = -128
    got, want, _ = run_matvec(weight, x, None, 3)
    np.testing.assert_array_equal(got, want)


def run_finisher24(shift, values, biases=None):
    """y from the one-pass row finisher (matvec.finisher24_asm) for 24-bit sums in A:D:E, the
    bias (if any) read from the stream with POP as the row's would be; y is stored through
    D'E' inline (the last row: B' = 1) or by mv_store (saturated)."""
    from test_z80_matvec import machine_with
    entry = f"mv_f24{'b' if biases is not None else ''}_{shift}"
    driver = (f"        LD (save_sp),SP\n        LD SP,bias\n        EXX\n        LD DE,result\n        LD B,1\n"
              f"        EXX\n        LD A,(value+2)\n        LD DE,(value)\n        JP {entry}\n"
              "mv_store:\n        LD (result),DE\nmv_round:\nmv_rowstart:\n        LD SP,(save_sp)\n")
    data = "save_sp: DEFW 0\nvalue: DEFS 3\nbias: DEFW 0\nresult: DEFW 0\nmv_tab EQU 0x9000\n"
    m, symbols = machine_with(driver, matvec.finisher24_asm(shift) + data)
    out = []
    for i, v in enumerate(values):
        m.load(symbols["value"], int(v).to_bytes(3, "little", signed=True))
        if biases is not None:
            m.load(symbols["bias"], int(biases[i]).to_bytes(2, "little", signed=True))
        m.load(symbols["result"], bytes([i & 255, 0xA5]))     # a stale y would show
        m.call(symbols["driver"])
        out.append(int.from_bytes(m.read(symbols["result"], 2), "little", signed=True))
    return np.array(out)


@pytest.mark.parametrize("shift", list(matvec.FAST_SHIFTS))
def test_one_pass_finisher_every_shift(shift):
    """sat16(v >> shift) for 24-bit v: both ends, around the saturation bounds, random."""
    rng = np.random.default_rng(shift)
    edges = [-(1 << 23), (1 << 23) - 1, 0, -1, 1]
    for bound in (32767 << shift, -32768 << shift, (32768 << shift) - 1, (-32769 << shift) + 1):
        edges += [bound + d for d in range(-2, 3)]
    values = np.array([v for v in edges if -(1 << 23) <= v < 1 << 23] + list(rng.integers(-(1 << 23), 1 << 23, 40)))
    want = np.clip(values >> shift, -32768, 32767)
    np.testing.assert_array_equal(run_finisher24(shift, values), want)
    biases = np.clip(rng.integers(-40000, 40000, len(values)), -32768, 32767)
    values = np.clip(values, -(1 << 23) + 32768, (1 << 23) - 32769)      # w.x + b within 24 bits
    want = np.clip((values + biases) >> shift, -32768, 32767)
    np.testing.assert_array_equal(run_finisher24(shift, values, biases), want)


def test_bias_past_24_bits_takes_the_32_bit_way():
    """-128 * 65535 - 32768 needs 25 bits: such a matvec is marked wide and still exact."""
    x = np.array([2047] * 31 + [65535 - 31 * 2047])
    weight = np.full((2, 32), -128, dtype=np.int8)
    weight[1] = 127
    bias = np.array([-32768, 32767], dtype=np.int16)
    assert not matvec.fits_24_bits(weight, bias)
    assert matvec.fits_24_bits(weight[1:], bias[1:])
    for shift in (0, 8, 9):
        got, want, _ = run_matvec(weight, x, bias, shift)
        np.testing.assert_array_equal(got, want)


def run_pruned(weight, x, shift, then=None):
    """y of one op_matvec call marked as read only by an argmax, then (optionally) y of an
    ordinary call on `then` = (weight, x, shift) through the same row code."""
    from test_z80_matvec import W, X, Y, machine_with, matvec_routines
    rows, cols = weight.shape
    driver = (f"W EQU 0x{W:04X}\nX EQU 0x{X:04X}\nY EQU 0x{Y:04X}\n"
              + matvec.call_asm("W", "X", "Y", rows, cols, shift, False, prune=True))
    shifts = [shift]
    if then is not None:
        w2, x2, s2 = then
        stream = len(matvec.encode_weights(weight, None))
        driver += matvec.call_asm(f"0x{W + stream:04X}", "X+64", "Y+512", w2.shape[0], w2.shape[1], s2, False)
        shifts.append(s2)
    m, symbols = machine_with(driver, matvec_routines(shifts, [(rows, cols)], [shift]))
    blob = matvec.encode_weights(weight, None)
    m.load(W, blob)
    m.put_i16(X, x)
    if then is not None:
        m.load(W + len(blob), matvec.encode_weights(w2, None))
        m.put_i16(X + 64, x2)
    m.call(symbols["driver"])
    return m.i16(Y, rows), (m.i16(Y + 512, then[0].shape[0]) if then is not None else None)


def check_pruned(weight, x, shift):
    got, _ = run_pruned(weight, x, shift)
    want = ref.matvec(weight.astype(np.int64), x, None, shift)
    kept = got != -32768
    np.testing.assert_array_equal(got[kept], want[kept])               # a row either finishes exactly
    assert int(np.argmax(got)) == int(np.argmax(want))                 # or could not have won
    return int((~kept).sum())


@pytest.mark.parametrize("seed", range(6))
def test_pruned_rows_keep_the_argmax(seed):
    rng = np.random.default_rng(seed)
    rows, cols = (128, 32) if seed % 2 == 0 else (40, 27)
    weight = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    weight[rows // 2] = np.clip(weight[rows // 2].astype(int) + 60, -128, 127)       # a clear winner
    pruned = 0
    for shift in (0, 3, 6, 8):
        for x in (rng.integers(-1500, 1500, cols), rng.integers(0, 1800, cols), extremes_small(rng, cols)):
            pruned += check_pruned(weight, x, shift)
    assert pruned > 0                                                  # the bound does stop rows


def expected_pruning(weight, x, shift):
    """The rows the bound stops: row r stops when w.x minus the rest of its last four planes
    (sum (u & 15) x + 15N, at most 15 sum |x|) plus 15 sum |x| stays below (best + 1) << shift,
    best the largest y of the rows before it (u = w - m, the row's offset form)."""
    w = weight.astype(np.int64)
    want = ref.matvec(w, x, None, shift)
    total, negatives = int(np.abs(x).sum()), int(-x[x < 0].sum())
    best, stopped = -32768, []
    for r in range(len(w)):
        u = w[r] - matvec.row_form(w[r], matvec.groups(w.shape[1]))[1]
        top = int(w[r] @ x) - int((u & 15) @ x) - 15 * negatives
        if top + 15 * total < (best + 1) << shift:
            stopped.append(r)
        else:
            best = max(best, int(want[r]))
    return stopped


@pytest.mark.parametrize("seed", range(4))
def test_pruning_stops_exactly_the_rows_the_bound_allows(seed):
    """Per-offset thresholds (mv_newbest) must be neither looser nor tighter than the bound."""
    rng = np.random.default_rng(40 + seed)
    rows, cols = (96, 32) if seed % 2 == 0 else (50, 27)
    weight = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    weight[rng.integers(0, rows, 8)] //= 3              # rows of other offsets and plane counts
    for shift in (0, 4, 8):
        lim = min(1700, 40 << shift)                    # y mostly within 16 bits
        x = rng.integers(-lim, lim, cols)
        got, _ = run_pruned(weight, x, shift)
        real = ref.matvec(weight.astype(np.int64), x, None, shift) != -32768     # (else either way)
        stopped = set(np.flatnonzero((got == -32768) & real))
        assert stopped == {r for r in expected_pruning(weight, x, shift) if real[r]}
        assert len(stopped) > rows // 4


def test_a_pruned_matvec_leaves_its_weights_as_they_were():
    """A new best mid-pass (SP in the weights) must not push onto them: the same call again,
    on the same stream, gives the same rows."""
    from test_z80_matvec import W, X, Y, machine_with, matvec_routines
    rng = np.random.default_rng(12)
    weight = rng.integers(-128, 128, (40, 32)).astype(np.int8)
    x = rng.integers(-900, 900, 32)
    call = matvec.call_asm("W", "X", "Y", 40, 32, 6, False, prune=True)
    driver = f"W EQU 0x{W:04X}\nX EQU 0x{X:04X}\nY EQU 0x{Y:04X}\n" + call + call.replace("Y,", "Y+128,")
    m, symbols = machine_with(driver, matvec_routines([6], [(40, 32)], [6]))
    blob = matvec.encode_weights(weight, None)
    m.load(W, blob)
    m.put_i16(X, x)
    m.call(symbols["driver"])
    assert m.read(W, len(blob)) == blob
    np.testing.assert_array_equal(m.i16(Y + 128, 40), m.i16(Y, 40))


def extremes_small(rng, n):
    return rng.choice([-1792, 1791, 0, -1, 1, 1000, -1000], n)


def test_pruned_ties_go_to_the_lowest_row():
    rng = np.random.default_rng(9)
    weight = rng.integers(-50, 50, (64, 32)).astype(np.int8)
    weight[10] = weight[40] = weight[63] = 100
    x = rng.integers(0, 500, 32)
    got, _ = run_pruned(weight, x, 6)
    want = ref.matvec(weight.astype(np.int64), x, None, 6)
    assert int(np.argmax(got)) == int(np.argmax(want)) == 10


def test_no_pruning_past_the_sum_bound_and_code_restored():
    """sum |x| > 58663: every row finishes; the next ordinary matvec runs unpatched code."""
    rng = np.random.default_rng(3)
    weight = rng.integers(-128, 128, (20, 32)).astype(np.int8)
    x = np.array([1900] * 31 + [58664 - 31 * 1900])
    w2 = rng.integers(-128, 128, (9, 32)).astype(np.int8)
    x2 = rng.integers(-1000, 1000, 32)
    got, after = run_pruned(weight, x, 5, then=(w2, x2, 7))
    np.testing.assert_array_equal(got, ref.matvec(weight.astype(np.int64), x, None, 5))
    np.testing.assert_array_equal(after, ref.matvec(w2.astype(np.int64), x2, None, 7))
    x = rng.integers(-1000, 1000, 32)
    got, after = run_pruned(weight, x, 5, then=(w2, x2, 7))
    assert int(np.argmax(got)) == int(np.argmax(ref.matvec(weight.astype(np.int64), x, None, 5)))
    np.testing.assert_array_equal(after, ref.matvec(w2.astype(np.int64), x2, None, 7))


def test_prune_only_where_it_is_exact():
    assert matvec.can_prune(32, 6, False, False)
    assert not matvec.can_prune(64, 6, False, False)        # two chunks
    assert not matvec.can_prune(32, 6, True, False)         # a bias
    assert not matvec.can_prune(32, 9, False, False)        # a shift past 8
    with pytest.raises(ValueError):
        matvec.call_asm("W", "X", "Y", 4, 32, 6, True, prune=True)


@pytest.mark.parametrize("rows,cols", [(256, 8), (257, 16), (513, 20), (300, 40)])
def test_row_counts_past_256(rows, cols):
    """The row counter is a byte plus a count of whole rounds of 256."""
    rng = np.random.default_rng(rows)
    weight = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    x = rng.integers(-900, 900, cols)
    got, want, _ = run_matvec(weight, x, None, 7)
    np.testing.assert_array_equal(got, want)


def test_row_constants_cover_exactly_the_offsets_in_use():
    """Only K for the offsets the program's rows use are computed per build (k_range)."""
    narrow = np.array([[-16, 15] * 16, [0, 15] * 16], dtype=np.int8)       # m = -16 and 0
    wide = np.array([[-128, 127] + [0] * 38], dtype=np.int8)                # m = -128, 8 planes
    assert matvec.k_range([narrow]) == (7, 2)
    assert matvec.k_range([narrow, wide]) == (0, 9)
    rng = np.random.default_rng(8)
    weight = np.clip(rng.integers(-20, 40, (12, 32)), -128, 127).astype(np.int8)
    first, count = matvec.k_range([weight])
    assert first > 0 and first + count < 16
    from test_z80_matvec import W, X, Y, machine_with, subsets
    driver = f"W EQU 0x{W:04X}\nX EQU 0x{X:04X}\nY EQU 0x{Y:04X}\n" + matvec.call_asm("W", "X", "Y", 12, 32, 5, False)
    routines = (subsets.tables_asm() + matvec.ktab_asm(False)
                + matvec.kernel_asm([5], {4}, 1, (), (first, count))
                + subsets.planes_asm(4, matvec.row_label(4)) + subsets.build_asm())
    m, symbols = machine_with(driver, routines)
    m.load(W, matvec.encode_weights(weight, None))
    x = rng.integers(-2000, 2000, 32)
    m.put_i16(X, x)
    m.call(symbols["driver"])
    np.testing.assert_array_equal(m.i16(Y, 12), ref.matvec(weight.astype(np.int64), x, None, 5))
