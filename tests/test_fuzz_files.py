"""Huge, truncated, malformed and adversarial model files, through the command line as a user
would give them: `soulc: error: ...` on one line, exit status 2, no traceback, no output file,
and an answer within a time limit (never a hang). Plus structural mutations of real ONNX graphs
(op types, inputs, attributes, constants) through the ONNX frontend, with hypothesis.
"""
import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from soulc.errors import SoulcError
from soulc.ir.parser import parse

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TIME_LIMIT = 120        # seconds for any one command


def soulc(*args, memory: int | None = None):
    """Runs soulc; `memory` caps its address space (bytes), so a runaway allocation fails fast."""
    def limit():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return subprocess.run([sys.executable, "-m", "soulc", *map(str, args)], capture_output=True, text=True,
                          timeout=TIME_LIMIT, preexec_fn=limit)


def refused(result, out=None, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soulc: error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    if out is not None:
        assert not out.exists()


@pytest.fixture(scope="module")
def seed_ir(seed, tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "seed.soul"
    result = soulc(seed.soul_bin, "--tokenizer", seed.tokenizer, "-o", path)
    assert result.returncode == 0, result.stderr
    return path.read_text()


# IR text ---------------------------------------------------------------------------------------

def test_a_million_character_name_compiles(seed_ir, tmp_path):
    source, out = tmp_path / "long.soul", tmp_path / "out.tap"
    source.write_text(seed_ir.replace("@lut", "@" + "l" * 1_000_000))
    result = soulc(source, "--target", "zx48", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.exists()


def test_a_huge_ir_text_of_comments_compiles(seed_ir, tmp_path):
    source, out = tmp_path / "big.soul", tmp_path / "out.soul"
    source.write_text(seed_ir + ("# " + "x" * 998 + "\n") * 20_000)          # 20 MB
    result = soulc(source, "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == seed_ir


@pytest.mark.parametrize("name, make, fragments", [
    ("data row of 3 million numbers",
     lambda ir: ir.replace("data @te {\n", "data @te {\n  " + "7 " * 3_000_000 + "\n", 1), ["@te", "3004096"]),
    ("10 MB of NUL bytes", lambda ir: "\0" * 10_000_000, ["line 1, column 1"]),
    ("a shape of 2^60 elements", lambda ir: ir.replace("i8[128, 32]", "i8[1073741824, 1073741824]", 1), []),
    ("20-digit context", lambda ir: ir.replace("context 20", "context 99999999999999999999", 1), []),
    ("no step", lambda ir: ir[: ir.index("\nstep {")], []),
])
def test_hostile_ir_text_is_refused(seed_ir, tmp_path, name, make, fragments):
    source, out = tmp_path / "m.soul", tmp_path / "out.tap"
    source.write_text(make(seed_ir))
    refused(soulc(source, "--target", "zx48", "-o", out), out, "m.soul", *fragments)


def test_invalid_utf8_ir_text_is_refused(seed_ir, tmp_path):
    source, out = tmp_path / "m.soul", tmp_path / "out.soul"
    source.write_bytes(seed_ir.encode()[:5000] + b"\xff\xfe\x80" + seed_ir.encode()[5000:])
    refused(soulc(source, "-o", out), out, "m.soul")


def test_a_number_of_100000_digits_is_refused(seed_ir, tmp_path):
    source, out = tmp_path / "m.soul", tmp_path / "out.soul"
    source.write_text(seed_ir.replace("context 20", "context " + "9" * 100_000, 1))
    refused(soulc(source, "-o", out), out, "m.soul")


def test_every_truncation_of_the_ir_text_is_refused_or_runs(seed_ir):
    from soulc.ir.chat import respond
    rng = np.random.default_rng(5)
    for cut in sorted(rng.integers(0, len(seed_ir), 150)):
        try:
            program = parse(seed_ir[:cut])
        except SoulcError:
            continue
        respond(program, "hello")       # a cut in the trailing data rows that still parses must run


# ONNX files ------------------------------------------------------------------------------------

def _model(nodes, initializers, outputs=None, opset=18):
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "T"])
    logits = outputs or [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "T", 4])]
    model = helper.make_model(helper.make_graph(nodes, "g", [ids], logits, initializers),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _table(name="te", rows=8):
    return numpy_helper.from_array(np.zeros((rows, 4), np.float32), name)


def _external(location):
    t = TensorProto(name="te", data_type=TensorProto.FLOAT, dims=[8, 4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "128")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return _model([helper.make_node("Gather", ["te", "ids"], ["logits"])], [t])


def _claims_huge_dims():
    t = TensorProto(name="te", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20], raw_data=b"\0" * 16)
    return _model([helper.make_node("Gather", ["te", "ids"], ["logits"])], [t])


def _nested_ifs(depth):
    def branch(d):
        out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])
        if d == 0:
            return helper.make_graph([helper.make_node("Identity", ["c"], ["o"])], f"b{d}", [], [out],
                                     [numpy_helper.from_array(np.ones(1, np.float32), "c")])
        return helper.make_graph([helper.make_node("If", ["k"], ["o"], then_branch=branch(d - 1),
                                                   else_branch=branch(0))], f"b{d}", [], [out],
                                 [numpy_helper.from_array(np.array(True), "k")])
    return _model([helper.make_node("If", ["k"], ["logits"], then_branch=branch(depth), else_branch=branch(0))],
                  [numpy_helper.from_array(np.array(True), "k")])


