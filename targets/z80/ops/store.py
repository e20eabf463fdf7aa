"""store: copy the value x (one row of `row_bytes` bytes) into state row STEP_POS.

        CALL op_store
        DEFW state, x, row_bytes

        CALL op_storek          ; a key cache, read only by scores (see ops/scores.py)
        DEFW state, x, row_bytes
        DEFB heads, per_head

op_storek keeps a key row as ops/scores.py reads it: per head (per_head = 8 values), the
bit planes of the values in offset form u = k + 32768: 8 bytes for planes 15..8, then 8 for
planes 7..0, bit d of a plane's byte from value d. Each 8x8 block of bits is transposed in
registers: a value's byte is shifted out bit by bit into eight plane bytes (B, C, D, E, H, L
and the alternate B', C'); the sign bits are flipped at the end (u's plane 15). All
registers may change. The row address is state + pos*row_bytes, pos from STEP_POS.
"""
from __future__ import annotations


def call_asm(state: str, x: str, row_bytes: int) -> str:
    return f"        CALL op_store\n        DEFW {state},{x},{row_bytes}\n"


def keys_call_asm(state: str, x: str, row_bytes: int, heads: int, per_head: int) -> str:
    return (f"        CALL op_storek\n        DEFW {state},{x},{row_bytes}\n"
            f"        DEFB {heads},{per_head}\n")


def keys_routine_asm() -> str:
    shift = "".join(f"        RLA\n        RL {r}\n" for r in "BCDEHL")
    return f"""
; ---- store a key row as bit planes (targets/z80/ops/store.py) ----
op_storek:
        POP HL
        LD DE,store_par
        LD BC,8
        LDIR
        PUSH HL
        CALL store_row_address          ; DE = the row
        LD (stk_out),DE
        LD IX,(store_par+2)             ; x
        LD A,(store_par+6)
stk_head:
        PUSH AF
        INC IX                          ; the high bytes: planes 15..8
        CALL stk_block
        LD A,(IY+0)
        CPL                             ; offset form: the sign bit flipped
        LD (IY+0),A
        DEC IX                          ; the low bytes: planes 7..0
        CALL stk_block
        LD BC,16
        ADD IX,BC
        POP AF
        DEC A
        JR NZ,stk_head
        RET

stk_block:                              ; the 8 bytes at IX+14, IX+12, ..., IX: 8 plane bytes to (stk_out)
        PUSH IX
        LD BC,14
        ADD IX,BC
        EXX
        LD D,8
        EXX
stk_value:                              ; shift this value's bits into the planes, bit 7 first
        LD A,(IX+0)
        DEC IX
        DEC IX
{shift}        EXX
        RLA
        RL B
        RLA
        RL C
        DEC D
        EXX
        JP NZ,stk_value
        LD IY,(stk_out)
        LD (IY+0),B
        LD (IY+1),C
        LD (IY+2),D
        LD (IY+3),E
        LD (IY+4),H
        LD (IY+5),L
        EXX
        LD (IY+6),B
        LD (IY+7),C
        EXX
        PUSH IY
        LD BC,8
        ADD IY,BC
        LD (stk_out),IY
        POP IY
        POP IX
        RET
stk_out: DEFW 0
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
