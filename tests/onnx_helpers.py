"""Helpers for the ONNX frontend tests: exporting torch models quietly, running the IR per position."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from conftest import SEED


def seed_tokenizer(vocab: int | None = None) -> dict:
    """The seed's tokenizer JSON, cut to the first `vocab` ids (with the merges that stay whole)."""
    data = json.loads((SEED / "tokenizer.json").read_text())
    if vocab is not None:
        data["vocab"] = {k: v for k, v in data["vocab"].items() if v < vocab}
        data["merges"] = [m for m in data["merges"] if "".join(m) in data["vocab"]]
        data["vocab_size"] = vocab
    return data


def export(model, path: Path, tokenizer=None, **options) -> Path:
    """soulc.model.export_onnx without the exporters' chatter."""
    from soulc.model import export_onnx
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return export_onnx(model, path, tokenizer, **options)
    finally:
        logging.disable(logging.NOTSET)


def ir_logits(program, ids: list[int]) -> np.ndarray:
    """The quantised program's logits (as real numbers) at every position of `ids`."""
    from soulc.ir.interpreter import Interpreter
    from soulc.passes.kv_cache import kv_cache
    it = Interpreter(kv_cache(program))
    rows = []
    for token in ids:
        it.next_token(token)
        rows.append(it.values["logits"] / 256.0)
    return np.array(rows)


def float_logits(model, ids: list[int]) -> np.ndarray:
    import torch
    with torch.no_grad():
        return model(torch.tensor([ids])).numpy()[0]
