"""The seed's soul.bin, run by soulc, reproduces the seed's own reference replies exactly."""
from soulc.ir.chat import respond
from soulc.passes.kv_cache import kv_cache

from conftest import run_soulc


def test_interpreter_reproduces_replies_json_in_both_forms(seed, seed_program):
    step = kv_cache(seed_program)
    for program in (seed_program, step):
        for entry in seed.replies:
            exchange = respond(program, entry["prompt"])
            assert exchange.prompt_ids == entry["prompt_ids"]
            assert exchange.reply_ids == entry["reply_ids"]
            assert exchange.reply == entry["reply"]


def test_chat_command_reproduces_replies_json(seed):
    prompts = "".join(entry["prompt"] + "\n" for entry in seed.replies)
    result = run_soulc("chat", seed.soul_bin, "--tokenizer", seed.tokenizer, input=prompts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [entry["reply"] for entry in seed.replies]
    assert result.stderr == ""


def test_ir_file_prints_identically_and_chats_identically(seed, tmp_path):
    soul = tmp_path / "seed.soul"
    result = run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--emit", "ir", "-o", soul)
    assert result.returncode == 0, result.stderr
    again = run_soulc(soul, "--emit", "ir")
    assert again.returncode == 0, again.stderr
    assert again.stdout == soul.read_text()
    prompts = "".join(entry["prompt"] + "\n" for entry in seed.replies)
    chat = run_soulc("chat", soul, input=prompts)
    assert chat.stdout.splitlines() == [entry["reply"] for entry in seed.replies]
