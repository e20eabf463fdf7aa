"""The soulc IR: a fixed-point program for one transformer, as plain dataclasses.

A Program holds
- settings: how the chat loop drives the model (context, argmax range, stop tokens, prompt framing);
- a tokenizer: the vocabulary strings and the merges, applied in order;
- constants: int8 weight tensors with a power-of-two shift, int16 biases, u8 lookup tables
  (or, straight from a float frontend, f32 tensors that the quantise pass turns into those);
- states: buffers that live across positions (the KV caches);
- a body: a list of ops in SSA form computing the next token from one position;
- once a target has placed them, the memory address of constants, states and values, and
  for a machine that pages memory in banks, the bank of those that lie in one.

The body comes in two forms. In the `seq` form an op that reads the history of a value
(`scores`, `mix`) sees that value at every position so far: the model is recomputed over
the whole sequence for each new token, as the seed did. In the `step` form history lives
in `state` buffers written by `store`, so one call computes exactly one new position;
the kv_cache pass turns the first form into the second. Both give identical numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "f32": np.float32}


@dataclass(frozen=True)
class TensorType:
    dtype: str                 # one of DTYPES, or "tok" for a token id
    shape: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.dtype == "tok":
            return "tok"
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * (np.dtype(DTYPES[self.dtype]).itemsize if self.dtype in DTYPES else 1)


TOKEN = TensorType("tok")


@dataclass
class Const:
    """A constant tensor. Real value = data / 2**shift (shift None for tables and f32 data)."""
    name: str
    type: TensorType
    data: np.ndarray
    shift: int | None = None


@dataclass
class State:
    """A buffer kept across positions of one reply (a KV cache), zeroed at each new prompt."""
    name: str
    type: TensorType


@dataclass
class Op:
    """`result = opcode args attrs`. args name values (`%x`) or constants/states (`@w`)."""
    opcode: str
    args: list[str]
    attrs: dict[str, int] = field(default_factory=dict)
    result: str | None = None
    type: TensorType | None = None
    where: tuple[int, int] | None = None    # (line, column) it was parsed from, for errors


@dataclass
class Settings:
    context: int = 20
    argmax: tuple[int, int] = (4, 128)      # token ids argmax chooses from: [lo, hi)
    stop: tuple[int, ...] = (0, 1, 3)       # a generated stop token ends the reply, unprinted
    prompt_prefix: tuple[int, ...] = (1,)
    prompt_suffix: tuple[int, ...] = (1,)
    max_reply: int = 0                      # 0: generate until the context is full


@dataclass
class Tokenizer:
    """Token strings by id; `special` ids are never produced by encoding nor printed."""
    tokens: list[str]
    special: frozenset[int]
    merges: list[tuple[int, int, int]]      # (left id, right id, merged id), applied in order
    lowercase: bool = True

    @property
    def char_ids(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.tokens) if len(s) == 1 and i not in self.special}


@dataclass
class Program:
    settings: Settings
    tokenizer: Tokenizer
    consts: dict[str, Const]
    states: dict[str, State]
    form: str                       # "seq" or "step"
    body: list[Op]
    memory: dict[str, int] = field(default_factory=dict)   # "@const"/"@state"/"%value" -> address
    banks: dict[str, int] = field(default_factory=dict)    # "@const"/"@state" -> the memory bank it lies in
                                                           # (seen at 0xC000 while a `bank` op has paged it)

    def float_consts(self) -> list[str]:
        """Names of the f32 constants: a program with any is not quantised yet."""
        return [name for name, c in self.consts.items() if c.type.dtype == "f32"]

    def value_types(self) -> dict[str, TensorType]:
        return {op.result: op.type for op in self.body if op.result is not None}

    def copy(self) -> "Program":
        """A copy whose lists and dicts can be rewritten; tensors are shared (they are never mutated)."""
        return Program(
            settings=Settings(**vars(self.settings)),
            tokenizer=self.tokenizer,
            consts=dict(self.consts),
            states=dict(self.states),
            form=self.form,
            body=[Op(o.opcode, list(o.args), dict(o.attrs), o.result, o.type, o.where) for o in self.body],
            memory=dict(self.memory),
            banks=dict(self.banks),
        )
