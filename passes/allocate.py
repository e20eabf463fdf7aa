"""allocate: place every constant, state and value in a machine's free memory.

Values live only within one step, so they share a scratch arena: each is given an offset
by first fit over its live range (from the op that defines it to its last use; an op's
operands and its result are live together, so no op writes over its own input). States
and constants each get a block of their own.

Everything is placed hottest first, and each item takes the first region in the target's
order of preference (uncontended memory before contended) where it fits, aligned as the
target asks. What does not fit anywhere is an error that says how much is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from soulc.errors import SoulcError
from soulc.ir.program import Program
from soulc.ir.verify import verify


@dataclass(frozen=True)
class Region:
    name: str
    start: int
    end: int                    # exclusive
    contended: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Item:
    name: str                   # "@const", "@state", or "%arena" for the scratch values
    size: int
    align: int
    heat: float                 # bytes read per position per byte held: higher goes first


def live_ranges(program: Program) -> dict[str, tuple[int, int]]:
    ranges = {}
    for index, op in enumerate(program.body):
        for arg in op.args:
            if arg.startswith("%"):
                start, _ = ranges[arg[1:]]
                ranges[arg[1:]] = (start, index)
        if op.result is not None:
            ranges[op.result] = (index, index)
    return ranges


def arena_offsets(program: Program, align: Callable[[str], int]) -> tuple[dict[str, int], int]:
    """First-fit offsets for the values in one arena, and the arena's size."""
    ranges = live_ranges(program)
    sizes = {op.result: op.type.nbytes for op in program.body if op.result is not None}
    placed: list[tuple[int, int, int, int]] = []      # (offset, end, first, last)
    offsets = {}
    for name in sorted(sizes, key=lambda n: (ranges[n][0], -sizes[n])):
        first, last = ranges[name]
        busy = sorted((o, e) for o, e, f, l in placed if not (l < first or last < f))
        step = align(f"%{name}")
        offset = 0
        for o, e in busy:
            if offset + sizes[name] <= o:
                break
            offset = max(offset, -(-e // step) * step)
        offsets[name] = offset
        placed.append((offset, offset + sizes[name], first, last))
    return offsets, max((e for _, e, _, _ in placed), default=0)


def data_items(program: Program, align: Callable[[str], int], arena_size: int,
               const_sizes: dict[str, int] | None = None) -> list[Item]:
    items = [Item("%arena", arena_size, align("%arena"), 1000.0)]
    for state in program.states.values():
        items.append(Item(f"@{state.name}", state.type.nbytes, align(f"@{state.name}"), 10.0))
    for const in program.consts.values():
        rows = const.type.shape[0] if len(const.type.shape) == 2 else 1
        used_by_embed = any(op.opcode == "embed" and f"@{const.name}" in op.args for op in program.body)
        heat = 1.0 / rows if used_by_embed else 1.0
        size = const.type.nbytes if const_sizes is None else const_sizes[const.name]
        if size:
            items.append(Item(f"@{const.name}", size, align(f"@{const.name}"), heat))
    return items


def place(items: list[Item], regions: list[Region], machine: str,
          optional: frozenset[str] = frozenset()) -> dict[str, int]:
    """First fit, hottest first, each region filled upwards from its start.

    If that leaves a required item without room (hot items spilled into contended memory
    and took the space a cold table needed), the constants are placed coldest first into
    the contended regions, as many as fit, and then everything else hottest first.
    An item named in `optional` that fits nowhere is left out of the result (the caller puts
    it elsewhere, e.g. in a memory bank); any other is an error. The others go first.
    """
    addresses, missing = _first_fit(items, regions, optional, cold_first=False)
    if missing is not None:
        addresses, missing = _first_fit(items, regions, optional, cold_first=True)
    if missing is not None:
        needed = sum(i.size for i in items)
        free = sum(r.size for r in regions)
        raise SoulcError(f"the model does not fit: its data needs {needed} bytes, {machine} has "
                         f"{free} free after the code (no room for {missing.name}, {missing.size} "
                         "bytes); use a smaller model or a larger machine")
    return addresses


def _first_fit(items: list[Item], regions: list[Region], optional: frozenset[str],
               cold_first: bool) -> tuple[dict[str, int], Item | None]:
    """(addresses, the first required item that found no room, or None)."""
    cursor = {r.name: r.start for r in regions}
    addresses: dict[str, int] = {}

    def put(item: Item, order: list[Region]) -> bool:
        for region in order:
            start = -(-cursor[region.name] // item.align) * item.align
            if start + item.size <= region.end:
                addresses[item.name] = start
                cursor[region.name] = start + item.size
                return True
        return False

    if cold_first:
        slow = [r for r in regions if r.contended]
        for item in sorted(items, key=lambda i: (i.heat, -i.size, i.name)):
            if item.heat <= 1.0 and item.name not in optional:
                put(item, slow)
    for item in sorted(items, key=lambda i: (i.name in optional, -i.heat, -i.size, i.name)):
        if item.name not in addresses and not put(item, regions) and item.name not in optional:
            return addresses, item
    return addresses, None


def allocate(program: Program, regions: list[Region], machine: str,
             align: Callable[[str], int] = lambda name: 1,
             const_sizes: dict[str, int] | None = None) -> Program:
    """Returns the program with its memory block filled in.

    `const_sizes` gives the bytes each constant takes in the target's own encoding (a backend
    may store a matrix as a stream with per-row constants, or fold a bias away: 0 bytes,
    not placed); by default the tensor's own size.
    """
    offsets, arena_size = arena_offsets(program, align)
    addresses = place(data_items(program, align, arena_size, const_sizes), regions, machine)
    out = program.copy()
    arena = addresses.pop("%arena")
    out.memory = {**addresses, **{f"%{name}": arena + offset for name, offset in offsets.items()}}
    return verify(out)
