"""The seed's float weights, written as a torch module and exported to ONNX, compile to the seed.

Each exporter (dynamo and TorchScript) and each attention style (hand-written and
scaled_dot_product_attention), at the default opset and at opsets 17/18 and 23 (where the
dynamo exporter writes the Attention op), must give soul.bin's tensors byte for byte under
--numerics soulplayer, and `soulc chat` on the export must reproduce replies.json.
"""
import numpy as np
import pytest

from conftest import run_soulc
from onnx_helpers import export, float_logits, ir_logits

torch = pytest.importorskip("torch")

# (dynamo, attention, opset); the dynamo exporter cannot go below opset 18.
VARIANTS = [
    (True, "manual", None), (True, "sdpa", None), (False, "manual", None), (False, "sdpa", None),
    (True, "sdpa", 23), (True, "manual", 18), (False, "manual", 17), (False, "sdpa", 23),
]
MAIN = VARIANTS[:4]


def _name(variant):
    dynamo, attention, opset = variant
    return f"{'dynamo' if dynamo else 'torchscript'}-{attention}-{opset or 'default'}"


@pytest.fixture(scope="module")
def exports(seed, tmp_path_factory):
    from soulc.model import load_seed
    folder = tmp_path_factory.mktemp("seed_onnx")
    paths = {}
    for variant in VARIANTS:
        dynamo, attention, opset = variant
        model = load_seed(seed.weights, attention=attention)
        # the tokenizer goes into the metadata of half the exports, to test both ways in
        tokenizer = seed.tokenizer if opset is None else None
        paths[variant] = export(model, folder / f"{_name(variant)}.onnx", tokenizer, dynamo=dynamo, opset=opset)
    return paths


@pytest.mark.parametrize("variant", MAIN, ids=_name)
def test_chat_on_the_export_reproduces_replies_json(seed, exports, variant):
    prompts = "".join(entry["prompt"] + "\n" for entry in seed.replies)
    result = run_soulc("chat", exports[variant], "--tokenizer", seed.tokenizer, "--numerics", "soulplayer",
                       "--context", "20", input=prompts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [entry["reply"] for entry in seed.replies]


@pytest.mark.parametrize("variant", VARIANTS, ids=_name)
def test_quantised_tensors_equal_soul_bin(seed, seed_program, exports, variant):
    from soulc.frontends.onnx_model import load_onnx
    from soulc.frontends.tokenizer_json import load_tokenizer
    from soulc.passes.quantise import quantise
    tokenizer = None if variant[2] is None else load_tokenizer(seed.tokenizer)
    float_program = load_onnx(exports[variant], tokenizer, numerics="soulplayer", context=20)
    assert float_program.float_consts()
    program = quantise(float_program)
    assert list(program.consts) == list(seed_program.consts)
    for name, want in seed_program.consts.items():
        got = program.consts[name]
        assert got.type == want.type and got.shift == want.shift, name
        assert np.array_equal(got.data, want.data), name
    assert [(op.opcode, op.args, op.attrs) for op in program.body] == \
           [(op.opcode, op.args, op.attrs) for op in seed_program.body]
    assert program.settings == seed_program.settings


def test_default_context_is_the_position_table(exports):
    from soulc.frontends.onnx_model import load_onnx
    program = load_onnx(exports[MAIN[0]])
    assert program.settings.context == 32 and program.consts["pe"].type.shape == (32, 32)


def test_calibrated_table_is_closer_to_the_float_model(seed, exports):
    """Next-token agreement with the float model, on a few sequences from the seed's corpus."""
    from soulc.frontends.onnx_model import load_onnx
    from soulc.ir.chat import encode
    from soulc.model import load_seed
    from soulc.passes.quantise import quantise
    model = load_seed(seed.weights)
    lines = (seed.dir / "corpus.txt").read_text().splitlines()[:40:4]
    agree = {}
    for numerics in ("calibrated", "soulplayer"):
        program = quantise(load_onnx(exports[MAIN[0]], numerics=numerics, context=20))
        hits = total = 0
        for line in lines:
            ids = [1] + encode(program.tokenizer, line.replace("<SEP>", " "))[:19]
            ref = float_logits(model, ids)[:, 4:].argmax(1)
            got = ir_logits(program, ids)[:, 4:].argmax(1)
            hits, total = hits + int((ref == got).sum()), total + len(ids)
        agree[numerics] = hits / total
    assert agree["calibrated"] > agree["soulplayer"], agree
    assert agree["calibrated"] > 0.8, agree


def test_quant_report_on_the_seed(seed, exports):
    pytest.importorskip("onnxruntime")
    result = run_soulc(exports[MAIN[0]], "--quant-report", "--context", "20")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("l0.q", "32x32", "softmax tables", "calibrated to softmax(0.3536 * q.k)",
                     "saturation:", "next token: the integer model's equals the float model's at"):
        assert fragment in out, out
    seedlike = run_soulc(exports[MAIN[0]], "--quant-report", "--context", "20", "--numerics", "soulplayer")
    assert "the seed's table" in seedlike.stdout, seedlike.stderr
