"""The schedule pass: output-only ops go last, and the numbers stay the interpreter's."""
import numpy as np

from soulc.ir.chat import respond
from soulc.passes.kv_cache import kv_cache
from soulc.passes.schedule import output_last
from soulc.random_model import random_program
from soulc.targets.z80.codegen import output_only


def test_output_only_ops_come_after_every_store(seed_program):
    program = output_last(kv_cache(seed_program))
    only = output_only(program)
    first = only.index(True)
    assert all(only[first:]) and not any(only[:first])
    names = [op.result for op in program.body]
    assert names.index("l1.q") > max(i for i, op in enumerate(program.body) if op.opcode == "store")


def test_the_replies_do_not_change(seed, seed_program):
    program = output_last(kv_cache(seed_program))
    for case in seed.replies:
        assert respond(program, case["prompt"]).reply_ids == case["reply_ids"]
    rng = np.random.default_rng(7)
    for _ in range(5):
        other = kv_cache(random_program(rng, harsh=True))
        for prompt in ("hello there", "abc"):
            assert respond(output_last(other), prompt) == respond(other, prompt)
