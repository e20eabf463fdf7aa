"""Parses the textual form (grammar.lark) into a verified Program."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import lark
import numpy as np

from .printer import SETTING_NAMES, VERSION
from .program import DTYPES, TOKEN, Const, Op, Program, Settings, State, TensorType, Tokenizer
from .verify import VerifyError, verify


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True)


def _at(meta_or_token) -> str:
    return f"line {meta_or_token.line}, column {meta_or_token.column}"


LONGEST_NUMBER = 18         # digits; anything longer cannot be an int64


def _check_numbers(text: str) -> None:
    match = re.search(r"\d{%d,}" % (LONGEST_NUMBER + 1), text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        raise VerifyError(f"line {line}, column {column}: a number of {len(match.group())} digits; "
                          f"soulc reads numbers of at most {LONGEST_NUMBER}")


def parse(text: str) -> Program:
    _check_numbers(text)
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as e:
        found = getattr(e, "token", None) or getattr(e, "char", None) or "end of input"
        raise VerifyError(f"line {e.line}, column {e.column}: unexpected {str(found)!r}") from None
    return verify(_build(tree))


def _type(tree) -> TensorType:
    if tree.data == "token_type":
        return TOKEN
    dtype, *dims = tree.children
    return TensorType(str(dtype), tuple(int(d) for d in dims))


def _build(tree) -> Program:
    header, settings_tree, tok_tree, *rest = tree.children
    if int(header.children[0]) != VERSION:
        raise VerifyError(f"{_at(header.meta)}: this is soul format {header.children[0]}, soulc reads {VERSION}")
    consts, states, data = {}, {}, {}
    body_tree = None
    memory, banks = {}, {}
    for item in rest:
        if item.data in ("const", "state"):
            name = str(item.children[0])[1:]
            if name in consts or name in states:
                raise VerifyError(f"{_at(item.meta)}: @{name} is declared twice")
            ttype = _type(item.children[1])
            if item.data == "state":
                states[name] = State(name, ttype)
            else:
                shift = int(item.children[2]) if len(item.children) > 2 else None
                consts[name] = Const(name, ttype, None, shift)
        elif item.data == "memory":
            memory = {str(p.children[0]): int(str(p.children[1]), 16) for p in item.children}
            banks = {str(p.children[0]): int(p.children[2]) for p in item.children if len(p.children) > 2}
        elif item.data == "body":
            body_tree = item
        elif item.data == "data":
            name = str(item.children[0])[1:]
            if name not in consts:
                raise VerifyError(f"{_at(item.meta)}: data for @{name}, which is not a declared constant")
            if name in data:
                raise VerifyError(f"{_at(item.meta)}: data for @{name} given twice")
            data[name] = (item, str(item.children[1]))
    for name, const in consts.items():
        if name not in data:
            raise VerifyError(f"constant @{name} has no data block")
        item, numbers = data[name]
        t = const.type
        values = _numbers(numbers.strip("{}").split(), t.dtype, f"{_at(item.meta)}: @{name}")
        if values.size != t.size:
            raise VerifyError(f"{_at(item.meta)}: @{name} is {t} ({t.size} values), its data has {values.size}")
        if t.dtype != "f32":
            info = np.iinfo(DTYPES[t.dtype])
            if values.size and (values.min() < info.min or values.max() > info.max):
                raise VerifyError(f"{_at(item.meta)}: @{name} holds a value outside {t.dtype}")
        const.data = values.astype(DTYPES[t.dtype]).reshape(t.shape)
    return Program(_settings(settings_tree), _tokenizer(tok_tree), consts, states,
                   str(body_tree.children[0].children[0]), [_op(s) for s in body_tree.children[1:]], memory, banks)


def _numbers(words: list[str], dtype: str, where: str) -> np.ndarray:
    """The data block's numbers: integers, or for f32 decimal floats (which must be finite)."""
    try:
        if dtype == "f32":
            values = np.array(words, dtype=np.float64)
            if not np.isfinite(values).all() or (values.size and np.abs(values).max() > np.finfo(np.float32).max):
                raise ValueError("a value is outside f32")
            return values.astype(np.float32)
        return np.array([int(w, 10) for w in words], dtype=np.int64)
    except (ValueError, OverflowError) as e:
        raise VerifyError(f"{where}: {dtype} data holds a value it cannot: {e}") from None


def _settings(tree) -> Settings:
    settings = Settings()
    for item in tree.children:
        name, values = str(item.children[0]), [int(v) for v in item.children[1:]]
        if name not in SETTING_NAMES:
            raise VerifyError(f"{_at(item.meta)}: unknown setting {name!r}; known: {', '.join(SETTING_NAMES)}")
        if name in ("context", "max_reply"):
            if len(values) != 1:
                raise VerifyError(f"{_at(item.meta)}: {name} takes one number")
            setattr(settings, name, values[0])
        elif name == "argmax":
            if len(values) != 2:
                raise VerifyError(f"{_at(item.meta)}: argmax takes two numbers, the first id and one past the last")
            settings.argmax = tuple(values)
        else:
            setattr(settings, name, tuple(values))
    return settings


def _tokenizer(tree) -> Tokenizer:
    tokens, special, merges, lowercase = [], set(), [], False
    for item in tree.children:
        if item.data == "lowercase":
            lowercase = True
        elif item.data in ("special", "token"):
            index = int(item.children[0])
            try:
                text = json.loads(item.children[1])
            except ValueError as e:
                raise VerifyError(f"{_at(item.meta)}: token {index}: not a valid string: {e}") from None
            if index != len(tokens):
                raise VerifyError(f"{_at(item.meta)}: token {index} out of order, expected {len(tokens)}")
            tokens.append(text)
            if item.data == "special":
                special.add(index)
        else:
            merges.append(tuple(int(v) for v in item.children))
    return Tokenizer(tokens, frozenset(special), merges, lowercase)


def _op(tree) -> Op:
    if tree.data == "assign":
        result, opcode, operands, attrs, *annotation = tree.children
        result = str(result)[1:]
    else:
        opcode, operands, attrs, *annotation = tree.children
        result = None
    return Op(
        opcode=str(opcode),
        args=[str(a) for a in operands.children] if operands is not None else [],
        attrs={str(a.children[0]): int(a.children[1]) for a in attrs.children},
        result=result,
        type=_type(annotation[0]) if annotation else None,
        where=(tree.meta.line, tree.meta.column),
    )
