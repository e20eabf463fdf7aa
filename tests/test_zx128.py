"""The zx128 target end to end: a model of 88,000 parameters, which no 48K holds, compiled from a
torch export, loaded through the real 128K ROM (Tape Loader, then the tape's own bank loader,
every block read pulse by pulse), chats exactly as `soulc chat`; the seed does too. Also: the
bank ops in the IR, the verifier's bank check, the memory map and the loader's error paths."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from soulc.errors import SoulcError
from soulc.frontends.load import load_model
from soulc.ir.chat import respond
from soulc.ir.parser import parse
from soulc.ir.printer import print_program
from soulc.ir.verify import verify
from soulc.passes.pipeline import HOST_PASSES, run_pipeline
from soulc.random_model import ModelShape, random_program
from soulc.run import detect_machine
from soulc.targets.zx.emulator import Spectrum
from soulc.targets.zx.session import START_BUDGET, ChatSession
from soulc.targets.zx.tap import HEADERLESS, code_blocks, read_tap
from soulc.targets.zx.zx128 import ZX128_TARGET, bank_split_zx128

from conftest import run_soulc

pytestmark = pytest.mark.filterwarnings("ignore:.*TorchScript", "ignore:.*remove usage of this function",
                                        "ignore:Converting a tensor to a Python")

BIG = dict(layers=4, width=48, heads=4, ffn=96, vocab=128, context=24)
BIG_PROMPTS = ["hello", "Who are you?", "what is the meaning of life"]
SECOND = 3_500_000


def symbols_of(path):
    return {name: int(address, 16) for name, _, address in
            (line.split() for line in path.read_text().splitlines())}


def compile_zx128(model, out_dir, *options):
    """The TAP (with the IR after bank_split and the memory map printed on the way) and the symbols."""
    tap, sym = out_dir / "soul.tap", out_dir / "soul.sym"
    result = run_soulc(model, *options, "--target", "zx128", "-o", tap, "--print-after", "bank_split",
                       "--memory-map")
    assert result.returncode == 0, result.stderr
    assert run_soulc(model, *options, "--target", "zx128", "--emit", "sym", "-o", sym).returncode == 0
    return tap, symbols_of(sym), result.stdout


def sequence(session, symbols):
    length = session.spectrum.peek(symbols["chat_len"])[0]
    return list(session.spectrum.peek(symbols["chat_seq"], length))


@pytest.fixture(scope="module")
def big(tmp_path_factory, seed):
    torch = pytest.importorskip("torch")
    from soulc.model import SoulConfig, SoulModel, export_onnx
    out = tmp_path_factory.mktemp("big")
    torch.manual_seed(128)
    model = SoulModel(SoulConfig(**BIG))
    assert sum(p.numel() for p in model.parameters()) > 80_000
    onnx = export_onnx(model, out / "big.onnx", tokenizer=seed.tokenizer, dynamo=False)
    return (onnx, *compile_zx128(onnx, out))


@pytest.fixture(scope="module")
def seed_128(seed, tmp_path_factory):
    return compile_zx128(seed.soul_bin, tmp_path_factory.mktemp("seed128"), "--tokenizer", seed.tokenizer)


def test_an_88k_model_replies_through_the_real_128k_rom_exactly_as_soulc_chat(big):
    onnx, tap, symbols, printed = big
    data = tap.read_bytes()
    assert detect_machine(data) == "128"
    host = run_soulc("chat", onnx, input="".join(p + "\n" for p in BIG_PROMPTS)).stdout.split("\n")
    assert all(host[:len(BIG_PROMPTS)])
    program = run_pipeline(load_model(onnx), HOST_PASSES)
    session = ChatSession(Spectrum.load_tap(data, "128", fast_load=False))   # every pulse by the ROM
    session.wait_for_prompt(START_BUDGET)
    assert session.screen()[0].startswith("soulc:")
    for prompt, expected in zip(BIG_PROMPTS, host):
        exchange = respond(program, prompt)
        reply = session.ask(prompt)
        assert reply.text == expected.rstrip()
        assert reply.tokens == len(exchange.reply_ids)
        assert sequence(session, symbols) == exchange.prompt_ids + exchange.reply_ids


def test_the_88k_model_is_split_across_banks_each_paged_in_once_a_step(big):
    _, tap, _, printed = big
    ir, memory_map = printed.split("zx128 memory map")
    body = ir[ir.index("step {"):]
    pages = re.findall(r"^  bank n (\d)$", body, re.MULTILINE)
    assert len(pages) == len(set(pages)) == sum(f.kind == HEADERLESS for f in read_tap(tap.read_bytes())) >= 5
    assert not {"2", "5"} & set(pages)
    assert re.search(r"= concat %\S+\.part0, %\S+\.part1", body)           # a matrix split by rows
    assert re.search(r"^  @\S+ 0x[0-9A-F]{4} bank \d$", ir, re.MULTILINE)
    for bank in range(8):
        assert (f"bank {bank} (" in memory_map) == (bank not in (2, 5))
    assert "bank window" in memory_map and "KV cache" in memory_map


def test_the_88k_model_is_too_large_for_48k_and_writes_nothing(big, tmp_path):
    onnx = big[0]
    out = tmp_path / "big48.tap"
    result = run_soulc(onnx, "--target", "zx48", "-o", out)
    assert result.returncode == 2
    assert re.match(r"soulc: error: the model does not fit: its data needs \d+ bytes, zx48 has \d+ free",
                    result.stderr)
    assert not out.exists()


def test_the_seed_replies_exactly_on_the_128k(seed, seed_128):
    tap, symbols, _ = seed_128
    session = ChatSession.load(tap, "128")
    for entry in seed.replies:
        reply = session.ask(entry["prompt"])
        assert reply.text == entry["reply"].rstrip()
        assert reply.tokens == len(entry["reply_ids"])
        assert sequence(session, symbols) == entry["prompt_ids"] + entry["reply_ids"]


def test_soulc_run_knows_a_128k_tape(seed, seed_128):
    tap, _, _ = seed_128
    entry = seed.replies[0]
    result = run_soulc("run", tap, "--prompt", entry["prompt"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "ZX> " + entry["reply"].rstrip()


def test_bank_split_ir_round_trips_and_the_verifier_wants_every_bank_op(seed_program):
    program = bank_split_zx128(run_pipeline(seed_program, HOST_PASSES))
    text = print_program(program)
    assert print_program(parse(text)) == text
    first = next(i for i, op in enumerate(program.body) if op.opcode == "bank")
    broken = program.copy()
    del broken.body[first]
    with pytest.raises(SoulcError, match=r"uses @\S+, which lies in bank \d, but no bank is paged in yet"):
        verify(broken)


def test_kv_caches_in_banks_with_their_attention():
    """Eight layers whose KV caches do not all fit always-visible memory: scores and mix run in
    the bank that store wrote."""
    program = run_pipeline(random_program(np.random.default_rng(3), ModelShape(
        layers=8, width=32, heads=4, ffn=64, vocab=128, context=20)), HOST_PASSES)
    banked = bank_split_zx128(program)
    assert any(name[1:] in banked.states for name in banked.banks)
    build = ZX128_TARGET.build(banked)
    symbols = {name: int(address, 16) for name, _, address in
               (line.split() for line in build.artefacts["sym"].splitlines())}
    session = ChatSession.load(build.artefacts["tap"], "128")
    for prompt in ["hello there", "what?"]:
        exchange = respond(program, prompt)
        assert session.ask(prompt).text == exchange.reply.rstrip()
        assert sequence(session, symbols) == exchange.prompt_ids + exchange.reply_ids


@pytest.mark.skipif(shutil.which("pasmo") is None, reason="Debian's pasmo is not installed")
def test_pasmo_assembles_the_emitted_asm_to_the_main_block(seed, seed_128, tmp_path):
    tap, _, _ = seed_128
    asm, binary = tmp_path / "soul.asm", tmp_path / "soul.bin"
    result = run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--target", "zx128", "--emit", "asm", "-o", asm)
    assert result.returncode == 0, result.stderr
    subprocess.run(["pasmo", "--bin", str(asm), str(binary)], check=True, capture_output=True)
    [(address, code)] = code_blocks(tap.read_bytes())
    assert address == 0x5E00 and address + len(code) <= 0xC000
    assert binary.read_bytes() == code


def test_a_model_too_large_for_the_128k_fails_with_sizes(tmp_path):
    shape = ModelShape(layers=6, width=64, heads=4, ffn=128, vocab=128, context=24, bias=False)
    soul = tmp_path / "huge.soul"
    soul.write_text(print_program(random_program(np.random.default_rng(3), shape)))
    out = tmp_path / "huge.tap"
    result = run_soulc(soul, "--target", "zx128", "-o", out)
    assert result.returncode == 2
    assert re.match(r"soulc: error: the model does not fit: its data needs \d+ bytes, zx128 has \d+ free after "
                    r"the code \(\d+ always visible, 6 banks of 16384\)", result.stderr)
    assert not out.exists()


def _corrupted(tap: bytes, block: int) -> bytes:
    """The tape with one byte of its `block`-th block (0-based) flipped: its checksum fails."""
    data, offset = bytearray(tap), 0
    for _ in range(block):
        offset += 2 + int.from_bytes(data[offset:offset + 2], "little")
    data[offset + 100] ^= 0x55
    return bytes(data)


def test_the_bank_loader_reports_a_loading_error_and_a_48k(seed_128):
    tap, symbols, _ = seed_128
    data = tap.read_bytes()
    spectrum = Spectrum.load_tap(_corrupted(data, 4), "128", start=symbols["load_stop"], fast_load=False)
    spectrum.wait_for_text(r"^Tape loading error\.", 10 * SECOND)
    spectrum = Spectrum.load_tap(data, "48", start=symbols["load_stop"])
    spectrum.wait_for_text(r"^This tape needs a Spectrum 128K", 10 * SECOND)
