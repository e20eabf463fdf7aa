"""Bad input: one line `soulc: error: ...`, exit status 2, no traceback, no output file."""
import json

import pytest

from conftest import run_soulc


def check_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soulc: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_model(tmp_path):
    check_error(run_soulc(tmp_path / "nope.bin", "--tokenizer", "x"), "nope.bin", "no such model file")


@pytest.mark.parametrize("cut", [3, 1000, 25903])
def test_truncated_soul_bin_writes_nothing(seed, tmp_path, cut):
    bad = tmp_path / "cut.bin"
    bad.write_bytes(seed.soul_bin.read_bytes()[:cut])
    out = tmp_path / "out.soul"
    check_error(run_soulc(bad, "--tokenizer", seed.tokenizer, "-o", out), "cut.bin", "truncated")
    assert not out.exists()


def test_soul_bin_without_tokenizer(seed):
    check_error(run_soulc(seed.soul_bin), "--tokenizer")


def test_tokenizer_that_does_not_match(seed, tmp_path):
    data = json.loads(seed.tokenizer.read_text())
    data["vocab"] = {k: v for k, v in data["vocab"].items() if v < 100}
    data["merges"] = [m for m in data["merges"] if "".join(m) in data["vocab"]]
    small = tmp_path / "small.json"
    small.write_text(json.dumps(data))
    check_error(run_soulc("chat", seed.soul_bin, "--tokenizer", small), "128 rows", "100 tokens")


@pytest.mark.parametrize("content", ["not json", "{}", '{"vocab": [1,2], "merges": []}'])
def test_malformed_tokenizer(seed, tmp_path, content):
    bad = tmp_path / "tok.json"
    bad.write_text(content)
    check_error(run_soulc(seed.soul_bin, "--tokenizer", bad), "tok.json")


def test_ir_text_error_names_file_line_and_column(seed, tmp_path):
    soul = tmp_path / "m.soul"
    run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "-o", soul)
    soul.write_text(soul.read_text().replace("argmax %logits", "argmax %logitz"))
    out = tmp_path / "out.soul"
    check_error(run_soulc(soul, "-o", out), "m.soul", "line", "column", "%logitz")
    assert not out.exists()


def test_context_larger_than_the_position_table(seed):
    check_error(run_soulc("chat", seed.soul_bin, "--tokenizer", seed.tokenizer, "--context", "30"),
                "--context 30", "20 rows")


def test_unknown_pass_and_target(seed):
    check_error(run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--print-after", "nope"), "kv_cache")
    check_error(run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--target", "vic20"), "vic20")
