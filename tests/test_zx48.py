"""The zx48 target end to end: the TAP goes through the real 48K ROM tape loader in the
emulator, prompts are typed on the emulated keyboard, replies are read off the screen, and
the token ids are read from the chat loop's own sequence buffer."""
import shutil
import subprocess

import numpy as np
import pytest

from soulc.ir.chat import respond
from soulc.ir.printer import print_program
from soulc.random_model import ModelShape, random_program
from soulc.targets.zx.session import ChatSession
from soulc.targets.zx.tap import code_blocks

from conftest import run_soulc


def compile_zx48(model, out_dir, *options):
    out_dir.mkdir(parents=True, exist_ok=True)
    tap, sym = out_dir / "soul.tap", out_dir / "soul.sym"
    for path, emit in ((tap, "tap"), (sym, "sym")):
        result = run_soulc(model, *options, "--target", "zx48", "--emit", emit, "-o", path)
        assert result.returncode == 0, result.stderr
    symbols = {}
    for line in sym.read_text().splitlines():
        name, _, address = line.split()
        symbols[name] = int(address, 16)
    return tap, symbols


def sequence(session, symbols):
    length = session.spectrum.peek(symbols["chat_len"])[0]
    return list(session.spectrum.peek(symbols["chat_seq"], length))


@pytest.fixture(scope="module")
def seed_tap(seed, tmp_path_factory):
    return compile_zx48(seed.soul_bin, tmp_path_factory.mktemp("seed"), "--tokenizer", seed.tokenizer)


def test_seed_model_replies_exactly_on_the_48k(seed, seed_tap):
    tap, symbols = seed_tap
    session = ChatSession.load(tap, "48")
    assert session.screen()[0].startswith("soulc:")
    for entry in seed.replies:
        reply = session.ask(entry["prompt"])
        assert reply.text == entry["reply"].rstrip()
        assert reply.tokens == len(entry["reply_ids"])
        assert sequence(session, symbols) == entry["prompt_ids"] + entry["reply_ids"]


def test_a_differently_shaped_model_matches_soulc_chat(tmp_path):
    shape = ModelShape(layers=1, width=24, heads=3, ffn=40, vocab=72, context=14, bias=True)
    program = random_program(np.random.default_rng(2026), shape)
    soul = tmp_path / "other.soul"
    soul.write_text(print_program(program))
    tap, symbols = compile_zx48(soul, tmp_path)
    prompts = ["hello there", "WHAT?", "a b c d e f g h i j k l m n o p q r s", "zz#9", ""]
    host = run_soulc("chat", soul, input="".join(p + "\n" for p in prompts)).stdout.split("\n")
    session = ChatSession.load(tap, "48")
    for prompt, expected in zip(prompts, host):
        exchange = respond(program, prompt)
        reply = session.ask(prompt)
        if exchange.reply is None:
            assert reply.text is None
            continue
        assert reply.text == expected.rstrip()
        assert sequence(session, symbols) == exchange.prompt_ids + exchange.reply_ids


@pytest.mark.skipif(shutil.which("pasmo") is None, reason="Debian's pasmo is not installed")
def test_pasmo_assembles_the_emitted_asm_to_the_tap_code_block(seed, seed_tap, tmp_path):
    tap, _ = seed_tap
    asm, binary = tmp_path / "soul.asm", tmp_path / "soul.bin"
    result = run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--target", "zx48", "--emit", "asm", "-o", asm)
    assert result.returncode == 0, result.stderr
    subprocess.run(["pasmo", "--bin", str(asm), str(binary)], check=True, capture_output=True)
    [(address, code)] = code_blocks(tap.read_bytes())
    assert address == 0x5E00
    assert binary.read_bytes() == code


def test_memory_map_lists_every_region(seed):
    result = run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--target", "zx48", "--memory-map")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for what in ("ROM", "screen", "code: chat loop", "code: model step", "KV cache @l0.k.cache",
                 "constant @te", "free:"):
        assert what in text
    assert "bytes uncontended" in text.splitlines()[-1]


def test_a_model_too_large_for_48k_fails_with_sizes_and_writes_nothing(tmp_path):
    shape = ModelShape(layers=3, width=48, heads=4, ffn=96, vocab=128, context=20, bias=False)
    soul = tmp_path / "big.soul"
    soul.write_text(print_program(random_program(np.random.default_rng(1), shape)))
    out = tmp_path / "big.tap"
    result = run_soulc(soul, "--target", "zx48", "-o", out)
    assert result.returncode == 2
    assert result.stderr.startswith("soulc: error: the model does not fit: its data needs ")
    assert "zx48 has" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_the_prefix_positions_are_loaded_not_computed(seed, seed_tap, seed_program):
    """Every prompt starts with the prefix (the seed: [SEP] at position 0), so its key and value
    rows are the same in every chat: the tape carries them, in the caches' own layout, as the
    interpreter computes them, and the chat loop starts at position 1."""
    from soulc.ir.interpreter import Interpreter
    from soulc.passes.kv_cache import kv_cache
    from soulc.targets.z80.ops import store

    tap, symbols = seed_tap
    (origin, block), = code_blocks(tap.read_bytes())
    program = kv_cache(seed_program)
    prefix = program.settings.prompt_prefix
    assert len(prefix) == 1
    interpreter = Interpreter(program)
    for token in prefix:
        interpreter.feed(token)
    for name, rows in interpreter.states.items():
        want = rows[: len(prefix)]
        assert want.any()
        if name.endswith(".k.cache"):
            want = store.key_rows(want, 4)
        else:
            want = want.astype("<i2").tobytes()
        start = symbols["c_" + name.replace(".", "_")] - origin
        assert block[start:start + len(want)] == want, name


def test_run_time_buffers_take_the_printer_buffer(seed, seed_tap):
    """The chat loop's line, ids and prompt buffers and the tables' x copy live in the 48K's
    printer buffer, which the tape does not load (the seed test above chats through them)."""
    tap, symbols = seed_tap
    (origin, block), = code_blocks(tap.read_bytes())
    for name in ("chat_line", "chat_ids", "chat_seq", "st_x"):
        assert 0x5B00 <= symbols[name] < 0x5C00, name
    assert origin >= 0x5C00
