"""The interface every target implements.

A target contributes passes (appended to the host pipeline) and turns the final program
into artefacts: the container a user loads (`tap`, `prg`, ...), and for inspection `asm`,
`sym`, `bin` and a memory map. Adding a machine means one new Target, not a fork.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from soulc.ir.program import Program


@dataclass
class Build:
    """What a target made of a program: artefacts by kind, and the memory map as text."""
    artefacts: dict[str, bytes | str]
    memory_map: str
    default_emit: str


@dataclass
class Target:
    name: str
    description: str
    passes: list[tuple[str, Callable[[Program], Program]]] = field(default_factory=list)
    build: Callable[[Program], Build] | None = None
    emits: tuple[str, ...] = ()
