"""bank_split: place a model larger than the address space, paging memory banks in as the step runs.

The machine (the Spectrum 128K) always sees some memory, and one of several banks at a time
in a window (0xC000-0xFFFF) that a `bank n` op switches. This pass, run where a 64K machine
runs `allocate`, decides what goes where, rewrites the body so each op finds its data paged
in, and fills in `memory` and `banks`.

- Always visible: the code (the target's), the scratch arena of values, the tables and vectors
  (norm gains, the softmax table, the position table); then, hottest first as `allocate`
  orders them, as much as fits of the KV caches, the weight matrices and the token table
  (`allocate.place` with those optional). Only these three kinds may go to banks.
- The rest goes to banks, in the order the step first uses it, each bank filled to the brim
  before the next is opened. A step then pages each bank in once: the page switches per step
  are the number of banks used (fewer when the last ones hold only output weights, skipped
  while a prompt is read). A matrix that crosses the end of a bank is split by rows into two
  constants (`@w.part0`, `@w.part1`, their biases likewise) and two matvecs whose outputs a
  `concat` joins under the original name; each part keeps the weight's shift, so the numbers
  are exactly those of the whole.
- A KV cache that does not fit always-visible memory goes to a bank with that layer's
  attention. It is used at several points of the step (`store` writes it, `scores` or `mix`
  reads it), and everything the step uses between its first and last use joins its group,
  which is never split: for attention, the key cache, the value weights and the value cache.
  So `scores` and `mix` run with the bank in which `store` wrote, without switching back.
  (Keeping the caches always visible is preferred: they are read more per byte than weights,
  and a group that does not fit what is left of a bank leaves that space unused.)
- Banks are numbered by heat, the bytes read from them per step weighted as `allocate` weighs
  them: the hottest get the uncontended banks.

Then a `bank n` op goes before each op that uses a bank other than the one paged in. The
first banked op of a step always gets one: the bank paged in when a step begins is not
known (the previous step may have stopped before its output ops).

The code grows with the new ops, and the arena with the split matvecs' values, which the
plan, made before the rewrite, cannot see: if the always-visible items no longer fit after
it, the plan is made again with RESERVE_STEP bytes less always-visible memory, until they do.

Limits: a table read whole by one op (a token table of more than 16K) cannot be split, and
neither can a KV-cache group; a model needing either stops with an error, as does one whose
banked data needs more banks than the machine has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from soulc.errors import SoulcError
from soulc.ir.ops import BANK_WINDOW
from soulc.ir.program import Const, Op, Program, TensorType
from soulc.ir.verify import verify

from .allocate import Item, Region, arena_offsets, data_items, place

MAX_TRIES = 8
RESERVE_STEP = 256          # bytes of always-visible memory given up per new try


@dataclass(frozen=True)
class Bank:
    number: int
    contended: bool = False


@dataclass(frozen=True)
class BankedMachine:
    name: str
    visible: Callable[[Program], list[Region]]        # free always-visible memory after the program's code
    banks: tuple[Bank, ...]                           # the banks data may use, in order of preference
    const_sizes: Callable[[Program], dict[str, int]]  # bytes of each constant in the backend's encoding
    window: tuple[int, int] = BANK_WINDOW
    align: Callable[[str], int] = lambda name: 1
    # the most bytes any one row of a matrix takes in the backend's encoding (rows may differ);
    # None: every row takes the same share
    row_bytes: Callable[[Program], dict[str, int]] | None = None

    @property
    def bank_size(self) -> int:
        return self.window[1] - self.window[0]


@dataclass
class _Bin:
    """One bank's worth of the stream: (name, first row, end row) pieces; rows None: whole."""
    pieces: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    used: int = 0
    heat: float = 0.0


@dataclass
class _Plan:
    bank_of: dict[str, int]                               # whole items in banks
    splits: dict[str, list[tuple[int, int, int]]]         # matrix -> (first row, end row, bank) per part


def bank_split(program: Program, machine: BankedMachine) -> Program:
    reserve = 0
    for _ in range(MAX_TRIES):
        regions = _shrink(machine.visible(program), reserve)
        out = _rewrite(program, _plan(program, machine, regions))
        placed = _place(out, machine)
        if placed is not None:
            return verify(placed)
        reserve += RESERVE_STEP
    raise SoulcError(f"bank_split: the always-visible data of the model does not settle into "
                     f"{machine.name}'s memory after {MAX_TRIES} tries")


