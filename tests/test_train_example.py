"""The shipped example soul (examples/soul.onnx, built by examples/rebuild.sh from the seed corpus).

It must compile without torch (the README's main command), meet the quantisation figures on the
seed corpus (integer = float next token at >= 95% of the teacher-forced response positions, the
exact float reply for >= 60% of the inputs; measured here on a sample, with the IR interpreter
against onnxruntime as `soulc --quant-report --corpus` does), carry the options of its rebuild
command, and chat the same on the host and on the emulated 48K Spectrum.
"""
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_soulc

REPO = Path(__file__).resolve().parents[1]
SOUL = REPO / "examples" / "soul.onnx"
REBUILD = REPO / "examples" / "rebuild.sh"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "seed" / "corpus.txt"
PROMPTS = ["hello", "how are you?", "who are you?", "i am sad", "tell me a joke", "i love you"]
SAMPLE = 500            # exchanges of the corpus measured here (the whole corpus: see the report)

NO_TORCH = ("import sys; sys.modules['torch'] = None; from soulc.cli import main; "
            "sys.exit(main(sys.argv[1:]))")


def soulc_without_torch(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def program():
    from soulc.frontends.onnx_model import load_onnx
    return load_onnx(SOUL)


def test_the_example_is_small_and_carries_everything_to_compile(program):
    assert SOUL.stat().st_size < 200_000
    s = program.settings
    assert s.argmax[0] == 3 and 3 in s.stop            # <END> can be chosen, and stops the reply
    weights = sum(c.type.size for c in program.consts.values() if c.type.dtype == "f32" and c.name != "lut")
    assert weights < 30_000


def test_compiles_for_zx48_without_torch(tmp_path):
    tap = tmp_path / "soul.tap"
    result = soulc_without_torch(SOUL, "--target", "zx48", "-o", tap)
    assert result.returncode == 0, result.stderr
    assert tap.stat().st_size > 20_000
    chat = soulc_without_torch("chat", SOUL)
    assert chat.returncode == 0, chat.stderr


def test_rebuild_command_matches_the_training_metadata():
    """examples/rebuild.sh holds the command that built the file; its options are recorded in it."""
    import onnx
    line = next(ln for ln in REBUILD.read_text().splitlines() if ln.strip().startswith("soulc train"))
    args = shlex.split(line)
    options = {args[i][2:].replace("-", "_"): args[i + 1] for i in range(len(args) - 1)
               if args[i].startswith("--")}
    meta = {p.key: p.value for p in onnx.load(str(SOUL)).metadata_props}
    training = json.loads(meta["soulc.training"])
    for key, value in options.items():
        assert str(training[key]) == value or float(training[key]) == float(value), key


def test_figures_on_the_seed_corpus(program):
    pytest.importorskip("onnxruntime")
    from soulc.passes.quantise import quantise
    from soulc.quant_report import FloatModel, corpus_figures
    count, f = corpus_figures(quantise(program), FloatModel(SOUL), CORPUS, limit=SAMPLE)
    assert count == SAMPLE
    assert f.agreement >= 0.95, f
    assert f.exact_rate >= 0.60, f


def test_host_chat_and_emulated_zx48_chat_are_the_same(tmp_path, program):
    from soulc.ir.chat import respond
    from soulc.passes.kv_cache import kv_cache
    from soulc.passes.quantise import quantise
    step = kv_cache(quantise(program))
    host = run_soulc("chat", SOUL, input="".join(p + "\n" for p in PROMPTS))
    assert host.returncode == 0, host.stderr
    assert host.stdout.splitlines() == [respond(step, p).reply for p in PROMPTS]
    tap = tmp_path / "soul.tap"
    assert run_soulc(SOUL, "--target", "zx48", "-o", tap).returncode == 0
    args = [a for p in PROMPTS for a in ("--prompt", p)]
    spectrum = run_soulc("run", tap, *args)
    assert spectrum.returncode == 0, spectrum.stderr
    said = [line[len("ZX> "):] for line in spectrum.stdout.splitlines() if line.startswith("ZX> ")]
    assert said == [line.rstrip() for line in host.stdout.splitlines()]     # the screen drops trailing spaces
