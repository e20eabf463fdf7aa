"""The `--memory-map` report: every region of the machine with start, end, size and free bytes."""
from __future__ import annotations

from soulc.ir.program import Program

from .machine import MachineMap


def _sizes(program: Program) -> dict[str, int]:
    sizes = {f"@{c.name}": c.type.nbytes for c in program.consts.values()}
    sizes.update({f"@{s.name}": s.type.nbytes for s in program.states.values()})
    return sizes


def memory_map(program: Program, machine: MachineMap, symbols: dict[str, int]) -> str:
    rows = [(start, end, name) for name, start, end in machine.fixed]
    rows.append((machine.contended[0], symbols["cold_end"], "code: chat loop, ROM I/O"))
    rows.append((machine.uncontended[0], symbols["hot_end"], "code: model step and its routines"))
    sizes = _sizes(program)
    values = [a for n, a in program.memory.items() if n.startswith("%")]
    if values:
        value_end = max(a + t.nbytes for n, a in program.memory.items() if n.startswith("%")
                        for t in [program.value_types()[n[1:]]])
        rows.append((min(values), value_end, "values (shared scratch arena)"))
    for name, address in program.memory.items():
        if name in sizes:
            kind = "KV cache" if name[1:] in program.states else "constant"
            rows.append((address, address + sizes[name], f"{kind} {name}"))
    rows.sort()
    lines = [f"{machine.name} memory map", f"  {'start':>6} {'end':>6} {'size':>6}  what"]
    cursor = 0
    free = {"contended": 0, "uncontended": 0}
    for start, end, what in rows:
        if start > cursor:
            lines.append(_row(cursor, start, "free"))
            _count_free(free, machine, cursor, start)
        lines.append(_row(start, end, what))
        cursor = max(cursor, end)
    if cursor < 0x10000:
        lines.append(_row(cursor, 0x10000, "free"))
        _count_free(free, machine, cursor, 0x10000)
    lines.append(f"free: {free['uncontended']} bytes uncontended, {free['contended']} bytes contended")
    return "\n".join(lines) + "\n"


def _row(start: int, end: int, what: str) -> str:
    return f"  0x{start:04X} 0x{max(start, end - 1):04X} {end - start:6}  {what}"


def _count_free(free, machine: MachineMap, start: int, end: int) -> None:
    for kind, (lo, hi) in (("contended", machine.contended), ("uncontended", machine.uncontended)):
        free[kind] += max(0, min(end, hi) - max(start, lo))
