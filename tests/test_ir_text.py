"""The textual form: print(parse(text)) == text, and a parsed program computes the same."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from soulc.ir.chat import respond
from soulc.ir.parser import parse
from soulc.ir.printer import print_program
from soulc.ir.verify import VerifyError
from soulc.passes.kv_cache import kv_cache
from soulc.random_model import random_program, random_prompt


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), harsh=st.booleans(), step=st.booleans())
def test_round_trip_of_random_programs(seed, harsh, step):
    rng = np.random.default_rng(seed)
    program = random_program(rng, harsh=harsh)
    if step:
        program = kv_cache(program)
    text = print_program(program)
    parsed = parse(text)
    assert print_program(parsed) == text
    prompt = random_prompt(rng)
    assert respond(parsed, prompt) == respond(program, prompt)


def test_seed_dump_round_trips(seed_program):
    for program in (seed_program, kv_cache(seed_program)):
        text = print_program(program)
        assert print_program(parse(text)) == text


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("soul 1", "soul 7", 1), "line 1, column 1: this is soul format 7"),
    (lambda t: t.replace("  context 20", "  context", 1), "context takes one number"),
    (lambda t: t.replace("rmsnorm %h, @l0.n1", "rmsnorm %h, @l0.nope"), "@l0.nope is not a declared const"),
    (lambda t: t.replace("rmsnorm %h, @l0.n1", "rmsnorm %hh, @l0.n1"), "%hh is used before it is defined"),
    (lambda t: t.replace("post 1 : i16[32]", "post 1 : i16[33]", 1), "yields i16[32], the text says i16[33]"),
    (lambda t: t.replace("= embed", "= frobnicate"), "unknown opcode"),
    (lambda t: t.replace("heads 4", "heads 5", 1), "heads 5 does not divide width 32"),
    (lambda t: t.replace("%l0.x = rmsnorm", "%h = rmsnorm"), "%h is defined twice"),
    (lambda t: t.replace("const @lut : u8[128]", "const @lut : u8[129]"), "@lut is u8[129]"),
    (lambda t: t[: len(t) // 2], "unexpected"),
    (lambda t: t.replace("merge 19 25 -> 39", "merge 19 26 -> 39"), "'o' + 'v' is not 'ou'"),
])
def test_errors_name_the_line(seed_program, edit, message):
    text = edit(print_program(kv_cache(seed_program)))
    with pytest.raises(VerifyError, match=None) as e:
        parse(text)
    assert message in str(e.value)
    assert "line" in str(e.value) or "@" in str(e.value) or "merge" in str(e.value)
