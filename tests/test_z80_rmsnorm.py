"""The Z80 rmsnorm routine (targets/z80/ops/rmsnorm.py) against the interpreter, with its
arithmetic pieces (sum of squares, root, 2^19 // r, the per-element products) exercised
through inputs built to hit them: zeros, tiny and huge values, every gain corner, gain
shifts from -17 to 30, n from 1 to 255."""
from __future__ import annotations

from math import isqrt

import numpy as np
import pytest

from soulc.ir import interpreter as ref
from soulc.targets.z80.ops import rmsnorm
from soulc.targets.z80.runtime_math import math_asm, sqtable_asm

from z80_harness import Machine

X, G, Y = 0xA000, 0xA800, 0xB000
CODE = 0x8000


def build(n: int, shifts, x_addr=X, y_addr=Y):
    """A driver with one call per gain shift (labels call<i>) and the routine."""
    drivers = "".join(f"call{i}:\n" + rmsnorm.call_asm(f"0x{x_addr:04X}", f"0x{G:04X}", f"0x{y_addr:04X}", n, s)
                      + "        RET\n" for i, s in enumerate(shifts))
    m = Machine()
    symbols = m.assemble_at(drivers + rmsnorm.routine_asm() + rmsnorm.finishers_asm(shifts)
                            + math_asm(rmsnorm.NEEDS) + sqtable_asm(), CODE)
    assert symbols["soul_sqtab"] + 512 <= X
    return m, symbols


def run(m, symbols, index, x, gain, y_addr=Y, x_addr=X):
    m.put_i16(x_addr, x)
    m.load(G, np.asarray(gain, dtype=np.int8).tobytes())
    before = m.read(x_addr, 2 * len(x))
    t = m.call(symbols[f"call{index}"])
    if y_addr != x_addr:
        assert m.read(x_addr, 2 * len(x)) == before, "x changed"
    return m.i16(y_addr, len(x)), t


def want(x, gain, shift):
    return ref.rmsnorm(np.asarray(x, dtype=np.int64), np.asarray(gain, dtype=np.int64), shift)


def cases(rng, n):
    """x vectors: zeros, tiny, huge, mixed, random at several scales."""
    out = [np.zeros(n, np.int64), np.full(n, 32767), np.full(n, -32768), np.full(n, -1), np.full(n, 1),
           rng.integers(-15, 16, n), rng.integers(-300, 300, n), rng.integers(-4200, 4200, n),
           rng.integers(-32768, 32768, n), np.array([20] + [0] * (n - 1)),
           np.array([-32768] + [0] * (n - 1)), np.array([32767] + [1] * (n - 1)),
           np.where(np.arange(n) % 2, 32767, -32768)]
    corners = np.array([-32768, 32767, 0, -1, 1, 4095, 4096, -4096, -4097, -4080, -4081, 4080, 15, -16, -17])
    out.append(rng.choice(corners, n))
    scale = rng.integers(1, 32768, 4)
    out += [rng.integers(-s, s + 1, n) for s in scale]
    return out


def gains(rng, n):
    base = [np.full(n, v) for v in (-128, 127, 0, 1, -1)]
    mixed = rng.integers(-128, 128, n)
    mixed[:min(n, 5)] = [-128, 127, 0, 1, -1][:min(n, 5)]
    return base + [mixed, rng.integers(64, 128, n)]


SHIFTS = [6, 5, 0, -2, 12, 7, 8, 9, 3, 1, -1, -7, -17, 16, 22, 30, 4, 2]


@pytest.mark.parametrize("n", [32, 28, 20, 7, 1, 64, 128, 2, 4, 8, 16])
def test_rmsnorm_against_interpreter(n):
    rng = np.random.default_rng(n)
    m, symbols = build(n, SHIFTS)
    gs = gains(rng, n)
    for xi, x in enumerate(cases(rng, n)):
        for index, shift in enumerate(SHIFTS):
            gain = gs[(xi + index) % len(gs)]
            got, _ = run(m, symbols, index, x, gain)
            np.testing.assert_array_equal(got, want(x, gain, shift), err_msg=f"x case {xi}, shift {shift}")


@pytest.mark.parametrize("n", [255, 200, 3])
def test_rmsnorm_long_and_odd(n):
    rng = np.random.default_rng(1000 + n)
    shifts = [6, -3, 11]
    m, symbols = build(n, shifts)
    for x in cases(rng, n)[:10]:
        for index, shift in enumerate(shifts):
            gain = rng.integers(-128, 128, n)
            got, _ = run(m, symbols, index, x, gain)
            np.testing.assert_array_equal(got, want(x, gain, shift))


def test_rmsnorm_in_place():
    """y may be x itself: each x is read before its y is written."""
    rng = np.random.default_rng(5)
    m, symbols = build(32, [6], y_addr=X)
    for x in cases(rng, 32)[:8]:
        gain = rng.integers(-128, 128, 32)
        got, _ = run(m, symbols, 0, x, gain, y_addr=X)
        np.testing.assert_array_equal(got, want(x, gain, 6))


