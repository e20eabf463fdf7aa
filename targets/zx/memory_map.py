"""The `--memory-map` report: every region of the machine with start, end, size and free bytes;
on a machine with memory banks, the 64K seen with the banks' window, then each bank."""
from __future__ import annotations

from soulc.ir.program import Program

from .machine import BANK_WINDOW, MachineMap


def _sizes(program: Program, const_sizes: dict[str, int] | None) -> dict[str, int]:
    sizes = {f"@{c.name}": c.type.nbytes if const_sizes is None else const_sizes[c.name]
             for c in program.consts.values()}
    sizes.update({f"@{s.name}": s.type.nbytes for s in program.states.values()})
    return sizes


def _what(program: Program, name: str) -> str:
    return f"{'KV cache' if name[1:] in program.states else 'constant'} {name}"


def memory_map(program: Program, machine: MachineMap, symbols: dict[str, int],
               const_sizes: dict[str, int] | None = None) -> str:
    """`const_sizes`: the bytes of each constant in the backend's encoding (default: the tensor's)."""
    rows = [(start, end, name) for name, start, end in machine.fixed]
    rows.append((machine.contended[0], symbols["cold_end"], "code: chat loop, ROM I/O"))
    rows.append((machine.uncontended[0], symbols["hot_end"], "code: model step and its routines"))
    if machine.banks:
        rows.append((*BANK_WINDOW, "bank window: the bank paged in (below)"))
    sizes = _sizes(program, const_sizes)
    values = [a for n, a in program.memory.items() if n.startswith("%")]
    if values:
        value_end = max(a + t.nbytes for n, a in program.memory.items() if n.startswith("%")
                        for t in [program.value_types()[n[1:]]])
        rows.append((min(values), value_end, "values (shared scratch arena)"))
    for name, address in program.memory.items():
        if name in sizes and name not in program.banks:
            rows.append((address, address + sizes[name], _what(program, name)))
    lines = [f"{machine.name} memory map", f"  {'start':>6} {'end':>6} {'size':>6}  what"]
    free = {"contended": 0, "uncontended": 0}
    for start, end in _rows(lines, sorted(rows), 0, 0x10000):
        _count_free(free, machine, start, end)
    lines.append(f"free: {free['uncontended']} bytes uncontended, {free['contended']} bytes contended")
    for bank in sorted(machine.banks, key=lambda b: b.number):
        kind = "contended" if bank.contended else "uncontended"
        lines.append(f"bank {bank.number} ({kind}) at 0x{BANK_WINDOW[0]:04X}")
        placed = sorted((address, address + sizes[name], _what(program, name))
                        for name, address in program.memory.items() if program.banks.get(name) == bank.number)
        gaps = _rows(lines, placed, *BANK_WINDOW)
        lines.append(f"  free: {sum(end - start for start, end in gaps)} bytes")
    return "\n".join(lines) + "\n"


def _rows(lines: list[str], rows: list[tuple[int, int, str]], start: int, end: int) -> list[tuple[int, int]]:
    """Appends the rows with the free gaps between them from start to end; returns the gaps."""
    cursor = start
    gaps = []
    for row_start, row_end, what in rows:
        if row_start > cursor:
            lines.append(_row(cursor, row_start, "free"))
            gaps.append((cursor, row_start))
        lines.append(_row(row_start, row_end, what))
        cursor = max(cursor, row_end)
    if cursor < end:
        lines.append(_row(cursor, end, "free"))
        gaps.append((cursor, end))
    return gaps


def _row(start: int, end: int, what: str) -> str:
    return f"  0x{start:04X} 0x{max(start, end - 1):04X} {end - start:6}  {what}"


def _count_free(free, machine: MachineMap, start: int, end: int) -> None:
    for kind, (lo, hi) in (("contended", machine.contended), ("uncontended", machine.uncontended)):
        free[kind] += max(0, min(end, hi) - max(start, lo))
