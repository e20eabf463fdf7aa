"""Run-time buffers: memory a program writes before it reads, so the image need not hold it.

A machine may have RAM that is free while the program runs and that its loader leaves alone,
such as the 48K Spectrum's printer buffer. buffers_asm puts the buffers there, in order, as
long as they fit, and the others in the code as DEFS.
"""
from __future__ import annotations

Spare = tuple[int, int] | None      # (start, end) of such RAM, or None


def buffers_asm(buffers: list[tuple[str, int]], spare: Spare) -> tuple[str, Spare]:
    """buffers: (label, bytes) each. Returns their assembly and the spare RAM still free."""
    lines = []
    for name, size in buffers:
        if spare is not None and spare[0] + size <= spare[1]:
            lines.append(f"{name} EQU 0x{spare[0]:04X}\n")
            spare = (spare[0] + size, spare[1])
        else:
            lines.append(f"{name}: DEFS {size}\n")
    return "".join(lines), spare
