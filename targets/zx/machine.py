"""ZX Spectrum memory maps, as the allocator and the memory-map report see them.

48K: ROM 0x0000-0x3FFF; RAM 0x4000-0x7FFF is contended (the ULA reads the screen from it,
stalling the CPU); 0x8000-0xFFFF is not. The screen and system variables take 0x4000-0x5CCA;
the BASIC loader, its variables and the machine stack sit below the CLEAR address, so the
program's own memory starts at CODE_START.

128K (and +2): eight 16K RAM banks. Bank 5 is always at 0x4000 (screen, system variables,
contended), bank 2 always at 0x8000 (uncontended), and port 0x7FFD pages any bank in at
0xC000 (bits 0-2; bit 4 picks the ROM, bit 3 the screen shown, bit 5 locks the paging until
reset). The 128 ROM keeps the last value written to the port in BANKM (0x5B5C). Banks 1, 3,
5 and 7 are contended (on the +2A/+3 it would be 4-7). The ROM's editor keeps its workspace
in bank 7, which is free to use once a program that never returns to BASIC has started.
"""
from __future__ import annotations

from dataclasses import dataclass

from soulc.passes.allocate import Region
from soulc.passes.bank_split import Bank

SCREEN = (0x4000, 0x5B00)
SYSTEM = (0x5B00, 0x5CCB)          # printer buffer and system variables
PRINTER_BUFFER = (0x5B00, 0x5C00)  # the 48K ROM uses it only for LPRINT and COPY: run-time buffers
CODE_START = 0x5E00                # CLEAR 24063: the BASIC loader (~45 bytes), its workspace and the
                                   # machine stack (the chat loop and ROM need ~100 bytes) below it
CONTENDED_END = 0x8000
TOP = 0x10000
BANK_WINDOW = (0xC000, 0x10000)


@dataclass(frozen=True)
class MachineMap:
    name: str
    contended: tuple[int, int]     # RAM the program may use that the ULA contends
    uncontended: tuple[int, int]
    fixed: tuple[tuple[str, int, int], ...]   # regions shown in the memory map but not ours
    banks: tuple[Bank, ...] = ()   # banks paged in at BANK_WINDOW, in order of preference
    spare: tuple[int, int] | None = None    # RAM for run-time buffers that the tape leaves alone


_FIXED = (("ROM", 0x0000, 0x4000), ("screen", *SCREEN), ("system variables", *SYSTEM),
          ("BASIC loader and stack", SYSTEM[1], CODE_START))

ZX48 = MachineMap(
    name="zx48",
    contended=(CODE_START, CONTENDED_END),
    uncontended=(CONTENDED_END, TOP),
    fixed=(("ROM", 0x0000, 0x4000), ("screen", *SCREEN),
           ("printer buffer: run-time buffers", *PRINTER_BUFFER),
           ("system variables", PRINTER_BUFFER[1], SYSTEM[1]),
           ("BASIC loader and stack", SYSTEM[1], CODE_START)),
    spare=PRINTER_BUFFER,
)

ZX128 = MachineMap(
    name="zx128",
    contended=(CODE_START, CONTENDED_END),      # bank 5
    uncontended=(CONTENDED_END, BANK_WINDOW[0]),  # bank 2
    fixed=_FIXED,                  # (the 128 ROM keeps its own variables in the printer buffer)
    banks=(Bank(0), Bank(4), Bank(6), Bank(1, contended=True), Bank(3, contended=True),
           Bank(7, contended=True)),
)


def data_regions(machine: MachineMap, cold_code_end: int, hot_code_end: int) -> list[Region]:
    """Free memory after the code, uncontended first."""
    return [Region("uncontended", hot_code_end, machine.uncontended[1]),
            Region("contended", cold_code_end, machine.contended[1], contended=True)]