def _shrink(regions: list[Region], reserve: int) -> list[Region]:
    """The regions with `reserve` bytes taken from the start of the first (after the hot code)."""
    first, *rest = regions
    return [Region(first.name, min(first.end, first.start + reserve), first.end, first.contended), *rest]


# the plan ---------------------------------------------------------------------------------

def _bankable(program: Program, item: Item) -> bool:
    """KV caches, weight matrices and the token table; the position table, read with the token
    table by the same op and smaller, stays always visible, so the token table has a bank of its own."""
    if item.name[1:] in program.states:
        return True
    return any((op.opcode == "matvec" or op.opcode == "embed") and op.args[0] == item.name for op in program.body)


def _items(program: Program, machine: BankedMachine) -> list[Item]:
    arena = arena_offsets(program, machine.align)[1]
    return data_items(program, machine.align, arena, machine.const_sizes(program))


def _plan(program: Program, machine: BankedMachine, regions: list[Region]) -> _Plan:
    items = _items(program, machine)
    optional = frozenset(i.name for i in items if _bankable(program, i))
    visible_free = sum(r.size for r in regions)
    try:
        visible = place(items, regions, machine.name, optional)
    except SoulcError:
        raise _does_not_fit(machine, items, visible_free) from None
    banked = {i.name: i for i in items if i.name not in visible}
    bins = _stream(program, machine, banked)
    if len(bins) > len(machine.banks):
        raise _does_not_fit(machine, items, visible_free, len(bins))
    order = sorted(range(len(bins)), key=lambda b: -bins[b].heat)
    number = {b: machine.banks[rank].number for rank, b in enumerate(order)}
    plan = _Plan({}, {})
    for b, bin_ in enumerate(bins):
        for name, lo, hi in bin_.pieces:
            if lo is None:
                plan.bank_of[name] = number[b]
            else:
                plan.splits.setdefault(name, []).append((lo, hi, number[b]))
    return plan


def _groups(program: Program, banked: set[str]) -> list[list[str]]:
    """Banked names in order of first use, grouped where their uses interleave."""
    spans: dict[str, list[int]] = {}
    for index, op in enumerate(program.body):
        for arg in op.args:
            if arg in banked:
                spans.setdefault(arg, [index, index])[1] = index
    groups: list[list[str]] = []
    last = -1
    for name in sorted(spans, key=lambda n: tuple(spans[n])):
        first, end = spans[name]
        if groups and first <= last:
            groups[-1].append(name)
            last = max(last, end)
        else:
            groups.append([name])
            last = end
    return groups


def _splittable(program: Program, group: list[str]) -> bool:
    """A group of one weight matrix read by one matvec can be cut by rows."""
    if len(group) != 1 or group[0][1:] not in program.consts:
        return False
    users = [op for op in program.body if group[0] in op.args]
    return len(users) == 1 and users[0].opcode == "matvec" and users[0].args[0] == group[0]


