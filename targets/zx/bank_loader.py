"""The 128K soul's machine-code loader: pages in each memory bank and loads its block from tape.

The BASIC loader (`CLEAR 24063: LOAD ""CODE: RANDOMIZE USR load_banks`) loads the main block
(code and always-visible data, 0x5E00 up to 0xBFFF) and calls `load_banks`, which

1. checks that paging works: it writes a different byte at 0xC000 with banks 1 and 0 paged in
   and reads bank 1's back. It does not on a 48K, nor on a 128K in 48 BASIC (which locks the
   paging), and the loader says so and stops;
2. for each entry of the bank table (bank, length), pages the bank in (BANKM first, then port
   0x7FFD, with interrupts off in between) and loads the next tape block, which is headerless,
   into 0xC000 with the ROM's LD-BYTES (0x0556: IX = address, DE = length, A = 0xFF for a data
   block, carry set to load rather than verify; carry comes back reset on a loading error);
3. pages bank 0 back in and jumps to the chat loop's `entry`.

On a loading error it prints `Tape loading error.` and stops, rather than returning to 128
BASIC: the editor's workspace in bank 7 may already have been overwritten by then.
BREAK during loading gives the ROM's own `D BREAK - CONT repeats`.

The table has a fixed number of entries (unused ones hold the end marker 0xFF), so the
loader's size, and so the code's, does not depend on how many banks a model needs.
"""
from __future__ import annotations

from soulc.targets.z80.ops.bank import BANKM, PAGING_PORT

LD_BYTES = 0x0556
DATA_FLAG = 0xFF
END = 0xFF
PROBE = 0xC000
NOT_128K = "This tape needs a Spectrum 128K\rin 128 BASIC: use Tape Loader."     # 32 columns a line
LOAD_ERROR = "Tape loading error.\rRewind the tape and LOAD again."


def _message(label: str, text: str) -> str:
    return f"{label}: DEFB {','.join(str(ord(c)) for c in text)},13,0\n"


def loader_asm(blocks: list[tuple[int, int]], entries: int) -> str:
    """`load_banks` for these (bank, length) blocks in tape order, with a table of `entries`."""
    if len(blocks) > entries:
        raise ValueError(f"{len(blocks)} bank blocks, the table holds {entries}")
    table = "".join(f"        DEFB {bank}\n        DEFW {length}\n" for bank, length in blocks)
    table += f"        DEFS {3 * (entries - len(blocks)) + 1},{END}\n"
    return f"""
; ---- 128K bank loader (targets/zx/bank_loader.py) ----
load_banks:
        LD A,1
        CALL load_page
        LD A,1
        LD (0x{PROBE:04X}),A
        XOR A
        CALL load_page
        XOR A
        LD (0x{PROBE:04X}),A
        INC A
        CALL load_page
        LD A,(0x{PROBE:04X})
        DEC A
        LD HL,load_not_128k
        JR NZ,load_stop
        LD HL,load_table
load_next:
        LD A,(HL)
        INC HL
        CP {END}
        JR Z,load_done
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        PUSH HL
        CALL load_page
        LD IX,0x{PROBE:04X}
        LD A,{DATA_FLAG}
        SCF
        CALL 0x{LD_BYTES:04X}
        POP HL
        JR C,load_next
        LD HL,load_error
        JR load_stop
load_done:
        XOR A
        CALL load_page
        JP entry
load_stop:                              ; print the message at HL and stop
        PUSH HL
        XOR A
        CALL load_page
        CALL io_init
        POP HL
load_stop_char:
        LD A,(HL)
        OR A
        JR Z,load_halt
        CALL io_print_char
        INC HL
        JR load_stop_char
load_halt:
        DI
        HALT
load_page:                              ; page bank A in at 0xC000
        LD B,A
        DI
        LD A,(0x{BANKM:04X})
        AND 0xF8
        OR B
        LD (0x{BANKM:04X}),A
        LD BC,0x{PAGING_PORT:04X}
        OUT (C),A
        EI
        RET
{_message("load_not_128k", NOT_128K)}{_message("load_error", LOAD_ERROR)}load_table:
{table}"""
