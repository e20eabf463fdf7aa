"""The allocation pass: no live buffers overlap, hot data goes first, too-large models fail clearly."""
import numpy as np
import pytest

from soulc.errors import SoulcError
from soulc.passes.allocate import Region, allocate, live_ranges
from soulc.passes.kv_cache import kv_cache
from soulc.random_model import random_program

REGIONS = [Region("fast", 0x8000, 0x10000), Region("slow", 0x6000, 0x8000, contended=True)]


def spans(program):
    sizes = {f"@{c.name}": c.type.nbytes for c in program.consts.values()}
    sizes.update({f"@{s.name}": s.type.nbytes for s in program.states.values()})
    sizes.update({f"%{op.result}": op.type.nbytes for op in program.body if op.result})
    return {name: (addr, addr + sizes[name]) for name, addr in program.memory.items()}


@pytest.mark.parametrize("seed", range(12))
def test_no_two_live_buffers_overlap(seed):
    program = allocate(kv_cache(random_program(np.random.default_rng(seed))), REGIONS, "test",
                       align=lambda name: 256 if name == "@lut" else 2)
    where, ranges = spans(program), live_ranges(program)
    names = list(where)
    for i, a in enumerate(names):
        lo, hi = where[a]
        assert any(r.start <= lo and hi <= r.end for r in REGIONS)
        if a == "@lut":
            assert lo % 256 == 0
        for b in names[i + 1:]:
            both_values = a.startswith("%") and b.startswith("%")
            if both_values:
                (f1, l1), (f2, l2) = ranges[a[1:]], ranges[b[1:]]
                if l1 < f2 or l2 < f1:
                    continue                    # never live together: may share memory
            assert where[b][1] <= lo or hi <= where[b][0], (a, b)


def test_hot_data_takes_uncontended_memory_first(seed_program):
    program = allocate(kv_cache(seed_program), REGIONS, "test")
    assert all(addr >= 0x8000 for name, addr in program.memory.items() if name.startswith("%"))
    assert program.memory["@l0.k.cache"] >= 0x8000
    assert max(program.memory.values()) == program.memory["@te"]    # the coldest table goes last


def test_model_too_large_says_how_much_is_needed(seed_program):
    with pytest.raises(SoulcError, match=r"needs \d+ bytes, tiny has 8192 free"):
        allocate(kv_cache(seed_program), [Region("only", 0x8000, 0xA000)], "tiny")
