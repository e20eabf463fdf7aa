"""Fuzzing the inputs: whatever the bytes, soulc answers with a SoulcError (a one-line
`soulc: error:`), never another exception, never a hang, never a partial output file."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from soulc.errors import SoulcError
from soulc.ir.chat import respond
from soulc.ir.parser import parse
from soulc.ir.printer import print_program
from soulc.passes.kv_cache import kv_cache
from soulc.random_model import ModelShape, random_program

from conftest import run_soulc

SMALL = ModelShape(layers=1, width=4, heads=2, ffn=4, vocab=12, context=5, bias=True)
PIECES = ["{", "}", ",", ":", "=", "->", "%h", "@te", "@lut", "i8[", "i16[4]", "u8[128]", "tok", "shift",
          "-1", "0", "99999999999999999999", "0x1", "state", "const", "seq", "step", "memory", "data",
          '"', '"\\u00e9"', "merge", "special", "token", "matvec", "scores", "heads", "#", "\n", " "]


def base_texts():
    program = random_program(np.random.default_rng(7), SMALL)
    return [print_program(program), print_program(kv_cache(program))]


BASES = base_texts()


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 40)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        piece = draw(st.sampled_from(PIECES) | st.text(max_size=6))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + piece + text[i:]
        elif kind == "replace":
            text = text[:i] + piece + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated())
def test_ir_parser_accepts_or_explains(text):
    try:
        program = parse(text)
    except SoulcError:
        return
    respond(program, "hello")             # whatever verifies must also run


@pytest.mark.parametrize("text", [
    "", "soul", "soul 1", "\x00\xff", "soul 1\nsettings {\n  context 999999999999999999999\n}\n",
    BASES[1].replace("context 5", "context 100000"),
    BASES[1].replace("i16[5, 4]", "i16[100000000, 4]"),
    BASES[0].replace("i8[12, 4]", "i8[1000000000, 1000000000]"),
])
def test_ir_parser_on_hostile_texts(text):
    with pytest.raises(SoulcError):
        parse(text)


def test_cli_on_broken_ir_writes_no_file(tmp_path):
    source = tmp_path / "broken.soul"
    source.write_text(BASES[1][: len(BASES[1]) // 3])
    out = tmp_path / "out.soul"
    result = run_soulc(source, "--emit", "ir", "-o", out)
    assert result.returncode == 2 and result.stderr.startswith("soulc: error: ")
    assert "Traceback" not in result.stderr and not out.exists()
    binary = tmp_path / "binary.soul"
    binary.write_bytes(bytes(range(256)))
    result = run_soulc("chat", binary, input="hi\n")
    assert result.returncode == 2 and result.stderr.startswith("soulc: error: ")


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    from onnx_helpers import export, seed_tokenizer
    from soulc.model import SoulConfig, SoulModel
    import torch
    torch.manual_seed(0)
    model = SoulModel(SoulConfig(vocab=40, width=8, heads=2, layers=1, ffn=8, context=6)).eval()
    return export(model, tmp_path_factory.mktemp("fuzz") / "small.onnx", seed_tokenizer(40),
                  dynamo=False).read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_onnx_frontend_accepts_or_explains(small_onnx, tmp_path_factory, data):
    from soulc.frontends.onnx_model import load_onnx
    blob = bytearray(small_onnx)
    for _ in range(data.draw(st.integers(1, 6))):
        what = data.draw(st.sampled_from(["flip", "cut", "zero"]))
        at = data.draw(st.integers(0, len(blob) - 1))
        if what == "flip":
            blob[at] ^= 1 << data.draw(st.integers(0, 7))
        elif what == "cut":
            del blob[at:]
            if not blob:
                break
        else:
            blob[at:at + 8] = bytes(len(blob[at:at + 8]))
    path = tmp_path_factory.mktemp("m") / "mutant.onnx"
    path.write_bytes(bytes(blob))
    try:
        program = load_onnx(path, None)
    except SoulcError:
        return
    from soulc.passes.pipeline import HOST_PASSES, run_pipeline
    try:
        respond(run_pipeline(program, HOST_PASSES), "hi")
    except SoulcError:
        pass
