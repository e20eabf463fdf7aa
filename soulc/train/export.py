"""From a trained QATModel to the files soulc compiles: the ONNX model, and the IR program directly.

The ONNX graph is the float model (`QATModel.forward_float`) with the snapped weights, exported
by torch's exporter (torch.export) at opset 18: `ids` int64 [1, T] -> `logits` [1, T, vocab], T
dynamic up to the context. What the exporter records about the exporting process (stack traces
with file paths, module names, torch's version) is stripped, so the bytes depend only on the
weights and options. Its metadata holds the tokenizer (`soulc.tokenizer`), the chat
settings (`soulc.settings`: the argmax range includes <END> and generation stops on it) and how
it was trained (`soulc.training`: the command's options, no paths or times).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soulc.frontends.match_decoder import Decoder
from soulc.frontends.onnx_model import SETTINGS_KEY, TOKENIZER_KEY, build_program
from soulc.ir.program import Program, Tokenizer
from soulc.passes.quantise import quantise

from .qat import QATModel, Shape
from .tokenizer import END, PAD, SEP, tokenizer_json_text

TRAINING_KEY = "soulc.training"
OPSET = 18


def chat_settings(shape: Shape, max_reply: int = 0) -> dict:
    """argmax over <END> and the text tokens (not <PAD>, <SEP>, <UNK>); <END> (or the others) stops."""
    return {"context": shape.context, "argmax": [END, shape.vocab], "stop": [PAD, SEP, END],
            "prompt_prefix": [SEP], "prompt_suffix": [SEP], "max_reply": max_reply}


class ExportModel(nn.Module):
    """The float model with plain (already snapped) parameters, for torch.onnx.export."""

    def __init__(self, shape: Shape, state: dict[str, torch.Tensor]):
        super().__init__()
        self.shape = shape
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v.clone(), requires_grad=False)
                                        for k, v in state.items()})
        self.register_buffer("mask", torch.tril(torch.ones(shape.context, shape.context, dtype=torch.bool)),
                             persistent=False)

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def norm(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)) * self.p(name)

    def forward(self, ids):
        c = self.shape
        T = ids.shape[1]
        h = F.embedding(ids, self.p("te.weight")) + self.p("pe.weight")[:T]
        for i in range(c.layers):
            L = f"layers.{i}."
            x = self.norm(h, L + "n1.w")
            B, _, D = x.shape
            q, k, v = (0.5 * F.linear(x, self.p(f"{L}att.{n}.w")) for n in "qkv")
            q, k, v = (t.view(B, T, c.heads, D // c.heads).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-2, -1)) * c.c
            scores = scores.masked_fill(~self.mask[:T, :T], float("-inf"))
            y = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
            h = h + 0.5 * F.linear(y, self.p(L + "att.proj.w"))
            x = self.norm(h, L + "n2.w")
            f = torch.relu(0.5 * F.linear(x, self.p(L + "ffn.fc1.w"), self.p(L + "ffn.fc1.b")))
            h = h + 0.5 * F.linear(f, self.p(L + "ffn.fc2.w"), self.p(L + "ffn.fc2.b"))
        return F.linear(self.norm(h, "norm.w"), self.p("out.w"))


def onnx_bytes(model: QATModel, tokenizer: dict, settings: dict, training: dict | None = None) -> bytes:
    """The ONNX file's bytes; the same weights and options give the same bytes."""
    shape = model.shape
    export = ExportModel(shape, model.snapped_state()).eval()
    ids = torch.zeros(1, min(8, shape.context), dtype=torch.long)
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [log.level for log in quiet]
    try:
        for log in quiet:
            log.setLevel(logging.ERROR)
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                export, (ids,), None, input_names=["ids"], output_names=["logits"], opset_version=OPSET,
                dynamo=True, dynamic_shapes={"ids": {1: torch.export.Dim("T", min=1, max=shape.context)}})
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    proto = program.model_proto
    _strip(proto)
    for key, value in ((TOKENIZER_KEY, tokenizer_json_text(tokenizer)),
                       (SETTINGS_KEY, json.dumps(settings, separators=(",", ":"))),
                       (TRAINING_KEY, json.dumps(training or {}, sort_keys=True, separators=(",", ":")))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString(deterministic=True)


def _strip(proto) -> None:
    """Drops what the exporter records about the exporting process: stack traces (with file paths),
    module names, the torch version."""
    proto.producer_name, proto.producer_version, proto.doc_string = "soulc train", "", ""
    del proto.metadata_props[:]
    graph = proto.graph
    graph.doc_string = ""
    del graph.metadata_props[:]
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        item.doc_string = ""
        del item.metadata_props[:]


def write_onnx(path: str | Path, data: bytes) -> None:
    from soulc.output import write_atomically
    write_atomically(str(path), data)


def float_program(model: QATModel, tokenizer: Tokenizer, settings: dict) -> Program:
    """The program the ONNX frontend makes of the export, built straight from the weights."""
    shape = model.shape
    state = {k: v.numpy().astype(np.float32) for k, v in model.snapped_state().items()}
    consts = {"te": state["te.weight"], "pe": state["pe.weight"], "norm": state["norm.w"], "out": state["out.w"]}
    posts = {"out": 0}
    for i in range(shape.layers):
        L = f"layers.{i}."
        consts[f"l{i}.n1"], consts[f"l{i}.n2"] = state[L + "n1.w"], state[L + "n2.w"]
        for n in ("q", "k", "v", "proj"):
            consts[f"l{i}.{n}"] = state[f"{L}att.{n}.w"]
            posts[f"l{i}.{n}"] = 1
        for n in ("fc1", "fc2"):
            consts[f"l{i}.{n}"], consts[f"l{i}.{n}_b"] = state[f"{L}ffn.{n}.w"], state[f"{L}ffn.{n}.b"]
            posts[f"l{i}.{n}"] = 1
    decoder = Decoder(shape.layers, shape.heads, consts, {k: k for k in consts}, posts, [shape.c] * shape.layers)
    return build_program(decoder, tokenizer, "calibrated", None, "trained model", settings)


def int_program(model: QATModel, tokenizer: Tokenizer, settings: dict) -> Program:
    return quantise(float_program(model, tokenizer, settings))
