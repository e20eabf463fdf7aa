"""The chat input rules every target shares (ir/chat.py)."""
import numpy as np

from soulc.ir.chat import encode, frame_prompt, max_prompt_text, respond
from soulc.passes.kv_cache import kv_cache
from soulc.random_model import random_program

from conftest import run_soulc


def test_capitals_are_lowercased_and_unknown_characters_dropped(seed_program):
    tok = seed_program.tokenizer
    assert encode(tok, "HeLLo") == encode(tok, "hello")
    assert encode(tok, "he#llo2") == encode(tok, "hello")
    assert encode(tok, "") == []


def test_merges_apply_in_order_left_to_right_without_overlap(seed_program):
    tok = seed_program.tokenizer
    ou = tok.tokens.index("ou")
    you = tok.tokens.index("you")
    assert encode(tok, "you") == [you]                     # o+u first, then y+ou
    o = tok.tokens.index("o")
    assert encode(tok, "ooo") == [o, o, o]                 # no merge for o+o
    assert encode(tok, "ouou") == [ou, ou]


def test_empty_or_unknown_only_line_gets_no_reply(seed_program):
    assert respond(seed_program, "").reply is None
    assert respond(seed_program, "1234#").reply is None
    assert respond(seed_program, " ").reply is not None   # a space is in the vocabulary


def test_long_prompt_is_cut_to_leave_one_reply_token(seed_program):
    text = "hello " * 20
    ids = encode(seed_program.tokenizer, text)
    prompt = frame_prompt(seed_program, ids)
    assert len(prompt) == seed_program.settings.context - 1
    assert prompt[1:-1] == ids[: max_prompt_text(seed_program)]
    exchange = respond(kv_cache(seed_program), text)
    assert len(exchange.reply_ids) == 1


def test_scripted_chat_writes_one_line_per_prompt(seed):
    result = run_soulc("chat", seed.soul_bin, "--tokenizer", seed.tokenizer, input="hello\n\n123\nHELLO\n")
    lines = result.stdout.split("\n")
    assert lines[:4] == [seed.replies[0]["reply"], "", "", seed.replies[0]["reply"]]
    assert lines[4:] == [""]


def test_seq_and_step_forms_agree_on_random_programs():
    for s in range(30):
        rng = np.random.default_rng(s)
        program = random_program(rng, harsh=s % 2 == 1)
        step = kv_cache(program)
        for text in ("hello there", "a", "zz zz zz zz zz zz zz zz zz zz zz"):
            assert respond(program, text) == respond(step, text)
