"""matvec rows at the edges of the subset-sum kernel: a row's weight span at the limits of
6, 7 and 8 bit planes (with its offset, a multiple of 16), and sum |x| at the 16-bit limit
of the tables' entries, where the exact fallback takes over."""
import numpy as np
import pytest

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
