"""Inspecting the compiler from the command line: IR dumps after passes, every --emit kind,
the memory map, --list-targets and --help; and the README's IR dump is a real one."""
import re

import pytest

from soulc.cli import chat_parser, compile_parser, run_parser
from soulc.targets.zx.tap import code_blocks

from conftest import REPO, run_soulc

ZX48_PASSES = ["quantise", "kv_cache", "schedule", "allocate"]


def seed_args(seed, *more):
    return [seed.soul_bin, "--tokenizer", seed.tokenizer, *more]


def dumps(stdout: str) -> list[tuple[str, str]]:
    """(pass, IR text) for each `# IR after PASS` header, in order."""
    parts = re.split(r"^# IR after (\S+)\n", stdout, flags=re.M)
    assert parts[0] == ""
    return list(zip(parts[1::2], parts[2::2]))


def test_print_after_all_prints_one_dump_per_pass_in_order(seed, tmp_path):
    out = tmp_path / "soul.tap"
    result = run_soulc(*seed_args(seed, "--target", "zx48", "--print-after-all", "-o", out))
    assert result.returncode == 0, result.stderr
    found = dumps(result.stdout)
    assert [name for name, _ in found] == ZX48_PASSES
    for name, text in found:
        assert text.startswith("soul 1\n") and "\ndata @" not in text     # tensor data left out
    (_, quantised), (_, cached), (_, scheduled), (_, placed) = found
    assert scheduled.index("store @l1.v.cache") < scheduled.index("%l1.q = matvec")      # output-only ops last
    assert "\nseq {\n" in quantised and "memory {" not in quantised
    assert "\nstep {\n" in cached and "store @l0.k.cache, %l0.k" in cached
    assert "\nmemory {\n" in placed and "memory {" not in cached
    assert out.read_bytes()[:2] == b"\x13\x00"       # the TAP was written as well


def test_print_after_without_a_target_covers_the_host_pipeline(seed):
    result = run_soulc(*seed_args(seed, "--print-after-all", "-o", "/dev/null"))
    assert [name for name, _ in dumps(result.stdout)] == ["quantise", "kv_cache"]


def test_print_after_allocate_shows_the_memory_block(seed):
    result = run_soulc(*seed_args(seed, "--target", "zx48", "--print-after", "allocate"))
    assert result.returncode == 0, result.stderr
    [(name, text)] = dumps(result.stdout)
    assert name == "allocate"
    block = text[text.index("\nmemory {\n"):].split("\n}\n")[0]
    placed = dict(re.findall(r"^  ([@%][\w.]+) 0x([0-9A-F]{4})$", block, flags=re.M))
    for name in ("@te", "@pe", "@l0.k.cache", "@l1.v.cache", "%h", "%logits", "%next"):
        assert name in placed
    assert all(0x5E00 <= int(address, 16) <= 0xFFFF for address in placed.values())


def test_print_after_repeated_prints_in_pipeline_order(seed):
    result = run_soulc(*seed_args(seed, "--target", "zx48", "--print-after", "allocate",
                                  "--print-after", "quantise"))
    assert [name for name, _ in dumps(result.stdout)] == ["quantise", "allocate"]


def test_print_after_a_target_pass_without_the_target_is_an_error(seed):
    result = run_soulc(*seed_args(seed, "--print-after", "allocate"))
    assert result.returncode == 2
    assert "no such pass; the pipeline is: quantise, kv_cache" in result.stderr


def test_emit_bin_is_the_tap_code_block(seed, tmp_path):
    tap, binary = tmp_path / "soul.tap", tmp_path / "soul.bin"
    for path, kind in ((tap, "tap"), (binary, "bin")):
        result = run_soulc(*seed_args(seed, "--target", "zx48", "--emit", kind, "-o", path))
        assert result.returncode == 0, result.stderr
    [(address, code)] = code_blocks(tap.read_bytes())
    assert binary.read_bytes() == code and address == 0x5E00


def test_emit_sym_lists_labels_by_address(seed):
    result = run_soulc(*seed_args(seed, "--target", "zx48", "--emit", "sym"))
    assert result.returncode == 0, result.stderr
    entries = [re.fullmatch(r"(\w+) EQU 0x([0-9A-F]{4})", line) for line in result.stdout.splitlines()]
    assert entries and all(entries)
    symbols = {m[1]: int(m[2], 16) for m in entries}
    addresses = [int(m[2], 16) for m in entries]
    assert addresses == sorted(addresses)
    assert symbols["entry"] == 0x5E00
    for label in ("chat_main", "chat_seq", "chat_len", "chat_line", "step", "step_op0", "STEP_TOKEN"):
        assert label in symbols


def test_emit_asm_and_ir_are_text_on_stdout(seed):
    asm = run_soulc(*seed_args(seed, "--target", "zx48", "--emit", "asm"))
    assert asm.returncode == 0 and "ORG" in asm.stdout and "step:" in asm.stdout
    ir = run_soulc(*seed_args(seed, "--target", "zx48", "--emit", "ir"))
    assert ir.returncode == 0 and "\nmemory {\n" in ir.stdout and "\ndata @te {\n" in ir.stdout


@pytest.mark.parametrize("kind", ["bin", "tap"])
def test_binary_emits_refuse_stdout(seed, kind):
    result = run_soulc(*seed_args(seed, "--target", "zx48", "--emit", kind))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"soulc: error: --emit {kind} is binary: write it with -o FILE\n"


def test_a_target_without_emit_or_output_refuses_stdout(seed):
    result = run_soulc(*seed_args(seed, "--target", "zx48"))
    assert result.returncode == 2 and "--emit tap is binary: write it with -o FILE" in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--emit", "tap"], "--emit tap needs a --target"),
    (["--memory-map"], "--memory-map needs a --target"),
    (["--target", "zx48", "--emit", "prg"], "--emit prg: zx48 emits ir, asm, sym, bin, tap"),
])
def test_emit_and_memory_map_errors(seed, options, message):
    result = run_soulc(*seed_args(seed, *options))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_list_targets():
    result = run_soulc("--list-targets")
    assert result.returncode == 0
    assert re.search(r"^zx48 +ZX Spectrum 48K", result.stdout, flags=re.M)


@pytest.mark.parametrize("command, parser", [([], compile_parser), (["chat"], chat_parser),
                                             (["run"], run_parser)])
def test_help_mentions_every_option(command, parser):
    result = run_soulc(*command, "--help")
    assert result.returncode == 0
    text = result.stdout
    for action in parser()._actions:
        for option in action.option_strings:
            assert option in text, option
    if not command:
        for word in ("chat", "run", "train", "--list-targets", "asm, sym, bin, tap"):
            assert word in text


def test_readme_ir_dump_is_the_seed_dump(seed):
    """Every line of the README's IR example is in the real dump (a line ending in ' ...' is
    a shortened one: its start is)."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("## The IR", 1)[1].split("```", 2)[1]
    real = run_soulc(*seed_args(seed)).stdout.splitlines()
    for line in block.splitlines()[1:]:
        if line.strip() in ("", "...", "..."):
            continue
        if line.endswith(" ..."):
            assert any(r.startswith(line[:-4]) for r in real), line
        else:
            assert line in real, line
