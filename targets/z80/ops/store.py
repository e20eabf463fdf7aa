"""store: copy the value x (one row of `row_bytes` bytes) into state row STEP_POS.

        CALL op_store
        DEFW state, x, row_bytes

        CALL op_storek          ; a key cache, read only by scores (see ops/scores.py)
        DEFW state, x, row_bytes
        DEFB heads, per_head

op_storek keeps a key row as ops/scores.py reads it: per head (per_head = 8 values), the
bit planes of the values in offset form u = k + 32768: 8 bytes for planes 15..8, then 8 for
planes 7..0, bit d of a plane's byte from value d. Per head, two phases (the values' low
bytes, then their high bytes) each turn 8 bytes into 8 planes: SP reads the bytes with POP AF
(from x - 1 for the low bytes, from x for the high ones: A gets every other byte; interrupts
are off in `step`), each byte's bits are shifted out of A (RRA for even values, RLA for odd
ones, so that the two register sets swap only twice per pair of values) into eight plane
registers with RR (B', C' and B, C, D, E, H, L: after 8 values bit d is value d's), and the
planes are written by four PUSHes from the head's end (HL'). u's plane 15 is k's sign bit
flipped: XOR with E' = 255 in the high phase. About 2,300 T-states per head (12 per bit for
the shifts). All registers may change. The row address is state + pos*row_bytes, pos from
STEP_POS.
"""
from __future__ import annotations

import numpy as np


def call_asm(state: str, x: str, row_bytes: int) -> str:
    return f"        CALL op_store\n        DEFW {state},{x},{row_bytes}\n"


def keys_call_asm(state: str, x: str, row_bytes: int, heads: int, per_head: int) -> str:
    return (f"        CALL op_storek\n        DEFW {state},{x},{row_bytes}\n"
            f"        DEFB {heads},{per_head}\n")


def keys_routine_asm() -> str:
    up = "".join(f"        RRA\n        RR {r}\n" for r in "BCDEHL")            # bits 2..7
    down = "".join(f"        RLA\n        RR {r}\n" for r in "LHEDCB")          # bits 7..2
    return f"""
; ---- store a key row as bit planes (targets/z80/ops/store.py) ----
op_storek:
        POP HL
        LD DE,store_par
        LD BC,8
        LDIR
        PUSH HL
        CALL store_row_address          ; DE = the row
        LD (stk_sp),SP
        LD HL,16
        ADD HL,DE
        LD E,0                          ; this register set (') keeps HL' = the end of the
        LD IX,(store_par+2)             ; head's 16 bytes, E' = 0 or 255, D' = the count
        DEC IX                          ; x - 1: POP AF from here puts the low bytes in A
stk_phase:                              ; 8 bytes of the values (low, then high) -> 8 planes
        LD SP,IX
        LD D,4
stk_pair:                               ; two values: A's bits into B', C' (planes 0, 1), B..L (2..7)
        POP AF
        RRA
        RR B
        RRA
        RR C
        EXX
{up}        POP AF
{down}        EXX
        RLA
        RR C
        RLA
        RR B
        DEC D
        JP NZ,stk_pair
        LD SP,HL                        ; the planes, pushed from the end
        PUSH BC
        LD BC,-8
        ADD HL,BC
        LD A,E                          ; 255 in the high phase: u's plane 15 is k's sign flipped
        EXX
        XOR L
        LD L,A
        PUSH BC
        PUSH DE
        PUSH HL
        INC IX                          ; the high bytes
        EXX
        LD A,E
        XOR 255
        LD E,A
        JR NZ,stk_phase
        LD BC,32                        ; the next head: x + 16, 16 bytes on in the row
        ADD HL,BC
        EXX
        LD BC,14
        ADD IX,BC
        LD HL,store_par+6
        DEC (HL)
        EXX
        JP NZ,stk_phase
        LD SP,(stk_sp)
        RET
stk_sp: DEFW 0
"""


def routine_asm() -> str:
    return """
; ---- store (targets/z80/ops/store.py) ----
op_store:
        POP HL
        LD DE,store_par
        LD BC,6
        LDIR
        PUSH HL
        CALL store_row_address
        LD HL,(store_par+2)
        LD BC,(store_par+4)
        LDIR
        RET
store_row_address:              ; DE = state + STEP_POS * row_bytes
        LD A,(STEP_POS)
        LD HL,(store_par)
        LD DE,(store_par+4)
        OR A
        JR Z,store_row_done
store_row:
        ADD HL,DE
        DEC A
        JR NZ,store_row
store_row_done:
        EX DE,HL
        RET
store_par: DEFS 8
"""


def key_rows(keys: np.ndarray, heads: int) -> bytes:
    """Key rows [rows, width] as op_storek writes them: per row and head, the bit planes of the
    keys in offset form (k + 32768), planes 15..8 then 7..0, bit d of a plane byte from value d."""
    u = (keys.astype(np.int64) + 32768).reshape(len(keys), heads, -1)
    planes = np.arange(15, -1, -1)
    bits = (u[:, :, None, :] >> planes[None, None, :, None]) & 1
    return (bits << np.arange(u.shape[2])).sum(axis=3).astype(np.uint8).tobytes()
