"""matvec rows at the edge of the narrow (16-bit) row constant: 257 * Sg must fit 24 bits."""
import numpy as np
import pytest

from soulc.targets.z80.ops import matvec

from test_z80_ops import run_matvec


@pytest.mark.parametrize("last", [22, 23, 24, 60])
def test_rows_whose_half_square_sum_nears_65536(last):
    weight = np.array([[127] * 8 + [last], [1] * 9], dtype=np.int8)
    sg = int(matvec.half_square_sums(weight).max())
    assert matvec.narrow_constants(weight, None) == (257 * sg < 2**24)
    got, want, _ = run_matvec(weight, np.ones(9, dtype=np.int64), None, 0)
    np.testing.assert_array_equal(got, want)
