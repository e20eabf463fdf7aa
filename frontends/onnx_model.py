"""The ONNX frontend: an exported transformer -> a seq-form Program with float constants.

Steps: load the model (with its external data files), check it, inline its local functions
(onnx.inliner), infer shapes (onnx.shape_inference), then trace the graph, folding everything
that does not depend on the ids (onnx_patterns.py), and map what was found onto the decoder
(match_decoder.py). The program keeps the float weights; the quantise pass makes them integers.

I/O convention: one input, the token ids (int64 or int32, [1, T]); the output `logits`
([1, T, vocab]). The tokenizer comes from --tokenizer, else from the model's metadata
(`soulc.tokenizer`, the JSON of a tokenizer.json). The chat settings come from the metadata
`soulc.settings` when the model has it (JSON: any of context, argmax [lo, hi], stop, prompt_prefix,
prompt_suffix as token ids, max_reply; `soulc train` writes it), else the seed's defaults;
--context still overrides the context.

Numerics: "calibrated" leaves each attention's softmax as its float scale, for quantise to
build a table for; "soulplayer" uses the seed's table and shift 14 instead, as Soul Player does.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner

from soulc.errors import SoulcError
from soulc.ir.program import Const, Program, Settings, TensorType, Tokenizer
from soulc.ir.tables import SEED_SCORE_SHIFT, seed_softmax_table
from soulc.ir.verify import verify

from .decoder import DecoderShape, decoder_body
from .match_decoder import Decoder, match_decoder
from .onnx_patterns import trace
from .tokenizer_json import load_tokenizer, special_id, tokenizer_from_json

OPSETS = range(17, 24)
TOKENIZER_KEY = "soulc.tokenizer"
SETTINGS_KEY = "soulc.settings"
NUMERICS = ("calibrated", "soulplayer")
BLOCK_WEIGHTS = ("q", "k", "v", "proj", "fc1", "fc2")


def load_onnx(path: str | Path, tokenizer: str | Path | Tokenizer | None = None,
              numerics: str = "calibrated", context: int | None = None) -> Program:
    where = str(path)
    if numerics not in NUMERICS:
        raise SoulcError(f"--numerics {numerics}: use one of {', '.join(NUMERICS)}")
    model = read_model(path)
    tok = model_tokenizer(model, tokenizer, where)
    settings = model_settings(model, where)
    ids, length, static = _ids_input(model, where)
    try:
        traced = trace(model, where, ids, length, static)
    except SoulcError:
        if static or length == 2:
            raise
        try:                # a position table or mask shorter than the length chosen: trace with 2
            traced = trace(model, where, ids, 2, static)
        except SoulcError:
            pass
        else:
            return build_program(match_decoder(traced, where), tok, numerics, context, where, settings)
        raise
    return build_program(match_decoder(traced, where), tok, numerics, context, where, settings)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def read_model(path: str | Path) -> onnx.ModelProto:
    """Loads, checks, inlines and shape-infers the model; every failure is a SoulcError."""
    where = str(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:          # protobuf DecodeError, missing external data, ...
        raise SoulcError(f"{where}: cannot read the ONNX model ({_first_line(e)}); the file or its external "
                         "data may be truncated, missing or not ONNX") from None
    if not model.graph.node:
        raise SoulcError(f"{where}: the ONNX model has no graph nodes; the file may be truncated or not ONNX")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in OPSETS:
        raise SoulcError(f"{where}: the model uses ONNX opset {opset}; soulc reads opsets {OPSETS[0]} to "
                         f"{OPSETS[-1]}: export with opset_version in that range")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise SoulcError(f"{where}: not a valid ONNX model ({_first_line(e)})") from None
    try:
        model = onnx.inliner.inline_local_functions(model)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise SoulcError(f"{where}: ONNX shape inference fails ({_first_line(e)})") from None
    for init in model.graph.initializer:
        try:
            data = onnx.numpy_helper.to_array(init)
        except Exception as e:
            raise SoulcError(f"{where}: initializer '{init.name}' cannot be read ({_first_line(e)}); its "
                             "data may be truncated") from None
        if data.dtype.kind == "f" and np.isnan(data).any():     # (an infinity can be a mask's fill value)
            raise SoulcError(f"{where}: initializer '{init.name}' holds NaN values; "
                             "soulc cannot quantise them: check the training run")
    return model


def model_tokenizer(model: onnx.ModelProto, tokenizer, where: str) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer is not None:
        return load_tokenizer(tokenizer)
    for prop in model.metadata_props:
        if prop.key == TOKENIZER_KEY:
            try:
                data = json.loads(prop.value)
            except json.JSONDecodeError as e:
                raise SoulcError(f"{where}: the metadata {TOKENIZER_KEY} is not valid JSON: {e}") from None
            return tokenizer_from_json(data, f"{where}: metadata {TOKENIZER_KEY}")
    raise SoulcError(f"{where}: the model carries no tokenizer (metadata {TOKENIZER_KEY}): "
                     "pass --tokenizer tokenizer.json")


def model_settings(model: onnx.ModelProto, where: str) -> dict | None:
    """The parsed `soulc.settings` metadata, or None when the model has none."""
    for prop in model.metadata_props:
        if prop.key == SETTINGS_KEY:
            try:
                data = json.loads(prop.value)
            except json.JSONDecodeError as e:
                raise SoulcError(f"{where}: the metadata {SETTINGS_KEY} is not valid JSON: {e}") from None
            if not isinstance(data, dict):
                raise SoulcError(f"{where}: the metadata {SETTINGS_KEY} is not a JSON object")
            return data
    return None


def _apply_settings(settings: Settings, data: dict, vocab: int, where: str) -> Settings:
    where = f"{where}: metadata {SETTINGS_KEY}"
    fields = {"argmax": 2, "stop": None, "prompt_prefix": None, "prompt_suffix": None}
    for key, value in data.items():
        if key == "context":
            continue
        if key == "max_reply":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SoulcError(f"{where}: max_reply must be a count of tokens (0: no limit), not {value!r}")
            settings.max_reply = value
        elif key in fields:
            top = vocab if key == "argmax" else vocab - 1
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      and 0 <= v <= top for v in value) \
                    or (fields[key] and len(value) != fields[key]):
                raise SoulcError(f"{where}: {key} must be a list of token ids of the vocabulary of {vocab}"
                                 + (" ([lo, hi]: argmax chooses from lo to hi - 1)" if key == "argmax" else ""))
            if key == "argmax" and not 0 <= value[0] < value[1] <= vocab:
                raise SoulcError(f"{where}: argmax {value} is not a range [lo, hi) within 0..{vocab}")
            setattr(settings, key, tuple(value))
        else:
            raise SoulcError(f"{where}: unknown setting {key!r}; the settings are context, argmax, stop, "
                             "prompt_prefix, prompt_suffix, max_reply")
    return settings


def _ids_input(model: onnx.ModelProto, where: str) -> tuple[str, int, bool]:
    """The ids input's name, the length to trace with, and whether that length is fixed."""
    graph = model.graph
    initialised = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    if len(inputs) != 1:
        raise SoulcError(f"{where}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                         "soulc needs one: the token ids, int64 [1, T]")
    tensor = inputs[0].type.tensor_type
    dims = tensor.shape.dim
    if tensor.elem_type not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) or len(dims) != 2 or \
            (dims[0].HasField("dim_value") and dims[0].dim_value != 1):
        raise SoulcError(f"{where}: input '{inputs[0].name}' is not token ids of type int64 [1, T]")
    outputs = [o for o in graph.output]
    if len(outputs) != 1 and "logits" not in [o.name for o in outputs]:
        raise SoulcError(f"{where}: the model has {len(outputs)} outputs and none is called 'logits'")
    if dims[1].HasField("dim_value") and dims[1].dim_value > 0:
        return inputs[0].name, dims[1].dim_value, True
    return inputs[0].name, _unusual_length(model), False


