"""bank: page memory bank n in at 0xC000, on the Spectrum 128K's port 0x7FFD.

Inline code, no routine (15 bytes, 61 T-states before contention):

        LD A,(BANKM)
        AND 0xF8                ; keep the ROM, screen and lock bits
        OR n
        LD (BANKM),A
        LD BC,0x7FFD
        OUT (C),A

BANKM (0x5B5C) is the 128 ROM's copy of the last value written to the port, which the
port itself cannot be read back for; the ROM pages by it, so it must always be right.
It is written before the OUT, and the step runs with interrupts off, so no interrupt
routine can ever see the two disagree. A, B and C change.
"""
from __future__ import annotations

BANKM = 0x5B5C
PAGING_PORT = 0x7FFD
BANK_BITS = 0x07


def call_asm(bank: int) -> str:
    if not 0 <= bank <= BANK_BITS:
        raise ValueError(f"bank {bank} is outside 0..{BANK_BITS}")
    return (f"        LD A,(0x{BANKM:04X})\n"
            f"        AND 0x{0xFF ^ BANK_BITS:02X}\n"
            f"        OR {bank}\n"
            f"        LD (0x{BANKM:04X}),A\n"
            f"        LD BC,0x{PAGING_PORT:04X}\n"
            "        OUT (C),A\n")
