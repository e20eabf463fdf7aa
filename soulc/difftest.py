"""Differential testing: random valid models on the reference interpreter, as Z80 programs on an
emulated 48K Spectrum, and (for float models) on onnxruntime.

    python -m soulc.difftest --cases 1000 --seed 1 --out difftest-failures

Case i of seed s is reproducible on its own (its random generator is seeded with [s, i]):
- an integer case is a random program (soulc/random_model.py) of a shape within the 48K's
  limits, harsh (saturation, flooring, zero attention sums, ties, odd settings) for odd i;
  it is compiled for zx48 in-process, and random prompts are typed on the emulated keyboard
  and compared exchange by exchange with the interpreter (text, tokens, token ids);
- every --float-every-th case is instead a random float model exported to ONNX: onnxruntime's
  logits against the quantised program's within soulc/diff_float.py's TOLERANCE, then the
  quantised program on the zx48 against the interpreter as above.
A failing integer case is shrunk (soulc/diff_shrink.py) and written, with the first op where
the Z80 and the interpreter part (soulc/diff_zx48.py's localise), to OUT/case-<s>-<i>/.
The exit status is 1 when any case failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soulc.errors import SoulcError
from soulc.ir.chat import respond
from soulc.ir.printer import print_program
from soulc.ir.program import Program
from soulc.random_model import ModelShape, random_program, random_shape

from .diff_shrink import shrink, write_reproducer
from .diff_zx48 import (Mismatch, ZX48Program, check_prompts, compile_zx48, kept_line, localise,
                        spectrum_prompt)

ZX48_SHAPES = dict(max_width=40, max_vocab=256, heads=tuple(range(1, 9)), max_layers=3, max_context=20)
ATTEMPTS = 8            # shapes drawn for a case before giving up on fitting it in 48K


@dataclass
class CaseResult:
    seed: int
    index: int
    kind: str                       # "int" or "float"
    description: str = ""
    prompts: int = 0
    tokens: int = 0                 # reply tokens compared
    mismatches: list[Mismatch] = field(default_factory=list)
    float_error: float | None = None
    float_agreement: float | None = None
    failure: str | None = None      # an error that is not a mismatch, with its traceback
    failure_kind: str = ""          # "compile error" (a SoulcError), "crash", "float tolerance"
    onnx: bytes | None = None       # a float case's model
    seconds: float = 0.0
    program: Program | None = None  # the program the host side ran (seq form)
    sequences: list[list[int]] = field(default_factory=list)   # the host's token sequences

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.failure is None


def case_rng(seed: int, index: int, attempt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, attempt])


def describe_shape(shape: ModelShape, harsh: bool) -> str:
    return (f"{'harsh' if harsh else 'mild'} layers {shape.layers} width {shape.width} heads {shape.heads} "
            f"ffn {shape.ffn} vocab {shape.vocab} context {shape.context}{' bias' if shape.bias else ''}")


def draw_program(seed: int, index: int, attempt: int = 0) -> tuple[Program, str, np.random.Generator]:
    """Case `index`'s random program (harsh for odd indices), its description, and the
    generator that goes on to draw its prompts."""
    harsh = index % 2 == 1
    rng = case_rng(seed, index, attempt)
    shape = random_shape(rng, **ZX48_SHAPES)
    return random_program(rng, shape, harsh=harsh), describe_shape(shape, harsh), rng


def prompts_for(program: Program, rng: np.random.Generator, count: int) -> list[str]:
    chars = "".join(program.tokenizer.char_ids)
    return [spectrum_prompt(rng, chars) for _ in range(count)]


def _tally(result: CaseResult, zx: ZX48Program, prompts: list[str], host: Program) -> None:
    check = check_prompts(zx, prompts, host)
    result.mismatches, result.prompts, result.tokens = check.mismatches, check.exchanges, check.tokens
    result.sequences = check.sequences


def run_int_case(seed: int, index: int, prompts: int = 3) -> CaseResult:
    start = time.monotonic()
    result = CaseResult(seed, index, "int")
    try:
        for attempt in range(ATTEMPTS):         # drawn again while it does not fit the 48K
            result.program, result.description, rng = draw_program(seed, index, attempt)
            try:
                zx = compile_zx48(result.program)
                break
            except SoulcError as e:
                if "does not fit" not in str(e) or attempt == ATTEMPTS - 1:
                    raise
        _tally(result, zx, prompts_for(result.program, rng, prompts), result.program)
    except Exception as e:                       # a crash is a finding too
        _failed(result, e)
    result.seconds = time.monotonic() - start
    return result


def _failed(result: CaseResult, e: Exception) -> None:
    result.failure_kind = "compile error" if isinstance(e, SoulcError) else "crash"
    result.failure = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def run_float_case(seed: int, index: int, prompts: int = 3) -> CaseResult:
    """A random float model through ONNX: float against quantised, then quantised on the zx48
    (a model that does not fit the 48K is drawn again)."""
    from soulc.frontends.onnx_model import load_onnx
    from soulc.passes.quantise import quantise

    from .diff_float import TOLERANCE, compare_float, make_float_case
    start = time.monotonic()
    result = CaseResult(seed, index, "float")
    with tempfile.TemporaryDirectory(prefix="soulc-difftest-") as work:
        try:
            for attempt in range(ATTEMPTS):
                rng = case_rng(seed, index, attempt)
                c, path = make_float_case(rng, work)
                result.description = (f"float layers {c.layers} width {c.width} heads {c.heads} ffn {c.ffn} "
                                      f"vocab {c.vocab} context {c.context} {c.attention}"
                                      f"{' fused' if c.fused_qkv else ''} post {c.post_scale}")
                program = quantise(load_onnx(path))
                try:
                    zx = compile_zx48(program)
                    break
                except SoulcError as e:
                    if "does not fit" not in str(e) or attempt == ATTEMPTS - 1:
                        raise
            result.program = program
            comparison = compare_float(path, program, rng)
            result.float_error, result.float_agreement = comparison.worst, comparison.agreement
            if not comparison.within(TOLERANCE):
                result.failure_kind = "float tolerance"
                result.onnx = path.read_bytes()
                result.failure = (f"float logits differ by {comparison.worst:.1%} (relative L2), over the "
                                  f"tolerance {TOLERANCE:.0%}, on {comparison.sequences}")
            _tally(result, zx, prompts_for(program, rng, prompts), program)
        except Exception as e:
            _failed(result, e)
    result.seconds = time.monotonic() - start
    return result


def still_fails(program: Program, prompt: str) -> bool:
    """Does the exchange for this prompt still differ between the Spectrum and the host?"""
    try:
        zx = compile_zx48(program)
    except SoulcError:
        return False
    return bool(check_prompts(zx, [prompt], program).mismatches)


def op_difference(zx: ZX48Program, prompt: str):
    """The first op of `step` that differs on the host's token sequence for the prompt."""
    host = respond(zx.program, kept_line(prompt))
    if host.prompt_ids is None:
        return None
    return localise(zx, host.prompt_ids + host.reply_ids)