def _unusual_length(model: onnx.ModelProto) -> int:
    """A sequence length equal to no size or small constant in the model, so shapes stay unambiguous."""
    seen = set()
    for init in model.graph.initializer:
        seen.update(init.dims)
        if init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and len(init.dims) <= 1:
            seen.update(int(v) for v in onnx.numpy_helper.to_array(init).reshape(-1)[:16])
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                seen.update(a.t.dims)
                if a.t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
                    seen.update(int(v) for v in onnx.numpy_helper.to_array(a.t).reshape(-1)[:16])
            elif a.type == onnx.AttributeProto.INTS:
                seen.update(a.ints)
    return next(n for n in range(3, 10**6) if n not in seen)


def build_program(d: Decoder, tokenizer: Tokenizer, numerics: str, context: int | None, where: str,
                  settings: dict | None = None) -> Program:
    vocab = len(tokenizer.tokens)
    te_rows, out_rows = d.consts["te"].shape[0], d.consts["out"].shape[0]
    if te_rows != vocab or out_rows != vocab:
        raise SoulcError(f"{where}: the model's embedding has {te_rows} rows and its output {out_rows} logits, "
                         f"but the tokenizer has {vocab} tokens: pass the tokenizer this model was trained with")
    rows = d.consts["pe"].shape[0]
    if context is None and settings and "context" in settings:
        context = settings["context"]
        if not isinstance(context, int) or isinstance(context, bool) or not 2 <= context <= rows:
            raise SoulcError(f"{where}: metadata {SETTINGS_KEY}: context {context!r}: the model's position "
                             f"table has {rows} rows; use a context of 2 to {rows}")
    if context is None:
        context = rows
    elif not 2 <= context <= rows:
        raise SoulcError(f"--context {context}: the model's position table has {rows} rows; "
                         f"use a context of 2 to {rows}")
    consts = dict(d.consts, pe=d.consts["pe"][:context])
    for name, data in consts.items():
        if not np.isfinite(data).all() or np.abs(data).max(initial=0) > np.finfo(np.float32).max:
            raise SoulcError(f"{where}: '{d.sources.get(name, name)}' (the model's {name}) holds NaN or infinite "
                             "values; soulc cannot quantise them: check the training run")
    program_consts = {name: Const(name, TensorType("f32", data.shape), data.astype(np.float32))
                      for name, data in consts.items()}
    if numerics == "soulplayer":
        program_consts["lut"] = Const("lut", TensorType("u8", (128,)), seed_softmax_table())
        score_shift = SEED_SCORE_SHIFT
    else:
        score_shift = None
        scales = {i: np.array([s], dtype=np.float32) for i, s in enumerate(d.scales)}
        shared = len({float(s[0]) for s in scales.values()}) == 1
        for i, s in scales.items():
            name = "lut" if shared else f"l{i}.lut"
            program_consts[name] = Const(name, TensorType("f32", (1,)), s)
    block = [post for name, post in d.posts.items() if name.split(".")[-1] in BLOCK_WEIGHTS]
    common = Counter(block).most_common(1)[0][0] if block else 1
    exceptions = tuple((name, post) for name, post in d.posts.items()
                       if post != (0 if name == "out" else common))
    shape = DecoderShape(d.layers, d.heads, score_shift, common, exceptions)
    body = decoder_body(shape, set(program_consts))
    order = [a[1:] for op in body for a in op.args if a[1:] in program_consts and not a.endswith("lut")]
    order += [name for name in program_consts if name.endswith("lut")]
    program_consts = {name: program_consts[name] for name in dict.fromkeys(order)}
    chat = _settings(tokenizer, context, where)
    if settings:
        chat = _apply_settings(chat, settings, vocab, where)
    program = Program(chat, tokenizer, program_consts, {}, "seq", body)
    try:
        return verify(program)
    except SoulcError as e:
        raise SoulcError(f"{where}: {e}") from None


def _settings(tokenizer: Tokenizer, context: int, where: str) -> Settings:
    sep, end, pad = (special_id(tokenizer, n) for n in ("<SEP>", "<END>", "<PAD>"))
    if sep is None:
        raise SoulcError(f"{where}: the tokenizer has no <SEP> token to frame prompts with")
    first = 0
    while first in tokenizer.special:
        first += 1
    return Settings(context=context, argmax=(first, len(tokenizer.tokens)),
                    stop=tuple(sorted(t for t in (pad, sep, end) if t is not None)),
                    prompt_prefix=(sep,), prompt_suffix=(sep,), max_reply=0)
