"""soulc train: a tiny smoke run on the starter corpus, its determinism, and what it exports.

The run is the command line's, in-process (`soulc train examples/starter_corpus.txt ...` with a
tiny model, about ten seconds). Its ONNX file must load with soulc's ONNX frontend as it is
(tokenizer and chat settings from the metadata), equal the program training measured, chat
with `soulc chat`, and come out byte for byte the same from a second run.
"""
import builtins
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_soulc

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
STARTER = REPO / "examples" / "starter_corpus.txt"
TINY = ["--vocab", "64", "--layers", "1", "--width", "16", "--heads", "2", "--ffn", "32", "--context", "24",
        "--epochs", "120", "--eval-every", "60", "--lr", "1e-2", "--seed", "3"]
PROMPTS = ["hello", "who are you", "tell me a joke", "I am SAD", "zzz", "", "meaning of life?"]


def train_cli(output, *extra):
    from soulc.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", str(STARTER), "-o", str(output), *TINY, *extra])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "tiny.onnx"
    code, log = train_cli(path)
    assert code == 0, log
    return path, log


@pytest.fixture(scope="module")
def programs(tiny):
    from soulc.frontends.onnx_model import load_onnx
    from soulc.passes.quantise import quantise
    floats = load_onnx(tiny[0])
    return floats, quantise(floats)


def test_the_log_shows_progress_probes_and_the_kept_checkpoint(tiny):
    path, log = tiny
    assert "epoch 60:" in log and "epoch 120:" in log
    assert "'hello'" in log and " float " in log and " integer " in log
    assert "kept epoch" in log and f"wrote {path}" in log


def test_two_runs_give_the_same_onnx_bytes(tiny, tmp_path):
    again = tmp_path / "again.onnx"
    code, log = train_cli(again)
    assert code == 0, log
    assert again.read_bytes() == tiny[0].read_bytes()
    other = tmp_path / "other.onnx"
    code, log = train_cli(other, "--seed", "4", "--epochs", "2", "--eval-every", "2")
    assert code == 0, log
    assert other.read_bytes() != tiny[0].read_bytes()


def test_the_export_carries_tokenizer_settings_and_no_paths(tiny, programs):
    import onnx
    path = tiny[0]
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(meta) == {"soulc.tokenizer", "soulc.settings", "soulc.training"}
    settings = json.loads(meta["soulc.settings"])
    assert settings == {"context": 24, "argmax": [3, 64], "stop": [0, 1, 3], "prompt_prefix": [1],
                        "prompt_suffix": [1], "max_reply": 0}
    assert json.loads(meta["soulc.training"])["seed"] == 3
    blob = path.read_bytes()
    assert str(STARTER).encode() not in blob and str(path.parent).encode() not in blob
    assert [i.name for i in model.graph.input] == ["ids"] and [o.name for o in model.graph.output] == ["logits"]
    floats, program = programs
    s = program.settings
    assert (s.context, s.argmax, s.stop, s.prompt_prefix, s.prompt_suffix) == (24, (3, 64), (0, 1, 3), (1,), (1,))
    assert program.tokenizer.tokens[:4] == ["<PAD>", "<SEP>", "<UNK>", "<END>"]


def test_weights_are_already_on_their_fixed_point_grid(programs):
    floats, program = programs
    for name in floats.float_consts():
        c = program.consts[name]
        if c.shift is not None:
            assert np.array_equal(c.data.astype(np.float64) / 2.0**c.shift, floats.consts[name].data), name


def test_onnx_program_equals_the_one_training_measured(tiny, programs):
    """Training builds its integer program from the weights; the ONNX frontend must get the same."""
    from soulc.train.export import chat_settings, int_program
    from soulc.train.qat import Shape

    model, tokenizer = _qat_from_onnx(tiny[0], programs[1])
    direct = int_program(model, tokenizer, chat_settings(model.shape))
    _, program = programs
    assert direct.settings == program.settings
    assert list(direct.consts) == list(program.consts)
    for name, c in program.consts.items():
        assert np.array_equal(direct.consts[name].data, c.data) and direct.consts[name].shift == c.shift, name
    assert [(op.opcode, op.args, op.attrs) for op in direct.body] == \
        [(op.opcode, op.args, op.attrs) for op in program.body]
    assert isinstance(model.shape, Shape)


