"""Test helper: assemble Z80 text, run subroutines in skoolkit's C simulator on a flat 64K RAM.

No ROM: the routines under test are pure computation. The machinery lives in
targets/z80/profile.py (the benchmarks use it too); this module names it for the tests,
beside `extremes`, the random inputs with corner values mixed in.
"""
from __future__ import annotations

from soulc.targets.z80.profile import (STACK_TOP, STOP, Machine, build_step_machine, linear_addresses,
                                       profile_step, run_step, set_step_inputs)

__all__ = ["STACK_TOP", "STOP", "Machine", "build_step_machine", "linear_addresses", "profile_step",
           "run_step", "set_step_inputs", "extremes"]


def extremes(rng, n, lo=-32768, hi=32767):
    """Random values with the range's ends mixed in."""
    values = rng.integers(lo, hi + 1, n)
    corners = [lo, hi, 0, -1, 1, lo + 1, hi - 1]
    picks = rng.random(n) < 0.25
    values[picks] = rng.choice(corners, picks.sum())
    return values

