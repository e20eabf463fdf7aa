"""The whole seed model's `step`, position by position in the Z80 simulator, against the seed's
recorded replies and the reference interpreter; and its cost in T-states."""
from __future__ import annotations

import pytest

from soulc.ir.interpreter import Interpreter
from soulc.passes.kv_cache import kv_cache

from z80_harness import build_step_machine, profile_step, run_step


@pytest.fixture(scope="module")
def seed_step(seed_program):
    program = kv_cache(seed_program)
    machine, symbols, placed = build_step_machine(program)
    return program, machine, symbols


def generate(program, machine, symbols, prompt_ids):
    """Feed the prompt, then generate to the end of the context, as the chat loop does."""
    seq = list(prompt_ids)
    costs = []
    interp = Interpreter(program)
    for pos in range(program.settings.context):
        output = pos >= len(prompt_ids) - 1
        token, t = run_step(machine, symbols, seq[pos], pos, output)
        want = interp.next_token(seq[pos])
        costs.append(t)
        if output:
            assert token == want, f"position {pos}: the Z80 step says {token}, the interpreter {want}"
            if pos + 1 < program.settings.context:
                seq.append(token)
    return seq[len(prompt_ids):], costs


def test_seed_replies(seed, seed_step):
    """Every recorded reply, one prompt after another: states are overwritten position by
    position, so a new prompt needs no clearing."""
    program, machine, symbols = seed_step
    for case in seed.replies:
        reply, costs = generate(program, machine, symbols, case["prompt_ids"])
        assert reply == case["reply_ids"], case["prompt"]
        assert max(costs) < 6_500_000


def test_profile_names_every_op(seed_step):
    program, machine, symbols = seed_step
    run_step(machine, symbols, 1, 0, True)
    machine.memory[symbols["STEP_TOKEN"]] = 5
    machine.memory[symbols["STEP_POS"]] = 1
    machine.memory[symbols["STEP_OUTPUT"]] = 1
    costs = profile_step(machine, symbols, program)
    assert len(costs) == len(program.body)
    assert all(t > 0 for _, t in costs)


def test_rows_outside_the_argmax_range_do_not_prune(seed, seed_program):
    """The output matvec stops rows that cannot win, against the best so far: rows the argmax
    never looks at (the special tokens) must not set that bar. Here they are made the largest."""
    import numpy as np

    program = kv_cache(seed_program).copy()
    out = program.consts["out"]
    lo, _ = program.settings.argmax
    data = np.array(out.data, dtype=np.int8)
    data[:lo] = 127
    program.consts["out"] = type(out)(**{**out.__dict__, "data": data})
    machine, symbols, _ = build_step_machine(program)
    generate(program, machine, symbols, seed.replies[0]["prompt_ids"])