def mean_square(x):
    xs = np.asarray(x, dtype=np.int64) >> 4
    return int((xs * xs).sum()) // len(x)


def x_for_mean(m_target: int, n: int, rng) -> np.ndarray:
    """x (n values) whose mean square is m_target, or close: one big value, the rest small."""
    n = int(n)
    total = m_target * n
    x = np.zeros(n, np.int64)
    first = min(isqrt(total), 2047)
    x[0] = 16 * first + int(rng.integers(0, 16))
    rest = total - first * first
    for i in range(1, n):
        v = min(isqrt(rest), 2047)
        x[i] = (16 * v + int(rng.integers(0, 16))) * (1 if rng.random() < 0.5 else -1)
        if x[i] < 0:        # x >> 4 of a negative value: -v-1 unless x is a multiple of 16
            x[i] = -16 * v
        rest -= v * v
    return x


def test_root_and_reciprocal_sweep():
    """Means across the whole range (so the root and 2^19 // r see every r up to 2048 in
    steps, every boundary r*r - 1, r*r, the 17 limit, and r around 256), one element carrying the gain."""
    rng = np.random.default_rng(11)
    n = 16
    m, symbols = build(n, [0])
    gain = np.zeros(n, np.int64)
    gain[0] = 1
    targets = set()
    for r in list(range(1, 80)) + list(range(80, 2049, 37)) + list(range(250, 262)) + [2047, 2048]:
        targets |= {r * r - 1, r * r, r * r + 1}
    checked = 0
    for target in sorted(targets):
        if target <= 0 or target > 2048 * 2048:
            continue
        x = x_for_mean(target, n, rng)
        got, _ = run(m, symbols, 0, x, gain)
        np.testing.assert_array_equal(got, want(x, gain, 0), err_msg=f"mean {mean_square(x)}")
        checked += 1
    assert checked > 300


def test_products_dense():
    """n = 1: y = sat(((x * inv) >> 15) * g >> sg) with inv from x alone; every gain against
    x over a dense sweep of magnitudes and signs, for the shifts the seed uses and corners."""
    m, symbols = build(1, [6, 5, 0, -4, 10])
    xs = sorted({int(v) for v in np.concatenate([np.arange(-40, 41), np.geomspace(1, 32767, 120).astype(int),
                                                 -np.geomspace(1, 32768, 120).astype(int)])})
    for x in xs[::3]:
        for g in range(-128, 128, 5):
            for index, shift in enumerate([6, 5, 0, -4, 10]):
                got, _ = run(m, symbols, index, np.array([x]), np.array([g]))
                assert got[0] == want([x], [g], shift)[0], (x, g, shift)


def test_two_elements_inverse_sweep():
    """n = 2 with a big and a free value: inv takes many values (all its bit patterns get
    written into the steps), the free value runs through signs and sizes."""
    rng = np.random.default_rng(3)
    m, symbols = build(2, [6, -1])
    for big in np.geomspace(1, 32767, 150).astype(int):
        for sign in (1, -1):
            free = int(rng.integers(-32768, 32768)) % (2 * int(big) + 1) - int(big)
            x = np.array([sign * int(big), free])
            gain = rng.integers(-128, 128, 2)
            for index, shift in enumerate([6, -1]):
                got, _ = run(m, symbols, index, x, gain)
                np.testing.assert_array_equal(got, want(x, gain, shift))


def test_magnitude_bound():
    """The routine relies on |(x * inv) >> 15| < 4400 (n <= 255): check adversarial inputs."""
    rng = np.random.default_rng(8)
    worst = 0
    for n in (1, 2, 3, 16, 255):
        for _ in range(400):
            x = np.zeros(n, np.int64)
            x[0] = int(rng.integers(-32768, 32768))
            if n > 1:
                spread = abs(int(x[0])) // int(rng.integers(1, 400)) + 1
                x[1:] = rng.integers(-spread, spread + 1, n - 1)
            xs = x >> 4
            mean = max(1, int((xs * xs).sum()) // n)
            inv = min(32767, 2**19 // max(1, isqrt(mean)))
            worst = max(worst, int(np.abs((x * inv) >> 15).max()))
    assert worst < 4400


def test_seed_shape_speed():
    """n = 32, shift 6, the seed's shape: about 37,400 T-states (was about 70,000, then 38,400)."""
    rng = np.random.default_rng(4)
    m, symbols = build(32, [6])
    x, gain = rng.integers(-3000, 3000, 32), rng.integers(-128, 128, 32)
    got, t = run(m, symbols, 0, x, gain)
    np.testing.assert_array_equal(got, want(x, gain, 6))
    assert t < 38_500, t
