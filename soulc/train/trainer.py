"""`soulc train`: corpus -> tokenizer -> quantisation-aware training -> one ONNX file.

Each step trains the two forward passes of the same weights on the corpus responses (qat.py):
the float model (what is exported) and the simulated integer program (what soulc makes of it),
each with cross-entropy, plus a consistency term pulling their logits together, so that the
integer model's choices follow the float model's. Evaluations (every few epochs and at the end)
build the integer program exactly as soulc will (export.int_program) and measure, over the
whole corpus, the integer model's teacher-forced accuracy, its agreement with the float model
and how many replies come out exactly as the float model's; they print a few probe prompts'
float and integer (IR interpreter) replies side by side. The weights kept are those of the
evaluation with the best integer accuracy.

Determinism: one seed drives the initialisation and the batch order, torch runs with
deterministic algorithms on `threads` threads (1 by default: the same seed, options, corpus and
thread count give the same ONNX bytes), the tokenizer is deterministic and the export has
nothing in it that depends on time or paths.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from soulc.ir.chat import decode, respond
from soulc.ir.interpreter import Interpreter
from soulc.passes.kv_cache import kv_cache

from . import measure
from .batched import batch_logits
from .corpus import read_corpus
from .data import distinct_prompts, sequences
from .export import chat_settings, int_program, onnx_bytes, write_onnx
from .qat import QATModel, Shape
from .options import TrainOptions
from .tokenizer import as_tokenizer, train_bpe

@dataclass
class Evaluation:
    epoch: int
    loss: float
    figures: measure.Figures
    probes: list[tuple[str, str, str]]      # (prompt, float reply, integer reply)


@dataclass
class Result:
    best: Evaluation
    evaluations: list[Evaluation]
    seconds: float
    onnx: bytes
    tokenizer: dict
    shape: Shape


class Progress:
    """A progress bar on a terminal; elsewhere one line per evaluation."""

    def __init__(self, out, total_steps: int):
        self.out, self.total = out, total_steps
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last = 0.0

    def step(self, done: int, epoch: int, epochs: int, loss: float):
        if not self.tty or (time.monotonic() - self.last < 0.2 and done < self.total):
            return
        self.last = time.monotonic()
        width = 30
        filled = round(width * done / self.total)
        self.out.write(f"\r epoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] loss {loss:.3f} ")
        self.out.flush()

    def line(self, text: str):
        if self.tty:
            self.out.write("\r" + " " * 70 + "\r")
        self.out.write(text + "\n")
        self.out.flush()


def _schedule(step: int, total: int, lr: float) -> float:
    warm = min(200, total // 10 + 1)
    if step < warm:
        return lr * (step + 1) / warm
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))


def train(corpus: str | Path, output: str | Path | None, options: TrainOptions = TrainOptions(),
          out=sys.stderr) -> Result:
    started = time.monotonic()
    exchanges = read_corpus(corpus)
    tokenizer_json = train_bpe([e.prompt for e in exchanges] + [e.response for e in exchanges], options.vocab)
    tokenizer = as_tokenizer(tokenizer_json)
    shape = Shape(vocab=len(tokenizer.tokens), width=options.width, heads=options.heads, layers=options.layers,
                  ffn=options.ffn, context=options.context, score_scale=options.score_scale)
    settings_json = chat_settings(shape, options.max_reply)
    seqs = sequences(exchanges, tokenizer, shape.context)
    options = options.resolved(len(seqs.ids))
    prompts, responses = distinct_prompts(exchanges, tokenizer, shape.context)

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(options.threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(options.seed)
        model = QATModel(shape, options.seed)
        result = _train(model, seqs, (prompts, responses), tokenizer, settings_json, options, out)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    best_state, evaluations = result
    model.load_state_dict(best_state)
    best = max(evaluations, key=lambda e: (e.figures.int_accuracy, e.epoch))
    data = onnx_bytes(model, tokenizer_json, settings_json, options.recorded())
    if output is not None:
        write_onnx(output, data)
    return Result(best, evaluations, time.monotonic() - started, data, tokenizer_json, shape)


def _train(model: QATModel, seqs, prompts, tokenizer, settings_json, o: TrainOptions, out):
    ids, targets, mask = (torch.from_numpy(a) for a in (seqs.ids, seqs.targets, seqs.mask))
    n = len(ids)
    per_epoch = math.ceil(n / o.batch)
    total = per_epoch * o.epochs
    optimiser = torch.optim.Adam(model.parameters(), lr=o.lr)
    order = torch.Generator().manual_seed(o.seed)
    progress = Progress(out, total)
    progress.line(f"soulc train: {n} exchanges, vocab {model.shape.vocab}, {_n(o.layers, 'layer')}, width {o.width}, "
                  f"{o.heads} heads, FFN {o.ffn}, context {o.context}: {_weights(model.shape):,} weights; "
                  f"{_n(o.epochs, 'epoch')} of {_n(per_epoch, 'step')}")
    evaluations: list[Evaluation] = []
    best_state, best_key = None, None
    step, running = 0, None
    for epoch in range(1, o.epochs + 1):
        model.train()
        for batch in torch.randperm(n, generator=order).split(o.batch):
            for group in optimiser.param_groups:
                group["lr"] = _schedule(step, total, o.lr)
            x, y, m = ids[batch], targets[batch], mask[batch]
            top = int(m.nonzero()[:, 1].max()) + 1
            x, y, m = x[:, :top], y[:, :top], m[:, :top]
            loss = _loss(model, x, y, m, o.consistency)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            progress.step(step, epoch, o.epochs, running)
        if epoch % o.eval_every == 0 or epoch == o.epochs:
            ev = evaluate(model, seqs, prompts, tokenizer, settings_json, o.probes)
            ev.epoch, ev.loss = epoch, running
            evaluations.append(ev)
            key = (ev.figures.int_accuracy, epoch)
            if best_key is None or key > best_key:
                best_key, best_state = key, copy.deepcopy(model.state_dict())
            _report(progress, ev)
    return best_state, evaluations


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _loss(model: QATModel, x, y, m, consistency: float):
    lf = model.forward_float(x)[m]
    ls = model.forward_sim(x)[m]
    target = y[m]
    loss = F.cross_entropy(lf, target) + F.cross_entropy(ls, target)
    if consistency:
        loss = loss + consistency * (lf - ls).pow(2).mean()
    return loss


def _weights(shape: Shape) -> int:
    w, f, v = shape.width, shape.ffn, shape.vocab
    return 2 * v * w + shape.context * w + w + shape.layers * (4 * w * w + 2 * w * f + f + 3 * w)


def float_logits_fn(model: QATModel):
    def run(ids):
        with torch.no_grad():
            return model.forward_float(torch.from_numpy(np.ascontiguousarray(ids))).numpy()
    return run


def evaluate(model: QATModel, seqs, prompts, tokenizer, settings_json, probes) -> Evaluation:
    model.eval()
    program = int_program(model, tokenizer, settings_json)
    settings = program.settings
    int_fn, float_fn = (lambda ids: batch_logits(program, ids)), float_logits_fn(model)
    figures = measure.teacher_forced(int_fn, float_fn, seqs, settings, measure.Figures())
    measure.replies(int_fn, float_fn, prompts[0], settings, figures, prompts[1])
    step = kv_cache(program)
    interpreter = Interpreter(step)
    side = []
    for text in probes:
        exchange = respond(step, text, interpreter)
        if exchange.prompt_ids is None:
            continue
        floats = measure.greedy(float_fn, [exchange.prompt_ids], settings)[0]
        side.append((text, decode(tokenizer, floats), exchange.reply))
    return Evaluation(0, 0.0, figures, side)


def _report(progress: Progress, ev: Evaluation):
    f = ev.figures
    progress.line(f" epoch {ev.epoch}: loss {ev.loss:.3f}; teacher-forced accuracy float {f.float_accuracy:.1%}, "
                  f"integer {f.int_accuracy:.1%}; integer = float at {f.agreement:.1%} of {f.positions} positions; "
                  f"{f.same_replies}/{f.prompts} replies identical ({f.exact_rate:.1%}); "
                  f"integer replies: {f.ended_rate:.1%} end by themselves, {f.whole_rate:.1%} are whole corpus "
                  "responses")
    for text, floats, ints in ev.probes:
        mark = "=" if floats == ints else "x"
        progress.line(f"   {text!r:18} float {floats!r:40} {mark} integer {ints!r}")
