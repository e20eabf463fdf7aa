"""store: copy the value x (one row of `row_bytes` bytes) into state row STEP_POS.

        CALL op_store
        DEFW state, x, row_bytes

        CALL op_storek          ; a key cache, read only by scores (see ops/scores.py)
        DEFW state, x, row_bytes
        DEFB heads, per_head

op_storek keeps the same bytes in another order: per head, the high bytes of its values
with the top bit flipped (offset form), then their low bytes; scores reads each as a row of
matvec weights. All registers may change. The row address is state + pos*row_bytes, pos
from STEP_POS.
"""
from __future__ import annotations


def call_asm(state: str, x: str, row_bytes: int) -> str:
    return f"        CALL op_store\n        DEFW {state},{x},{row_bytes}\n"


def keys_call_asm(state: str, x: str, row_bytes: int, heads: int, per_head: int) -> str:
    return (f"        CALL op_storek\n        DEFW {state},{x},{row_bytes}\n"
            f"        DEFB {heads},{per_head}\n")


def keys_routine_asm() -> str:
    return """
; ---- store a key row (targets/z80/ops/store.py) ----
op_storek:
        POP HL
        LD DE,store_par
        LD BC,8
        LDIR
        PUSH HL
        CALL store_row_address          ; DE = the row
        LD HL,(store_par+2)             ; x
        LD A,(store_par+6)
stk_head:
        PUSH AF
        LD A,(store_par+7)
        LD B,A
stk_high:
        INC HL
        LD A,(HL)
        XOR 128
        LD (DE),A
        INC HL
        INC DE
        DJNZ stk_high
        LD A,(store_par+7)
        LD B,A
        ADD A,A
        LD C,A
        XOR A
        SUB C
        LD C,A
        SBC A,A
        LD B,A                          ; BC = -2P
        ADD HL,BC                       ; back to the head's first value
        LD A,(store_par+7)
        LD B,A
stk_low:
        LD A,(HL)
        LD (DE),A
        INC HL
        INC HL
        INC DE
        DJNZ stk_low
        POP AF
        DEC A
        JR NZ,stk_head
        RET
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