def _chain(length):
    nodes = [helper.make_node("Identity", ["ids" if i == 0 else f"x{i - 1}"], [f"x{i}"]) for i in range(length)]
    nodes.append(helper.make_node("Gather", ["te", f"x{length - 1}"], ["logits"]))
    return _model(nodes, [_table()])


HOSTILE_ONNX = {
    "external data outside the folder": lambda: _external("../../../../etc/passwd"),
    "missing external data": lambda: _external("nope.bin"),
    "huge dims with 16 bytes of data": _claims_huge_dims,
    "a cycle": lambda: _model([helper.make_node("Add", ["ids", "x"], ["x"]),
                               helper.make_node("Gather", ["te", "x"], ["logits"])], [_table()]),
    "20 nested Ifs": lambda: _nested_ifs(20),
    "a chain of 100000 nodes": lambda: _chain(100_000),
    "an unknown op": lambda: _model([helper.make_node("Frobnicate", ["ids"], ["logits"], domain="x.y")],
                                    [], opset=18),
    "a graph output nothing defines": lambda: _model([helper.make_node("Gather", ["te", "ids"], ["h"])],
                                                     [_table()]),
    "opset 7": lambda: _model([helper.make_node("Gather", ["te", "ids"], ["logits"])], [_table()], opset=7),
    "only the embedding": lambda: _model([helper.make_node("Gather", ["te", "ids"], ["logits"])], [_table()]),
}


@pytest.mark.parametrize("name", list(HOSTILE_ONNX))
def test_hostile_onnx_is_refused(seed, tmp_path, name):
    source, out = tmp_path / "m.onnx", tmp_path / "out.tap"
    source.write_bytes(HOSTILE_ONNX[name]().SerializeToString())
    refused(soulc(source, "--tokenizer", seed.tokenizer, "--target", "zx48", "-o", out), out, "m.onnx")


@pytest.mark.parametrize("content", [b"", b"\x08\x07", bytes(range(256)) * 40, b"soul 1\n",
                                     b"\x13\x00\x00\x03soul      " + b"\0" * 100])
def test_non_onnx_bytes_are_refused(seed, tmp_path, content):
    source, out = tmp_path / "m.onnx", tmp_path / "out.soul"
    source.write_bytes(content)
    refused(soulc(source, "--tokenizer", seed.tokenizer, "-o", out), out, "m.onnx")


def _folding_bomb():
    """A 200-byte model with a constant node that would be 18 GB: ConstantOfShape [70000, 70000]."""
    shape = numpy_helper.from_array(np.array([70_000, 70_000], np.int64), "shape")
    return _model([helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                   helper.make_node("Gather", ["te", "ids"], ["logits"])], [_table(), shape])


def test_a_constant_folding_bomb_is_refused(seed, tmp_path):
    source, out = tmp_path / "bomb.onnx", tmp_path / "out.soul"
    source.write_bytes(_folding_bomb().SerializeToString())
    refused(soulc(source, "--tokenizer", seed.tokenizer, "-o", out, memory=3 << 30), out, "bomb.onnx")


def test_a_constant_folding_bomb_is_refused_before_allocating(seed, tmp_path):
    source, out = tmp_path / "bomb.onnx", tmp_path / "out.soul"
    source.write_bytes(_folding_bomb().SerializeToString())
    result = soulc(source, "--tokenizer", seed.tokenizer, "-o", out, memory=3 << 30)
    refused(result, out, "bomb.onnx")
    assert "MemoryError" not in result.stderr


# Structural mutations of exported graphs --------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("torch")
    import torch

    from onnx_helpers import export, seed_tokenizer
    from soulc.model import SoulConfig, SoulModel
    folder = tmp_path_factory.mktemp("exported")
    models = []
    for i, config in enumerate([dict(), dict(fused_qkv=True, attention="sdpa", att_bias=True)]):
        torch.manual_seed(i)
        model = SoulModel(SoulConfig(vocab=40, width=8, heads=2, layers=1, ffn=8, context=6, **config)).eval()
        for dynamo in (False, True):
            path = export(model, folder / f"m{i}{int(dynamo)}.onnx", seed_tokenizer(40), dynamo=dynamo)
            models.append(onnx.load(str(path)))
    return models