def _stream(program: Program, machine: BankedMachine, banked: dict[str, Item]) -> list[_Bin]:
    capacity = machine.bank_size
    bins: list[_Bin] = []

    def room() -> int:
        return capacity - bins[-1].used if bins else 0

    def add(name, lo, hi, size):
        bins[-1].pieces.append((name, lo, hi))
        bins[-1].used += size
        bins[-1].heat += size * banked[name].heat

    for group in _groups(program, set(banked)):
        size = sum(banked[n].size for n in group)
        if size <= room():
            for name in group:
                add(name, None, None, banked[name].size)
        elif _splittable(program, group):
            name = group[0]
            rows = program.consts[name[1:]].type.shape[0]
            row_bytes = (machine.row_bytes(program)[name[1:]] if machine.row_bytes
                         else -(-banked[name].size // rows))   # an upper bound for any part's rows
            lo = 0
            while lo < rows:
                if room() < row_bytes:
                    bins.append(_Bin())
                take = min(rows - lo, room() // row_bytes)
                if take == rows:
                    add(name, None, None, banked[name].size)
                else:
                    add(name, lo, lo + take, take * row_bytes)
                lo += take
        elif size <= capacity:
            bins.append(_Bin())
            for name in group:
                add(name, None, None, banked[name].size)
        elif len(group) == 1:
            raise SoulcError(f"the model does not fit {machine.name}: {group[0]} ({size} bytes) is larger than a "
                             f"memory bank ({capacity}), and only a matvec's weights can be split")
        else:
            raise SoulcError(f"the model does not fit {machine.name}: {', '.join(group)} must share one "
                             f"memory bank ({size} bytes), and a bank holds {capacity}")
    return bins


def _does_not_fit(machine: BankedMachine, items: list[Item], visible_free: int,
                  banks_needed: int | None = None) -> SoulcError:
    needed = sum(i.size for i in items)
    banks = len(machine.banks)
    free = visible_free + banks * machine.bank_size
    text = (f"the model does not fit: its data needs {needed} bytes, {machine.name} has {free} free after "
            f"the code ({visible_free} always visible, {banks} banks of {machine.bank_size})")
    if banks_needed is not None and needed <= free:
        text += (f"; read in order and split at whole rows, what is not always visible needs "
                 f"{banks_needed} banks")
    return SoulcError(text + "; use a smaller model")


# the rewrite ------------------------------------------------------------------------------

def _part(program: Program, name: str, index: int, lo: int, hi: int) -> Const:
    const = program.consts[name]
    return Const(f"{name}.part{index}", TensorType(const.type.dtype, (hi - lo, *const.type.shape[1:])),
                 const.data[lo:hi], const.shift)


def _rewrite(program: Program, plan: _Plan) -> Program:
    out = program.copy()
    banks = {name: bank for name, bank in plan.bank_of.items()}
    body: list[Op] = []
    for op in out.body:
        parts = plan.splits.get(op.args[0]) if op.opcode == "matvec" else None
        if not parts:
            body.append(op)
            continue
        weight, bias = op.args[0][1:], (op.args[2][1:] if len(op.args) == 3 else None)
        values = []
        for index, (lo, hi, bank) in enumerate(parts):
            w = _part(program, weight, index, lo, hi)
            out.consts[w.name] = w
            banks[f"@{w.name}"] = bank
            args = [f"@{w.name}", op.args[1]]
            if bias is not None:
                b = _part(program, bias, index, lo, hi)
                out.consts[b.name] = b
                args.append(f"@{b.name}")
            values.append(f"{op.result}.part{index}")
            body.append(Op("matvec", args, dict(op.attrs), values[-1]))
        joined = values[0]
        for index, value in enumerate(values[1:], 1):
            result = op.result if index == len(values) - 1 else f"{op.result}.join{index}"
            body.append(Op("concat", [f"%{joined}", f"%{value}"], {}, result))
            joined = result
        del out.consts[weight]
        if bias is not None and not any(f"@{bias}" in o.args for o in out.body if o is not op):
            del out.consts[bias]
    out.body = _page(body, banks)
    out.banks = banks
    out.memory = {}
    for o in out.body:
        o.type = None           # the verifier infers the new ops' types
    return verify(out)


def _page(body: list[Op], banks: dict[str, int]) -> list[Op]:
    """The body with a `bank` op before each op that needs a bank other than the one paged in."""
    paged = None
    out = []
    for op in body:
        needed = {banks[a] for a in op.args if a in banks}
        if len(needed) > 1:
            raise AssertionError(f"bank_split: {op.opcode} {', '.join(op.args)} needs banks {sorted(needed)}")
        if needed and needed != {paged}:
            (paged,) = needed
            out.append(Op("bank", [], {"n": paged}))
        out.append(op)
    return out


# the placement ----------------------------------------------------------------------------

def _place(program: Program, machine: BankedMachine) -> Program | None:
    """Addresses for everything: None if the always-visible items do not fit after all."""
    items = _items(program, machine)
    visible = [i for i in items if i.name not in program.banks]
    try:
        addresses = place(visible, machine.visible(program), machine.name)
    except SoulcError:
        return None
    order = {}
    for op in program.body:
        for arg in op.args:
            order.setdefault(arg, len(order))
    sizes = {i.name: i.size for i in items}
    cursor = {}
    # constants first in each bank, so its tape block ends with the last of them
    for name in sorted(program.banks, key=lambda n: (n[1:] in program.states, order.get(n, 0))):
        bank = program.banks[name]
        start = cursor.get(bank, machine.window[0])
        addresses[name] = start
        cursor[bank] = start + sizes.get(name, 0)
        if cursor[bank] > machine.window[1]:
            raise AssertionError(f"bank_split: bank {bank} overflows at {name}")
    for name in [n for n in program.banks if sizes.get(n, 0) == 0]:
        del addresses[name]
    out = program.copy()
    arena = addresses.pop("%arena")
    offsets, _ = arena_offsets(program, machine.align)
    out.memory = {**addresses, **{f"%{name}": arena + offset for name, offset in offsets.items()}}
    return out