def reproduce(result: CaseResult, out: Path, shrink_budget: int = 80) -> Path:
    """Shrinks a failing integer case and writes its reproducer into out/case-<seed>-<index>/."""
    folder = out / f"case-{result.seed}-{result.index}"
    mismatch = result.mismatches[0]
    program, prompt = shrink(result.program, mismatch.prompt, still_fails, shrink_budget)
    zx = compile_zx48(program)
    found = check_prompts(zx, [prompt], program).mismatches
    difference = op_difference(zx, prompt)
    details = {
        "case": f"seed {result.seed} case {result.index} ({result.description})",
        "mismatch": found[0].describe() if found else "none: it did not reproduce after shrinking",
        "first differing op": difference.describe() if difference else
                              "none: every op of step agrees (the difference is in the chat loop or the I/O)",
        "host": vars(found[0].expected) if found and found[0].expected else None,
        "spectrum": vars(found[0].observed) if found and found[0].observed else None,
        "original mismatch": mismatch.describe(),
    }
    return write_reproducer(folder, program, prompt, details)


def write_failure(result: CaseResult, out: Path) -> Path:
    folder = out / f"case-{result.seed}-{result.index}"
    folder.mkdir(parents=True, exist_ok=True)
    if result.program is not None:
        (folder / "model.soul").write_text(print_program(result.program), encoding="utf-8")
    if result.onnx is not None:
        (folder / "model.onnx").write_bytes(result.onnx)
    (folder / "failure.txt").write_text(f"{result.description}\n{result.failure}\n", encoding="utf-8")
    return folder


