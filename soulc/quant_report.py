"""`soulc MODEL.onnx --quant-report`: what quantisation loses, measured.

It quantises the model as compilation does, then runs a few prompts on the integer program
(the reference interpreter) and on the float graph (onnxruntime), and prints
- per tensor: the shift, the largest magnitude, the relative error of the int8/int16 values,
  how many nonzero weights became 0 and how many biases were clipped to int16;
- each softmax table: the float scale it was calibrated to (or the seed's) and its shift;
- per activation: how many values sat at the int16 limits (saturated);
- how often the integer model's next token equals the float model's, on the same prefix
  (the integer model's own reply), and both models' greedy replies;
- with a corpus (`--corpus FILE`, the training format): the integer model's next token against
  the float model's at every position of the corpus responses and the <END> after them, each
  given the corpus's own prefix (teacher-forced), and the share of the distinct corpus inputs
  whose integer reply is exactly the float reply.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from soulc.errors import SoulcError
from soulc.ir.chat import decode, encode, frame_prompt, generate
from soulc.ir.interpreter import Interpreter
from soulc.ir.program import Program
from soulc.passes.kv_cache import kv_cache
from soulc.passes.quantise import quantise

PROMPTS = ("hello", "how are you?", "tell me a joke", "i am sad", "who are you?")
SATURATING = ("embed", "rmsnorm", "matvec", "add", "mix")


class FloatModel:
    """The ONNX graph on onnxruntime: logits for every position of a token sequence."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise SoulcError("--quant-report runs the float model on onnxruntime, which is not installed: "
                             "pip install onnxruntime") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise SoulcError(f"{path}: onnxruntime cannot run the model: {str(e).splitlines()[0]}") from None
        ids = self.session.get_inputs()[0]
        self.input = ids.name
        self.dtype = np.int32 if "int32" in ids.type else np.int64
        self.length = ids.shape[1] if isinstance(ids.shape[1], int) else None
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "logits" if "logits" in outputs else outputs[0]

    def logits(self, tokens: list[int]) -> np.ndarray:
        """[len(tokens), vocab]; a fixed-length graph sees the tokens padded (attention is causal)."""
        n = len(tokens) if self.length is None else self.length
        ids = np.zeros((1, n), dtype=self.dtype)
        ids[0, : min(n, len(tokens))] = tokens[:n]
        out = self.session.run([self.output], {self.input: ids})[0]
        return out.reshape(n, -1)[: len(tokens)]


def tensor_rows(floats: Program, quantised: Program) -> list[tuple]:
    rows = []
    for name in floats.float_consts():
        w = floats.consts[name].data.astype(np.float64)
        q = quantised.consts[name]
        if q.shift is None:
            continue
        real = q.data.astype(np.float64) / 2.0**q.shift
        norm = np.linalg.norm(w)
        err = np.linalg.norm(real - w) / norm if norm else 0.0
        limit = 32767 if q.type.dtype == "i16" else 127
        clipped = int((np.abs(np.round(w * 2.0**q.shift)) > limit).sum())
        zeroed = int(((w != 0) & (q.data == 0)).sum())
        rows.append((name, "x".join(map(str, q.type.shape)), q.type.dtype, q.shift,
                     float(np.abs(w).max()), err, zeroed, clipped))
    return rows


def softmax_rows(floats: Program, quantised: Program) -> list[str]:
    lines = []
    for op_f, op_q in zip(floats.body, quantised.body):
        if op_q.opcode != "softmax_lut":
            continue
        table = op_f.args[1][1:]
        c = floats.consts[table]
        if c.type.dtype == "f32":
            scale = float(c.data[0])
            step = scale * 2.0 ** op_q.attrs["shift"] / 2**16
            how = f"calibrated to softmax({scale:.4g} * q.k): entry i = 255 exp(-{step:.4g} i)"
        else:
            how = "the seed's table: entry i = 255 exp(-i/16), i.e. softmax(q.k / 4)"
        lines.append(f"  %{op_q.result}: @{table}, score shift {op_q.attrs['shift']}, {how}")
    return lines


def run_prompts(program: Program, model: FloatModel, prompts) -> dict:
    step = kv_cache(program)
    lo, hi = program.settings.argmax
    saturated = {op.result: 0 for op in step.body if op.opcode in SATURATING}
    positions, same, errors, replies = 0, 0, [], []
    for text in prompts:
        prompt = frame_prompt(program, encode(program.tokenizer, text))
        if prompt is None:
            continue
        it = Interpreter(step)
        reply = generate(step, prompt, it)
        tokens = prompt + reply
        ints = []
        it.reset()
        for token in tokens[: program.settings.context]:
            it.next_token(token)
            ints.append(it.values["logits"] / 256.0)
            for name in saturated:
                v = it.values[name]
                saturated[name] += int(((v >= 32767) | (v <= -32768)).sum())
        floats = model.logits(tokens[: len(ints)])
        for t in range(len(prompt) - 1, len(ints)):
            if model.length is not None and t >= model.length:
                break
            positions += 1
            same += int(lo + np.argmax(ints[t][lo:hi]) == lo + np.argmax(floats[t][lo:hi]))
            errors.append(np.abs(ints[t] - floats[t]).max() / max(1e-9, np.abs(floats[t]).max()))
        replies.append((text, decode(program.tokenizer, reply), decode(program.tokenizer,
                                                                         float_reply(program, model, prompt))))
    return {"saturated": saturated, "positions": positions, "same": same, "errors": errors, "replies": replies}


