"""relu: y[i] = max(0, x[i]) over n int16 values.

        CALL op_relu
        DEFW x, y, n

All registers may change. A negative value is recognised by the sign bit of its high byte.
"""
from __future__ import annotations


def call_asm(x: str, y: str, n: int) -> str:
    return f"        CALL op_relu\n        DEFW {x},{y},{n}\n"


def routine_asm() -> str:
    return """
; ---- relu (targets/z80/ops/relu.py) ----
op_relu:
        POP HL
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        PUSH DE                 ; x
        LD E,(HL)
        INC HL
        LD D,(HL)               ; DE = y
        INC HL
        LD C,(HL)
        INC HL
        LD B,(HL)               ; BC = n
        INC HL
        EX (SP),HL              ; HL = x, return address on the stack
relu_loop:
        LD A,(HL)
        INC HL
        BIT 7,(HL)
        JR Z,relu_keep
        XOR A
        LD (DE),A
        INC DE
        LD (DE),A
        JR relu_next
relu_keep:
        LD (DE),A
        INC DE
        LD A,(HL)
        LD (DE),A
relu_next:
        INC HL
        INC DE
        DEC BC
        LD A,B
        OR C
        JR NZ,relu_loop
        RET
"""