def run(seed: int, cases: int, out: Path, prompts: int = 3, float_every: int = 10, first: int = 0,
        log=sys.stderr) -> dict:
    started = time.monotonic()
    summary = {"seed": seed, "cases": 0, "float_cases": 0, "prompts": 0, "tokens": 0, "failed": [],
               "worst_float_error": 0.0, "float_agreement": []}
    for index in range(first, first + cases):
        is_float = float_every > 0 and index % float_every == float_every - 1
        result = run_float_case(seed, index, prompts) if is_float else run_int_case(seed, index, prompts)
        summary["cases"] += 1
        summary["float_cases"] += is_float
        summary["prompts"] += result.prompts
        summary["tokens"] += result.tokens
        if result.float_error is not None:
            summary["worst_float_error"] = max(summary["worst_float_error"], result.float_error)
            summary["float_agreement"].append(result.float_agreement)
        status = "ok"
        if not result.ok:
            try:
                folder = reproduce(result, out) if result.mismatches and result.failure is None \
                    else write_failure(result, out)
            except Exception as e:
                folder = write_failure(result, out)
                (folder / "reproduce-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
                status = f"FAILED (no reproducer: {type(e).__name__}: {e})"
            else:
                status = f"FAILED ({'mismatch' if result.mismatches else result.failure_kind}) -> {folder}"
            kind = "mismatch" if result.mismatches else result.failure_kind
            summary["failed"].append({"index": index, "kind": kind, "folder": str(folder),
                                      "description": result.description,
                                      "what": [m.describe() for m in result.mismatches] or [result.failure]})
        print(f"case {index} [{result.description}] {result.prompts} prompts, {result.tokens} tokens, "
              f"{result.seconds:.1f} s: {status}", file=log, flush=True)
    summary["seconds"] = round(time.monotonic() - started, 1)
    kinds: dict[str, int] = {}
    for failed in summary["failed"]:
        kinds[failed["kind"]] = kinds.get(failed["kind"], 0) + 1
    summary["failed_by_kind"] = kinds
    agreement = summary.pop("float_agreement")
    summary["mean_float_agreement"] = round(float(np.mean(agreement)), 4) if agreement else None
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m soulc.difftest", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100, help="how many cases (default 100)")
    p.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    p.add_argument("--first", type=int, default=0, help="the first case's index (default 0)")
    p.add_argument("--prompts", type=int, default=3, help="prompts typed per case (default 3)")
    p.add_argument("--float-every", type=int, default=10,
                   help="every Nth case is a float ONNX model (default 10; 0: none)")
    p.add_argument("--out", default="difftest-failures", help="folder for reproducers and summary.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = run(args.seed, args.cases, out, args.prompts, args.float_every, args.first)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"{summary['cases']} cases ({summary['float_cases']} float), {summary['prompts']} prompts, "
          f"{summary['tokens']} reply tokens compared in {summary['seconds']} s: "
          f"{len(summary['failed'])} failed{' ' + str(summary['failed_by_kind']) if summary['failed'] else ''}; worst float error {summary['worst_float_error']:.1%}, "
          f"mean top-1 agreement {summary['mean_float_agreement']}; summary in {out / 'summary.json'}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
