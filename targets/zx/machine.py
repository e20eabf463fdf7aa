"""ZX Spectrum memory maps, as the allocator and the memory-map report see them.

48K: ROM 0x0000-0x3FFF; RAM 0x4000-0x7FFF is contended (the ULA reads the screen from it,
stalling the CPU); 0x8000-0xFFFF is not. The screen and system variables take 0x4000-0x5CCA;
the BASIC loader, its variables and the machine stack sit below the CLEAR address, so the
program's own memory starts at CODE_START.
"""
from __future__ import annotations

from dataclasses import dataclass

from soulc.passes.allocate import Region

SCREEN = (0x4000, 0x5B00)
SYSTEM = (0x5B00, 0x5CCB)          # printer buffer and system variables
CODE_START = 0x5E00                # CLEAR 24063: the BASIC loader (~45 bytes), its workspace and the
                                   # machine stack (the chat loop and ROM need ~100 bytes) below it
CONTENDED_END = 0x8000
TOP = 0x10000


@dataclass(frozen=True)
class MachineMap:
    name: str
    contended: tuple[int, int]     # RAM the program may use that the ULA contends
    uncontended: tuple[int, int]
    fixed: tuple[tuple[str, int, int], ...]   # regions shown in the memory map but not ours


ZX48 = MachineMap(
    name="zx48",
    contended=(CODE_START, CONTENDED_END),
    uncontended=(CONTENDED_END, TOP),
    fixed=(("ROM", 0x0000, 0x4000), ("screen", *SCREEN), ("system variables", *SYSTEM),
           ("BASIC loader and stack", SYSTEM[1], CODE_START)),
)


def data_regions(machine: MachineMap, cold_code_end: int, hot_code_end: int) -> list[Region]:
    """Free memory after the code, uncontended first."""
    return [Region("uncontended", hot_code_end, machine.uncontended[1]),
            Region("contended", cold_code_end, machine.contended[1], contended=True)]
