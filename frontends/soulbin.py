"""Reads the seed's soul.bin (layout in the seed's NUMERICS.md) into a seq-form Program."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from soulc.errors import SoulcError
from soulc.ir.program import Const, Program, Settings, TensorType, Tokenizer
from soulc.ir.tables import SEED_SCORE_SHIFT, seed_softmax_table
from soulc.ir.verify import verify

from .decoder import DecoderShape, decoder_body
from .tokenizer_json import special_id

SEED_HEADS = 4
LAYER_TENSORS = ("n1", "q", "k", "v", "proj", "n2", "fc1", "fc1_b", "fc2", "fc2_b")
HEADER = struct.Struct("<BHHb")       # kind (0 int8, 1 int16), rows, cols, shift


def read_tensors(blob: bytes, where: str) -> list[tuple[np.ndarray, int]]:
    """The (data, shift) of each tensor in the file, in file order."""
    tensors, offset = [], 0
    while offset < len(blob):
        if offset + HEADER.size > len(blob):
            raise SoulcError(f"{where}: truncated: a tensor header at byte {offset} is cut off")
        kind, rows, cols, shift = HEADER.unpack_from(blob, offset)
        if kind not in (0, 1):
            raise SoulcError(f"{where}: tensor {len(tensors)} at byte {offset} has kind {kind}; "
                             "soul.bin holds int8 (0) and int16 (1) tensors only")
        dtype = np.dtype("<i1" if kind == 0 else "<i2")
        size = rows * cols * dtype.itemsize
        offset += HEADER.size
        if offset + size > len(blob):
            raise SoulcError(f"{where}: truncated: tensor {len(tensors)} needs {size} bytes, "
                             f"{len(blob) - offset} remain")
        data = np.frombuffer(blob, dtype, rows * cols, offset).reshape(rows, cols)
        tensors.append((data.astype(dtype.newbyteorder("=")), shift))
        offset += size
    return tensors


def load_soulbin(path: str | Path, tokenizer: Tokenizer, heads: int = SEED_HEADS) -> Program:
    where = str(path)
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise SoulcError(f"{where}: cannot read the model: {e.strerror}") from None
    tensors = read_tensors(blob, where)
    layers, extra = divmod(len(tensors) - 4, len(LAYER_TENSORS))
    if len(tensors) < 4 + len(LAYER_TENSORS) or extra:
        raise SoulcError(f"{where}: holds {len(tensors)} tensors; a soul.bin has 4 + 10 per layer")
    names = ["te", "pe"] + [f"l{i}.{n}" for i in range(layers) for n in LAYER_TENSORS] + ["norm", "out"]
    consts = {}
    for name, (data, shift) in zip(names, tensors):
        is_bias = name.endswith("_b")
        if is_bias:
            shift += 8      # soul.bin gives a bias its matrix's shift; its scale is the accumulator's
        if data.shape[1] == 1:
            data = data[:, 0]
        want = np.int16 if is_bias else np.int8
        if data.dtype != want:
            raise SoulcError(f"{where}: tensor {name} should be {np.dtype(want).name}, "
                             f"the file has {data.dtype.name}")
        consts[name] = Const(name, TensorType(str(np.dtype(want).name).replace("int", "i"), data.shape),
                             data, shift)
    consts["lut"] = Const("lut", TensorType("u8", (128,)), seed_softmax_table())
    vocab, width = consts["te"].type.shape
    if vocab != len(tokenizer.tokens):
        raise SoulcError(f"{where}: the model's embedding has {vocab} rows but the tokenizer has "
                         f"{len(tokenizer.tokens)} tokens: pass the tokenizer this soul was trained with")
    if width % heads:
        raise SoulcError(f"{where}: width {width} cannot be split into {heads} heads")
    sep, end, pad = (special_id(tokenizer, n) for n in ("<SEP>", "<END>", "<PAD>"))
    if sep is None:
        raise SoulcError(f"{where}: the tokenizer has no <SEP> token to frame prompts with")
    settings = Settings(
        context=consts["pe"].type.shape[0],
        argmax=(4, vocab),
        stop=tuple(sorted(t for t in (pad, sep, end) if t is not None)),
        prompt_prefix=(sep,),
        prompt_suffix=(sep,),
        max_reply=0,
    )
    body = decoder_body(DecoderShape(layers, heads, SEED_SCORE_SHIFT), set(consts))
    try:
        return verify(Program(settings, tokenizer, consts, {}, "seq", body))
    except SoulcError as e:
        raise SoulcError(f"{where}: {e}") from None
