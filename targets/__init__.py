"""Targets: a machine (memory map), an ISA backend and a container, behind one interface.

A target is a module-level object registered in TARGETS by name; see target.py.
"""
from __future__ import annotations

from soulc.errors import SoulcError

from .target import Target

TARGETS: dict[str, Target] = {}


def register(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    _load_builtin_targets()
    if name not in TARGETS:
        known = ", ".join(sorted(TARGETS)) or "none"
        raise SoulcError(f"unknown target {name!r}; known targets: {known} (see soulc --list-targets)")
    return TARGETS[name]


def all_targets() -> list[Target]:
    _load_builtin_targets()
    return list(TARGETS.values())


def _load_builtin_targets() -> None:
    from . import zx  # noqa: F401  (registers the Spectrum targets)
