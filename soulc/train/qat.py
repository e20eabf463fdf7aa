"""The decoder trained for soulc's fixed-point lowering: one set of weights, two forward passes.

Parameters are named as in soulc/model.py (and the seed's weights.pt): te, pe, layers.{i}.n1,
att.{q,k,v,proj}, n2, ffn.fc1/fc2 (with biases), norm, out.

Weights are always seen fake-quantised, exactly as the quantise pass will quantise them: int8
with one power-of-two shift per tensor, the largest s with max|w| 2^s <= 127 (norm gains too),
biases int16 on their matrix's accumulator scale; the rounding passes gradients straight through.
The exported model carries these snapped values, so quantising it loses nothing in the weights.

`forward_float`: the float model that is exported to ONNX: RMSNorm without epsilon, causal
attention softmax(c q.k) with the model's score scale c, the 0.5 post-scales, ReLU.

`forward_sim`: the integer program the compiler makes from that export, simulated with floats
holding Q8.8 integers and straight-through gradients for every floor: saturating adds, the
embedding's deshift, the integer RMSNorm (x >> 4, isqrt, 2^19 // r capped at 32767: a vector with
rms below 1 is left unnormalised), each matvec's floor after its shift, the u8 softmax table the
compiler calibrates from c (indexed by the floored score difference) and the flooring division in
the attention mix. It is exact up to float32 rounding of large sums; `intmodel.py` is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soulc.passes.quantise import softmax_table, weight_shift

Q = 256.0           # Q8.8
LIMIT = 32767.0


@dataclass(frozen=True)
class Shape:
    vocab: int = 128
    width: int = 32
    heads: int = 4
    layers: int = 2
    ffn: int = 64
    context: int = 32
    score_scale: float = 0.25       # c in softmax(c q.k); a power of two keeps the table exact to read

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")

    @property
    def c(self) -> float:
        return float(np.float32(self.score_scale))      # as the exported graph stores it


def ste(x, value):
    """`value` forward, the gradient of `x` backward."""
    return x + (value - x).detach()


def ste_floor(x):
    return ste(x, torch.floor(x))


def sat(x):
    return torch.clamp(x, -LIMIT - 1, LIMIT)


def fake_weight(w):
    """(w quantised to int8 / 2^s with straight-through gradient, s)."""
    s = weight_shift(w.detach().cpu().numpy())
    q = torch.clamp(torch.round(w.detach() * 2.0**s), -127, 127) / 2.0**s
    return ste(w, q), s


def fake_bias(b, s_w: int):
    s = s_w + 8
    q = torch.clamp(torch.round(b.detach() * 2.0**s), -32768, 32767) / 2.0**s
    return ste(b, q)


class Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int, bias: bool, gen: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in, generator=gen) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(n_out)) if bias else None

    def quantised(self):
        w, s = fake_weight(self.w)
        return w, (fake_bias(self.b, s) if self.b is not None else None)


class Gain(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.w = nn.Parameter(torch.ones(width))


class Attention(nn.Module):
    def __init__(self, shape: Shape, gen):
        super().__init__()
        self.q, self.k, self.v, self.proj = (Linear(shape.width, shape.width, False, gen) for _ in range(4))


class FFN(nn.Module):
    def __init__(self, shape: Shape, gen):
        super().__init__()
        self.fc1 = Linear(shape.width, shape.ffn, True, gen)
        self.fc2 = Linear(shape.ffn, shape.width, True, gen)


class Block(nn.Module):
    def __init__(self, shape: Shape, gen):
        super().__init__()
        self.n1, self.att, self.n2, self.ffn = Gain(shape.width), Attention(shape, gen), Gain(shape.width), FFN(shape, gen)


class Embedding(nn.Module):
    def __init__(self, rows: int, width: int, std: float, gen):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(rows, width, generator=gen) * std)


class QATModel(nn.Module):
    """ids [batch, T] -> logits [batch, T, vocab] (real units), by either forward pass."""

    def __init__(self, shape: Shape, seed: int = 0, embed_std: float = 2.0):
        super().__init__()
        self.shape = shape
        gen = torch.Generator().manual_seed(seed)
        self.te = Embedding(shape.vocab, shape.width, embed_std, gen)
        self.pe = Embedding(shape.context, shape.width, embed_std / 2, gen)
        self.layers = nn.ModuleList(Block(shape, gen) for _ in range(shape.layers))
        self.norm = Gain(shape.width)
        self.out = Linear(shape.width, shape.vocab, False, gen)
        mask = torch.tril(torch.ones(shape.context, shape.context, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)
        table, shift = softmax_table(shape.c)
        self.register_buffer("table", torch.tensor(table.astype(np.float32)), persistent=False)
        self.score_shift = shift

    # -- the float model (what is exported) -------------------------------------------------

    def forward_float(self, ids):
        T = ids.shape[1]
        te, _ = fake_weight(self.te.weight)
        pe, _ = fake_weight(self.pe.weight)
        h = te[ids] + pe[:T]
        for layer in self.layers:
            h = h + self._attention_float(layer, self._norm_float(h, layer.n1))
            x = self._norm_float(h, layer.n2)
            fc1, fc2 = layer.ffn.fc1.quantised(), layer.ffn.fc2.quantised()
            h = h + 0.5 * F.linear(torch.relu(0.5 * F.linear(x, *fc1)), *fc2)
        w, _ = self.out.quantised()
        return F.linear(self._norm_float(h, self.norm), w)

    @staticmethod
    def _norm_float(x, gain: Gain):
        g, _ = fake_weight(gain.w)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)) * g

    def _attention_float(self, layer, x):
        B, T, D = x.shape
        H = self.shape.heads
        att = layer.att
        q, k, v = (0.5 * F.linear(x, getattr(att, n).quantised()[0]) for n in "qkv")
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * self.shape.c
        scores = scores.masked_fill(~self.mask[:T, :T], float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return 0.5 * F.linear(y.transpose(1, 2).reshape(B, T, D), att.proj.quantised()[0])

    # -- the integer program, simulated (values are Q8.8 integers held in floats) -----------

    def forward_sim(self, ids):
        T = ids.shape[1]
        te, s_te = fake_weight(self.te.weight)
        pe, s_pe = fake_weight(self.pe.weight)
        h = sat(self._deshift(te, s_te)[ids] + self._deshift(pe[:T], s_pe))
        for layer in self.layers:
            h = sat(h + self._attention_sim(layer, self._norm_sim(h, layer.n1)))
            x = self._norm_sim(h, layer.n2)
            f = torch.relu(self._matvec_sim(x, layer.ffn.fc1, 1))
            h = sat(h + self._matvec_sim(f, layer.ffn.fc2, 1))
        return self._matvec_sim(self._norm_sim(h, self.norm), self.out, 0) / Q

    @staticmethod
    def _deshift(w, s: int):
        v = w * Q
        return v if s <= 8 else ste_floor(v)

    @staticmethod
    def _norm_sim(x, gain: Gain):
        g, _ = fake_weight(gain.w)
        xs = ste_floor(x / 16)
        m = torch.clamp(ste_floor((xs * xs).sum(-1, keepdim=True) / x.shape[-1]), min=1)
        r = torch.clamp(ste_floor(torch.sqrt(m)), min=1)
        inv = torch.clamp(ste_floor(2.0**19 / r), max=LIMIT)
        return sat(ste_floor(ste_floor(x * inv / 2.0**15) * g))

    @staticmethod
    def _matvec_sim(x, lin: Linear, post: int):
        w, b = lin.quantised()
        acc = F.linear(x, w) + (b * Q if b is not None else 0)
        return sat(ste_floor(acc / 2.0**post))

    def _attention_sim(self, layer, x):
        B, T, D = x.shape
        H = self.shape.heads
        att = layer.att
        q, k, v = (self._matvec_sim(x, getattr(att, n), 1) for n in "qkv")
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-2, -1)                                   # Q16.16 scores
        mask = self.mask[:T, :T]
        scaled = torch.floor(s.detach() / 2.0**self.score_shift)
        top = scaled.masked_fill(~mask, -float("inf")).amax(-1, keepdim=True)
        index = torch.clamp(top - scaled, 0, len(self.table) - 1).long()
        table_w = self.table[index]
        s_masked = s.masked_fill(~mask, -float("inf"))
        s_top = s_masked.amax(-1, keepdim=True).detach()
        smooth = 255.0 * torch.exp(-self.shape.c * (s_top - s_masked) / 2.0**16)
        w = ste(smooth, table_w).masked_fill(~mask, 0.0)
        total = w @ v
        wsum = torch.clamp(w.sum(-1, keepdim=True), min=1)
        y = sat(ste_floor(total / wsum))
        return self._matvec_sim(y.transpose(1, 2).reshape(B, T, D), att.proj, 1)

    # -- export --------------------------------------------------------------------------

    def snapped_state(self) -> dict[str, torch.Tensor]:
        """The weights as the quantise pass will see them: exactly on their fixed-point grids."""
        out = {}
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(".b"):
                    w_name = name[:-2] + ".w"
                    _, s = fake_weight(dict(self.named_parameters())[w_name])
                    out[name] = fake_bias(p, s).detach().clone()
                else:
                    out[name] = fake_weight(p)[0].detach().clone()
        return out
