"""ONNX input soulc cannot compile: one line `soulc: error: ...`, exit status 2, no output file."""
import json

import numpy as np
import pytest

from conftest import run_soulc
from onnx_helpers import export, seed_tokenizer

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

CONFIG = dict(vocab=64, width=16, heads=2, layers=1, ffn=32, context=12)


def check_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soulc: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def small_model(**changes):
    from soulc.model import SoulConfig, SoulModel
    torch.manual_seed(0)
    return SoulModel(SoulConfig(**{**CONFIG, **changes})).eval()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small model exported by the TorchScript exporter, with its tokenizer in the metadata."""
    path = tmp_path_factory.mktemp("base") / "base.onnx"
    return export(small_model(), path, seed_tokenizer(64), dynamo=False)


def edited(base, path, change):
    model = onnx.load(str(base))
    change(model)
    onnx.save(model, str(path))
    return path


def test_the_base_model_compiles(base):
    result = run_soulc(base, "--emit", "ir")
    assert result.returncode == 0, result.stderr


def test_unsupported_op_names_op_node_and_patterns(base, tmp_path):
    def relu_to_sin(model):
        node = next(n for n in model.graph.node if n.op_type == "Relu")
        node.op_type, node.name = "Sin", "my_activation"
    bad = edited(base, tmp_path / "sin.onnx", relu_to_sin)
    out = tmp_path / "out.soul"
    line = check_error(run_soulc(bad, "-o", out), "sin.onnx", "unsupported ONNX op 'Sin' (node 'my_activation')")
    for pattern in ("RMSNorm", "causal", "Softmax", "Relu", "RMSNormalization", "Attention op"):
        assert pattern in line
    assert not out.exists()


def test_layer_norm_is_not_rmsnorm(tmp_path):
    from soulc.model import RMSNorm
    model = small_model()
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, RMSNorm):
                setattr(module, name, torch.nn.LayerNorm(CONFIG["width"]))
    path = export(model, tmp_path / "layernorm.onnx", seed_tokenizer(64), dynamo=False)
    check_error(run_soulc(path), "unsupported ONNX op 'LayerNormalization'")


def test_attention_without_causal_mask(tmp_path):
    from soulc.model import Attention
    model = small_model(attention="sdpa")
    original = Attention.forward

    def bidirectional(self, x):
        b, t, d = x.shape
        q, k, v = (m(x).view(b, t, self.heads, d // self.heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))
    Attention.forward = bidirectional
    try:
        path = export(model, tmp_path / "bidirectional.onnx", seed_tokenizer(64), dynamo=False)
    finally:
        Attention.forward = original
    check_error(run_soulc(path), "Softmax", "without a causal mask")


def test_unknown_structure_names_the_difference(base, tmp_path):
    """A graph built of known pieces in an order the decoder does not have (no final norm)."""
    def drop_final_norm(model):
        nodes = list(model.graph.node)
        matmul = next(n for n in reversed(nodes) if n.op_type == "MatMul")
        # the last MatMul is the output projection: feed it the residual stream instead of the norm
        residual = next(n for n in reversed(nodes) if n.op_type == "Add" and n.output[0] != matmul.output[0]
                        and any(m.op_type == "Pow" and m.input[0] == n.output[0] for m in nodes))
        matmul.input[0] = residual.output[0]
        used = {name for n in nodes for name in n.input} | {o.name for o in model.graph.output}
        changed = True
        while changed:
            changed = False
            for n in list(model.graph.node):
                if not any(o in used for o in n.output):
                    model.graph.node.remove(n)
                    changed = True
            used = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    bad = edited(base, tmp_path / "nonorm.onnx", drop_final_norm)
    check_error(run_soulc(bad), "not the decoder soulc compiles", "rmsnorm")


@pytest.mark.parametrize("cut", [10, 2000, 0.5, -3])
def test_truncated_model(base, tmp_path, cut):
    blob = base.read_bytes()
    cut = int(len(blob) * cut) if isinstance(cut, float) else cut
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(blob[:cut])
    out = tmp_path / "out.soul"
    check_error(run_soulc(bad, "-o", out), "cut.onnx")
    assert not out.exists()


def test_not_onnx(tmp_path):
    bad = tmp_path / "text.onnx"
    bad.write_text("this is not a model\n")
    check_error(run_soulc(bad), "text.onnx", "cannot read the ONNX model")


def test_external_data_missing_or_truncated(base, tmp_path):
    model = onnx.load(str(base))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    assert run_soulc(path).returncode == 0
    data = (tmp_path / "ext.bin").read_bytes()
    (tmp_path / "ext.bin").write_bytes(data[: len(data) // 2])
    check_error(run_soulc(path), "ext.onnx", "truncated")
    (tmp_path / "ext.bin").unlink()
    check_error(run_soulc(path), "ext.onnx", "ext.bin")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_infinite_weight(base, tmp_path, value):
    def poison(model):
        init = next(i for i in model.graph.initializer if i.name == "pe.weight")
        data = onnx.numpy_helper.to_array(init).copy()
        data[3, 1] = value
        init.CopyFrom(onnx.numpy_helper.from_array(data, init.name))
    bad = edited(base, tmp_path / "poisoned.onnx", poison)
    check_error(run_soulc(bad), "poisoned.onnx", "pe.weight", "NaN")


def test_tokenizer_that_does_not_match(base, seed):
    check_error(run_soulc(base, "--tokenizer", seed.tokenizer), "64 rows", "128 tokens")


def test_no_tokenizer(base, tmp_path):
    bare = edited(base, tmp_path / "bare.onnx", lambda m: m.metadata_props.__delitem__(slice(None)))
    check_error(run_soulc("chat", bare), "bare.onnx", "--tokenizer")
    assert run_soulc(bare, "--tokenizer", tmp_path / "tok.json").returncode == 2


def test_metadata_tokenizer_that_is_not_json(base, tmp_path):
    def spoil(model):
        next(p for p in model.metadata_props if p.key == "soulc.tokenizer").value = "{not json"
    bad = edited(base, tmp_path / "badtok.onnx", spoil)
    check_error(run_soulc(bad), "badtok.onnx", "soulc.tokenizer", "not valid JSON")


def test_context_beyond_the_position_table(base):
    check_error(run_soulc("chat", base, "--context", "40"), "--context 40", "12 rows")


def test_opset_outside_17_to_23(tmp_path):
    path = export(small_model(), tmp_path / "old.onnx", seed_tokenizer(64), dynamo=False, opset=16)
    check_error(run_soulc(path), "opset 16", "17 to 23")


def test_input_that_is_not_token_ids(base, tmp_path):
    def float_input(model):
        model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    bad = edited(base, tmp_path / "floatin.onnx", float_input)
    check_error(run_soulc(bad), "floatin.onnx")


def test_quant_report_needs_a_float_model(seed):
    check_error(run_soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "--quant-report"), "already integer")


def test_tokenizer_json_round_trip_via_metadata(base):
    """The metadata tokenizer is the same JSON format as tokenizer.json."""
    value = next(p.value for p in onnx.load(str(base)).metadata_props if p.key == "soulc.tokenizer")
    assert json.loads(value) == seed_tokenizer(64)
