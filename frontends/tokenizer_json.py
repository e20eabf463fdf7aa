"""Reads the seed's tokenizer.json: {"vocab": {string: id}, "merges": [[a, b], ...]}."""
from __future__ import annotations

import json
from pathlib import Path

from soulc.errors import SoulcError
from soulc.ir.program import Tokenizer


def is_special(text: str) -> bool:
    return len(text) > 2 and text.startswith("<") and text.endswith(">")


def tokenizer_from_json(data, where: str = "tokenizer") -> Tokenizer:
    """Builds a Tokenizer from the parsed JSON; `where` names the source in errors."""
    try:
        vocab, merges = data["vocab"], data["merges"]
        ids = sorted(vocab.values())
        if ids != list(range(len(ids))) or not all(isinstance(k, str) for k in vocab):
            raise SoulcError(f"{where}: vocab ids must be 0..{len(ids) - 1}, each once")
        tokens = [""] * len(ids)
        for text, index in vocab.items():
            tokens[index] = text
        triples = []
        for pair in merges:
            left, right = pair
            if left not in vocab or right not in vocab or left + right not in vocab:
                raise SoulcError(f"{where}: merge {pair} names a string that is not in the vocab")
            triples.append((vocab[left], vocab[right], vocab[left + right]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SoulcError(f"{where}: not a tokenizer in the seed's format "
                         f"({{\"vocab\": {{string: id}}, \"merges\": [[a, b], ...]}}): {e}") from None
    special = frozenset(i for i, t in enumerate(tokens) if is_special(t))
    return Tokenizer(tokens, special, triples, lowercase=True)


def load_tokenizer(path: str | Path) -> Tokenizer:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise SoulcError(f"{path}: cannot read the tokenizer: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SoulcError(f"{path}: the tokenizer is not valid JSON: {e}") from None
    return tokenizer_from_json(data, str(path))


def special_id(tokenizer: Tokenizer, name: str) -> int | None:
    try:
        return tokenizer.tokens.index(name)
    except ValueError:
        return None
