"""Lookup tables the numerics define."""
from __future__ import annotations

import math

import numpy as np


def seed_softmax_table() -> np.ndarray:
    """The seed's exp table: 255 * exp(-i/16), at least 1, with the last entry 0."""
    table = [255] + [max(1, round(255 * math.exp(-i / 16))) for i in range(1, 127)] + [0]
    return np.array(table, dtype=np.uint8)


SEED_SCORE_SHIFT = 14
