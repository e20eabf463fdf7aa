"""store: copy the value x (one row of `row_bytes` bytes) into state row STEP_POS.

        CALL op_store
        DEFW state, x, row_bytes

All registers may change. The row address is state + pos*row_bytes, pos from STEP_POS.
"""
from __future__ import annotations


def call_asm(state: str, x: str, row_bytes: int) -> str:
    return f"        CALL op_store\n        DEFW {state},{x},{row_bytes}\n"


def routine_asm() -> str:
    return """
; ---- store (targets/z80/ops/store.py) ----
op_store:
        POP HL
        LD DE,store_par
        LD BC,6
        LDIR
        PUSH HL
        LD A,(STEP_POS)
        LD HL,(store_par)
        LD DE,(store_par+4)
        OR A
        JR Z,store_copy
store_row:
        ADD HL,DE
        DEC A
        JR NZ,store_row
store_copy:
        EX DE,HL                ; DE = destination
        LD HL,(store_par+2)
        LD BC,(store_par+4)
        LDIR
        RET
store_par: DEFS 6
"""