def test_simulation_batch_and_interpreter_are_bit_exact(tiny, programs):
    """QATModel.forward_sim (training), batch_logits (evaluation) and the IR interpreter agree exactly,
    and forward_float equals onnxruntime on the export."""
    import onnxruntime
    from soulc.ir.interpreter import Interpreter
    from soulc.passes.kv_cache import kv_cache
    from soulc.train.batched import batch_logits
    from soulc.train.corpus import read_corpus
    from soulc.train.data import sequences

    _, program = programs
    model, tokenizer = _qat_from_onnx(tiny[0], program)
    seqs = sequences(read_corpus(STARTER), tokenizer, 24)
    ids = seqs.ids[:24]
    with torch.no_grad():
        sim = (model.forward_sim(torch.from_numpy(ids)) * 256).numpy()
        flt = model.forward_float(torch.from_numpy(ids)).numpy()
    batch = batch_logits(program, ids)
    assert np.array_equal(sim, batch)
    step = kv_cache(program)
    it = Interpreter(step)
    for i in range(6):
        it.reset()
        for t in range(seqs.lengths[i]):
            it.next_token(int(ids[i, t]))
            assert np.array_equal(it.values["logits"], batch[i, t])
    session = onnxruntime.InferenceSession(str(tiny[0]), providers=["CPUExecutionProvider"])
    for i in range(4):
        out = session.run(["logits"], {"ids": ids[i:i + 1, : seqs.lengths[i]]})[0][0]
        assert np.allclose(out, flt[i, : seqs.lengths[i]], atol=1e-4)


def test_soulc_chat_on_the_export(tiny, programs):
    from soulc.ir.chat import respond
    from soulc.passes.kv_cache import kv_cache
    result = run_soulc("chat", tiny[0], input="".join(p + "\n" for p in PROMPTS))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")[:-1]
    step = kv_cache(programs[1])
    assert lines == [respond(step, p).reply or "" for p in PROMPTS]
    assert lines[PROMPTS.index("")] == ""


def test_replies_stop_on_end(programs):
    """<END> is in the argmax range and stops a reply; with the seed's range it could never be chosen."""
    from soulc.ir.chat import encode, frame_prompt, generate
    from soulc.passes.kv_cache import kv_cache
    from soulc.train.corpus import read_corpus
    step = kv_cache(programs[1])
    ended = 0
    for e in read_corpus(STARTER):
        prompt = frame_prompt(step, encode(step.tokenizer, e.prompt))
        reply = generate(step, prompt, None)
        ended += len(prompt) + len(reply) < step.settings.context
    assert ended > 0


def test_quant_report_prints_the_corpus_figures(tiny):
    result = run_soulc(tiny[0], "--quant-report", "--corpus", STARTER)
    assert result.returncode == 0, result.stderr
    assert "teacher-forced next token on the responses: integer = float at" in result.stdout
    assert "replies: the integer reply is exactly the float reply for" in result.stdout
    result = run_soulc(tiny[0], "--corpus", STARTER)
    assert result.returncode == 2 and "--corpus goes with --quant-report" in result.stderr


def test_missing_torch_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from soulc.cli import main
    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    out = tmp_path / "x.onnx"
    assert main(["train", str(STARTER), "-o", str(out)]) == 2
    assert capsys.readouterr().err == "soulc: error: soulc train needs PyTorch: pip install 'soulc[train]'\n"
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--width", "30", "--heads", "4"], "--width 30 is not a multiple of --heads 4"),
    (["--vocab", "300"], "--vocab 300: use 8 to 256"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--context", "3"], "--context 3: use 4 to 255 (a prompt takes at least 3 tokens)"),
])
def test_option_errors(tmp_path, args, message):
    result = run_soulc("train", STARTER, "-o", tmp_path / "x.onnx", *args)
    assert result.returncode == 2
    assert result.stderr == f"soulc: error: {message}\n"
    assert not (tmp_path / "x.onnx").exists()


