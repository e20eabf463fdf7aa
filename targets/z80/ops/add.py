"""add: y[i] = sat16(a[i] + b[i]) over n int16 values.

        CALL op_add
        DEFW a, b, y, n

All registers may change. Signed overflow shows in the P/V flag of ADC HL,DE; the sum then
saturates towards the sign of the operands (both have the same sign when it overflows).
"""
from __future__ import annotations


def call_asm(a: str, b: str, y: str, n: int) -> str:
    return f"        CALL op_add\n        DEFW {a},{b},{y},{n}\n"


def routine_asm() -> str:
    return """
; ---- add (targets/z80/ops/add.py) ----
op_add:
        POP HL
        LD DE,add_par
        LD BC,8
        LDIR
        PUSH HL
        LD IX,(add_par)         ; a
        LD HL,(add_par+2)       ; b
        LD DE,(add_par+4)       ; y
        LD BC,(add_par+6)       ; n
add_loop:
        PUSH BC
        LD C,(HL)
        INC HL
        LD B,(HL)
        INC HL
        PUSH HL
        LD L,(IX+0)
        LD H,(IX+1)
        INC IX
        INC IX
        OR A
        ADC HL,BC
        JP PO,add_store
        LD HL,32767             ; overflow: the operands' sign decides
        BIT 7,B
        JR Z,add_store
        INC HL
add_store:
        EX DE,HL
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        EX DE,HL
        POP HL
        POP BC
        DEC BC
        LD A,B
        OR C
        JR NZ,add_loop
        RET
add_par: DEFS 8
"""