OP_TYPES = ["Add", "Mul", "MatMul", "Reshape", "Transpose", "Softmax", "Relu", "Sqrt", "Div", "Gather", "Slice",
            "Where", "Identity", "Cast", "Pow", "ReduceMean", "Split", "Unsqueeze", "Squeeze", "Shape", "Concat",
            "Expand", "Range", "Sub", "Neg", "Exp", "Gemm", "Attention", "RMSNormalization"]


def _mutate_attribute(attribute, draw):
    a = attribute
    if a.type == onnx.AttributeProto.INT:
        a.i = draw(st.sampled_from([-3, -1, 0, 1, 2, 5, 1 << 40]))
    elif a.type == onnx.AttributeProto.INTS:
        a.ints[:] = [draw(st.sampled_from([-1, 0, 1, 2, 3, 7])) for _ in a.ints]
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = draw(st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e30]))
    elif a.type == onnx.AttributeProto.TENSOR:
        value = numpy_helper.to_array(a.t).copy()
        if value.dtype.kind == "f":
            with np.errstate(all="ignore"):
                value = (value * draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e30, 1e-30]))).astype(value.dtype)
        elif value.dtype.kind == "i":
            value = (value * draw(st.sampled_from([0, -1, 3, 1_000_000]))).astype(value.dtype)
        a.t.CopyFrom(numpy_helper.from_array(value, a.t.name))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_structurally_mutated_onnx_is_refused_or_runs(exported, tmp_path_factory, data):
    from soulc.frontends.onnx_model import load_onnx
    from soulc.ir.chat import respond
    from soulc.passes.pipeline import HOST_PASSES, run_pipeline
    model = onnx.ModelProto()
    model.CopyFrom(data.draw(st.sampled_from(exported)))
    nodes = model.graph.node
    for _ in range(data.draw(st.integers(1, 3))):
        node = nodes[data.draw(st.integers(0, len(nodes) - 1))]
        kind = data.draw(st.sampled_from(["op", "swap", "drop", "attribute", "initializer"]))
        if kind == "op":
            node.op_type = data.draw(st.sampled_from(OP_TYPES))
        elif kind == "swap" and len(node.input) > 1:
            node.input[:] = data.draw(st.permutations(list(node.input)))
        elif kind == "drop" and node.input:
            del node.input[data.draw(st.integers(0, len(node.input) - 1))]
        elif kind == "attribute" and node.attribute:
            _mutate_attribute(node.attribute[data.draw(st.integers(0, len(node.attribute) - 1))], data.draw)
        elif kind == "initializer" and model.graph.initializer:
            init = model.graph.initializer[data.draw(st.integers(0, len(model.graph.initializer) - 1))]
            value = numpy_helper.to_array(init)
            if value.dtype.kind == "f":
                with np.errstate(all="ignore"):
                    factor = data.draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e30, 1e-30]))
                    init.CopyFrom(numpy_helper.from_array((value * factor).astype(value.dtype), init.name))
    path = tmp_path_factory.mktemp("mutant") / "m.onnx"
    onnx.save(model, str(path))
    try:
        with np.errstate(all="ignore"):
            program = run_pipeline(load_onnx(path), HOST_PASSES)
    except SoulcError:
        return
    respond(program, "hi")


def test_a_reshape_to_zero_heads_is_refused(exported, tmp_path):
    model = onnx.ModelProto()
    model.CopyFrom(exported[2])      # fused q/k/v, TorchScript export (torch 2.13): the head count is a Constant
    [heads] = [n for n in model.graph.node if n.output[0] == "/layers.0/att/Constant_4_output_0"]
    count = numpy_helper.to_array(heads.attribute[0].t)
    assert count.reshape(-1).tolist() == [2]
    heads.attribute[0].t.CopyFrom(numpy_helper.from_array(np.zeros_like(count)))
    source, out = tmp_path / "m.onnx", tmp_path / "out.soul"
    onnx.save(model, str(source))
    refused(soulc(source, "-o", out), out, "m.onnx")


def test_an_attention_scale_divided_by_zero_is_refused(exported, tmp_path):
    model = onnx.ModelProto()
    model.CopyFrom(exported[0])                 # TorchScript export (torch 2.13): q.k / Constant_7
    divisors = {n.input[1] for n in model.graph.node if n.op_type == "Div"}
    [scale] = [n for n in model.graph.node if n.output[0] == "/layers.0/att/Constant_7_output_0"]
    assert scale.output[0] in divisors
    scale.attribute[0].t.CopyFrom(numpy_helper.from_array(np.zeros((), np.float32)))
    source, out = tmp_path / "m.onnx", tmp_path / "out.soul"
    onnx.save(model, str(source))
    refused(soulc(source, "-o", out), out, "m.onnx")
