"""Chooses the frontend for a model file: a `.soul` IR text, an ONNX model, or a seed soul.bin."""
from __future__ import annotations

from pathlib import Path

from soulc.errors import SoulcError
from soulc.ir.program import Program


def load_model(path: str | Path, tokenizer: str | Path | None = None, **options) -> Program:
    path = Path(path)
    if not path.is_file():
        raise SoulcError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".soul":
        return _load_text(path)
    if suffix == ".onnx":
        from .onnx_model import load_onnx      # imported here: onnx is slow to import
        return load_onnx(path, tokenizer, **options)
    if tokenizer is None:
        raise SoulcError(f"{path}: a soul.bin carries no tokenizer: pass --tokenizer tokenizer.json")
    from .soulbin import load_soulbin
    from .tokenizer_json import load_tokenizer
    return load_soulbin(path, load_tokenizer(tokenizer))


def _load_text(path: Path) -> Program:
    from soulc.ir.parser import parse
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SoulcError(f"{path}: cannot read the IR text: {e}") from None
    try:
        return parse(text)
    except SoulcError as e:
        raise SoulcError(f"{path}: {e}") from None
