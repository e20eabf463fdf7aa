"""The soul model in torch: the seed's float decoder, and the shapes around it.

`SoulModel(SoulConfig())` has exactly the seed's architecture and parameter names, so
`load_state_dict(torch.load("weights.pt"))` gives the float model soul.bin was quantised from:
token and position embeddings, pre-norm blocks (RMSNorm without epsilon, causal multi-head
self-attention, a ReLU MLP) whose linear layers multiply their output by 0.5, a final RMSNorm
and an output projection. The config varies the sizes and a few choices soulc's ONNX frontend
understands (biases, fused q/k/v, hand-written or `scaled_dot_product_attention` attention).

This is the only module of soulc that imports torch; the compiler itself does not need it.

`export_onnx` writes a model in soulc's I/O convention: input `ids` (int64 [1, T]), output
`logits` ([1, T, vocab]), the tokenizer JSON in the metadata under `soulc.tokenizer`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SoulConfig:
    vocab: int = 128
    width: int = 32
    heads: int = 4
    layers: int = 2
    ffn: int = 64
    context: int = 32               # rows of the position table (the seed trains 32, uses 20)
    ffn_bias: bool = True           # fc1 and fc2 have biases (the seed's do)
    att_bias: bool = False          # q, k, v and proj have biases (the seed's do not)
    out_bias: bool = False          # the output projection has a bias (the seed's does not)
    fused_qkv: bool = False         # one [3 * width, width] projection instead of three
    attention: str = "manual"       # "manual" (matmul, scale, mask, softmax) or "sdpa"
    post_scale: float = 0.5         # what every block linear multiplies its output by

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.attention not in ("manual", "sdpa"):
            raise ValueError(f"attention must be 'manual' or 'sdpa', not {self.attention!r}")


class Linear(nn.Module):
    """`scale * (x @ w.T + b)`, parameters named `w` and `b` as in the seed."""

    def __init__(self, n_in: int, n_out: int, bias: bool, scale: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(n_out)) if bias else None
        self.scale = scale

    def forward(self, x):
        y = F.linear(x, self.w, self.b)
        return y * self.scale if self.scale != 1.0 else y


class RMSNorm(nn.Module):
    """`x / sqrt(mean(x^2)) * w`, without an epsilon, as the seed's float model."""

    def __init__(self, width: int):
        super().__init__()
        self.w = nn.Parameter(torch.ones(width))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)) * self.w


class Attention(nn.Module):
    def __init__(self, c: SoulConfig):
        super().__init__()
        self.heads, self.style = c.heads, c.attention
        if c.fused_qkv:
            self.qkv = Linear(c.width, 3 * c.width, c.att_bias, c.post_scale)
        else:
            self.q = Linear(c.width, c.width, c.att_bias, c.post_scale)
            self.k = Linear(c.width, c.width, c.att_bias, c.post_scale)
            self.v = Linear(c.width, c.width, c.att_bias, c.post_scale)
        self.proj = Linear(c.width, c.width, c.att_bias, c.post_scale)
        if c.attention == "manual":
            mask = torch.tril(torch.ones(c.context, c.context, dtype=torch.bool))
            self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        batch, length, width = x.shape
        if hasattr(self, "qkv"):
            q, k, v = self.qkv(x).split(width, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        if self.style == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(width // self.heads)
            scores = scores.masked_fill(~self.mask[:length, :length], float("-inf"))
            y = torch.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class FFN(nn.Module):
    def __init__(self, c: SoulConfig):
        super().__init__()
        self.fc1 = Linear(c.width, c.ffn, c.ffn_bias, c.post_scale)
        self.fc2 = Linear(c.ffn, c.width, c.ffn_bias, c.post_scale)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c: SoulConfig):
        super().__init__()
        self.n1 = RMSNorm(c.width)
        self.att = Attention(c)
        self.n2 = RMSNorm(c.width)
        self.ffn = FFN(c)

    def forward(self, h):
        h = h + self.att(self.n1(h))
        return h + self.ffn(self.n2(h))


class SoulModel(nn.Module):
    """ids [batch, T] (int64) -> logits [batch, T, vocab]."""

    def __init__(self, config: SoulConfig = SoulConfig()):
        super().__init__()
        self.config = c = config
        self.te = nn.Embedding(c.vocab, c.width)
        self.pe = nn.Embedding(c.context, c.width)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.width)
        self.out = Linear(c.width, c.vocab, c.out_bias)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.te(ids) + self.pe(positions)
        for layer in self.layers:
            h = layer(h)
        return self.out(self.norm(h))


def load_seed(path: str | Path, attention: str = "manual", fused_qkv: bool = False) -> SoulModel:
    """The seed's float model from its weights.pt (q/k/v fused on request)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = SoulModel(SoulConfig(attention=attention, fused_qkv=fused_qkv))
    if fused_qkv:
        for i in range(model.config.layers):
            p = f"layers.{i}.att."
            state[p + "qkv.w"] = torch.cat([state.pop(p + n + ".w") for n in "qkv"])
    model.load_state_dict(state)
    return model.eval()


def export_onnx(model: SoulModel, path: str | Path, tokenizer: str | Path | dict | None = None,
                dynamo: bool = True, opset: int | None = None, length: int | None = None,
                dynamic: bool = True) -> Path:
    """Writes the model as ONNX: `ids` [1, T] -> `logits` [1, T, vocab], T dynamic unless told.

    `tokenizer` (a tokenizer.json path or its parsed JSON) is stored in the model's metadata
    under `soulc.tokenizer`, so soulc needs no --tokenizer for it.
    """
    import onnx

    path = Path(path)
    model = model.eval()
    length = length or min(8, model.config.context)
    ids = torch.zeros(1, length, dtype=torch.long)
    kwargs = {"input_names": ["ids"], "output_names": ["logits"], "dynamo": dynamo}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic and dynamo:
        kwargs["dynamic_shapes"] = {"ids": {1: torch.export.Dim("T", min=1, max=model.config.context)}}
    elif dynamic:
        kwargs["dynamic_axes"] = {"ids": {1: "T"}, "logits": {1: "T"}}
    with torch.no_grad():
        torch.onnx.export(model, (ids,), str(path), **kwargs)
    if tokenizer is not None:
        if not isinstance(tokenizer, dict):
            tokenizer = json.loads(Path(tokenizer).read_text(encoding="utf-8"))
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "soulc.tokenizer", json.dumps(tokenizer)
        onnx.save(proto, str(path))
    return path