def test_corpus_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("<SEP>hi<SEP>hello<SEP>\njust text\n")
    result = run_soulc("train", bad, "-o", tmp_path / "x.onnx")
    assert result.returncode == 2 and result.stderr.startswith(f"soulc: error: {bad}:2: not an exchange")
    result = run_soulc("train", tmp_path / "missing.txt", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2 and "cannot read the corpus" in result.stderr


def _qat_from_onnx(path, program):
    """A QATModel holding the export's weights (they are on their grids, so snapping keeps them)."""
    import onnx
    from soulc.train.qat import QATModel, Shape
    from soulc.train.tokenizer import as_tokenizer

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    training = json.loads(meta["soulc.training"])
    tokenizer = as_tokenizer(json.loads(meta["soulc.tokenizer"]))
    shape = Shape(vocab=len(tokenizer.tokens), width=training["width"], heads=training["heads"],
                  layers=training["layers"], ffn=training["ffn"], context=training["context"],
                  score_scale=training["score_scale"])
    model = QATModel(shape)
    names = {"te.weight": "te", "pe.weight": "pe", "norm.w": "norm", "out.w": "out"}
    for i in range(shape.layers):
        L = f"layers.{i}."
        names |= {L + "n1.w": f"l{i}.n1", L + "n2.w": f"l{i}.n2"}
        names |= {f"{L}att.{n}.w": f"l{i}.{n}" for n in ("q", "k", "v", "proj")}
        names |= {f"{L}ffn.{n}.w": f"l{i}.{n}" for n in ("fc1", "fc2")}
        names |= {f"{L}ffn.{n}.b": f"l{i}.{n}_b" for n in ("fc1", "fc2")}
    state = {}
    for key, name in names.items():
        c = program.consts[name]
        scale = 2.0 ** c.shift
        state[key] = torch.tensor(c.data.astype(np.float64) / scale, dtype=torch.float32)
    model.load_state_dict(state)
    return model.eval(), tokenizer


def _with_settings(src, dst, value):
    import onnx
    model = onnx.load(str(src))
    for prop in list(model.metadata_props):
        if prop.key == "soulc.settings":
            model.metadata_props.remove(prop)
    if value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "soulc.settings", value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, str(dst))
    return dst


def test_settings_metadata_is_optional_and_context_overrides(tiny, tmp_path):
    from soulc.frontends.onnx_model import load_onnx
    plain = load_onnx(_with_settings(tiny[0], tmp_path / "plain.onnx", None))
    assert (plain.settings.context, plain.settings.argmax, plain.settings.stop) == (24, (4, 64), (0, 1, 3))
    assert load_onnx(tiny[0], context=12).settings.context == 12
    partial = load_onnx(_with_settings(tiny[0], tmp_path / "p.onnx", {"max_reply": 5, "context": 20}))
    assert (partial.settings.context, partial.settings.max_reply, partial.settings.argmax) == (20, 5, (4, 64))


@pytest.mark.parametrize("value, message", [
    ("{not json", "the metadata soulc.settings is not valid JSON"),
    ([3, 64], "the metadata soulc.settings is not a JSON object"),
    ({"argmax": [3, 65]}, "argmax must be a list of token ids"),
    ({"argmax": [9, 9]}, "argmax [9, 9] is not a range"),
    ({"stop": [64]}, "stop must be a list of token ids of the vocabulary of 64"),
    ({"max_reply": -1}, "max_reply must be a count of tokens"),
    ({"context": 25}, "context 25: the model's position table has 24 rows"),
    ({"temperature": 1}, "unknown setting 'temperature'"),
])
def test_settings_metadata_errors(tiny, tmp_path, value, message):
    path = _with_settings(tiny[0], tmp_path / "bad.onnx", value)
    result = run_soulc(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"soulc: error: {path}: ") and message in result.stderr, result.stderr