def float_reply(program: Program, model: FloatModel, prompt: list[int]) -> list[int]:
    s = program.settings
    lo, hi = s.argmax
    tokens = list(prompt)
    reply: list[int] = []
    while len(tokens) < s.context and (model.length is None or len(tokens) <= model.length):
        token = lo + int(np.argmax(model.logits(tokens)[-1][lo:hi]))
        if token in s.stop:
            break
        reply.append(token)
        tokens.append(token)
        if s.max_reply and len(reply) >= s.max_reply:
            break
    return reply


def corpus_figures(program: Program, model: FloatModel, corpus: str | Path, limit: int | None = None):
    """Teacher-forced agreement and exact replies over a corpus (the first `limit` exchanges)."""
    from soulc.train.corpus import read_corpus
    from soulc.train.data import distinct_prompts, sequences
    from soulc.train.measure import Figures, stopped

    exchanges = read_corpus(corpus)[:limit]
    s = program.settings
    lo, hi = s.argmax
    seqs = sequences(exchanges, program.tokenizer, s.context)
    step = kv_cache(program)
    it = Interpreter(step)
    figures = Figures()
    for ids, mask, targets, length in zip(seqs.ids, seqs.mask, seqs.targets, seqs.lengths):
        tokens = [int(t) for t in ids[: length - 1]]
        if model.length is not None:
            tokens = tokens[: model.length]
        floats = lo + np.argmax(model.logits(tokens)[:, lo:hi], axis=1)
        it.reset()
        for t, token in enumerate(tokens):
            if not mask[t]:
                it.feed(token)
                continue
            ours = it.next_token(token)
            figures.positions += 1
            figures.agree += int(ours == floats[t])
            figures.int_correct += int(ours == targets[t])
            figures.float_correct += int(floats[t] == targets[t])
    for prompt, answers in zip(*distinct_prompts(exchanges, program.tokenizer, s.context)):
        reply = generate(step, prompt, it)
        figures.prompts += 1
        figures.same_replies += int(reply == float_reply(program, model, prompt))
        figures.whole_replies += int(tuple(reply) in answers)
        figures.ended_replies += int(stopped(prompt, reply, s))
    return len(exchanges), figures


def quant_report(path: str | Path, program: Program, numerics: str, out, prompts=PROMPTS,
                 corpus: str | Path | None = None) -> None:
    if not program.float_consts():
        raise SoulcError(f"{path}: --quant-report compares a float ONNX model with its quantised program; "
                         "this model is already integer")
    model = FloatModel(path)
    quantised = quantise(program)
    w = out.write
    w(f"quantisation report: {path} (numerics {numerics}, context {program.settings.context})\n\n")
    w(f"{'tensor':12} {'shape':>8} {'type':>4} {'shift':>5} {'max|w|':>9} {'rel.err':>8} {'zeroed':>6} "
      f"{'clipped':>7}\n")
    for name, shape, dtype, shift, peak, err, zeroed, clipped in tensor_rows(program, quantised):
        w(f"{name:12} {shape:>8} {dtype:>4} {shift:>5} {peak:>9.4g} {err:>8.2%} {zeroed:>6} {clipped:>7}\n")
    w("\nsoftmax tables:\n" + "\n".join(softmax_rows(program, quantised)) + "\n")
    r = run_prompts(quantised, model, prompts)
    total = sum(r["saturated"].values())
    w(f"\nsaturation: {total} activation values at the int16 limits over the prompts below")
    hot = [(name, n) for name, n in r["saturated"].items() if n]
    w((": " + ", ".join(f"%{name} {n}" for name, n in hot) if hot else "") + "\n")
    positions = r["positions"]
    if positions:
        w(f"\nnext token: the integer model's equals the float model's at {r['same']} of {positions} "
          f"positions ({r['same'] / positions:.1%}), on the integer model's own replies\n")
        w(f"logits: integer minus float, as a share of the largest float logit: at most "
          f"{max(r['errors']):.1%}, median {float(np.median(r['errors'])):.1%}\n")
    w("\nreplies (integer | float):\n")
    for text, reply_int, reply_float in r["replies"]:
        w(f"  {text!r}: {reply_int!r} | {reply_float!r}\n")
    if corpus is not None:
        count, f = corpus_figures(quantised, model, corpus)
        w(f"\ncorpus {corpus}: {count} exchanges, {f.prompts} distinct inputs\n")
        w(f"  teacher-forced next token on the responses: integer = float at {f.agree} of {f.positions} "
          f"positions ({f.agreement:.1%}); against the corpus: integer {f.int_accuracy:.1%}, "
          f"float {f.float_accuracy:.1%}\n")
        w(f"  replies: the integer reply is exactly the float reply for {f.same_replies} of {f.prompts} "
          f"inputs ({f.exact_rate:.1%}); {f.ended_replies} integer replies ({f.ended_rate:.1%}) end by "
          f"themselves, {f.whole_replies} ({f.whole_rate:.1%}) are one of the corpus's own responses to "
          "the input, whole\n")
