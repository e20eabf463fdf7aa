"""relu: y[i] = max(0, x[i]) over n int16 values (1 <= n <= 65535).

        LD HL,x + 2n - 1                ; the last value's high byte
        LD DE,y + 2n                    ; just past y
        LD BC,count                     ; B = n mod 256, C = passes of 256 (see add.count_word)
        CALL op_relu

All registers may change. The values go from the last to the first: each is read through HL
(high byte first), replaced by 0 when the sign bit of its high byte is set, and written by
PUSH with SP walking down y (interrupts are off in the step). A value is read before its y is
written, so y may be x. About 72 T-states per element.
"""
from __future__ import annotations

from .add import count_word


def call_asm(x: str, y: str, n: int) -> str:
    count = count_word(n)
    return (f"        LD HL,{x}+{2 * n - 1}\n        LD DE,{y}+{2 * n}\n        LD BC,{count}\n"
            "        CALL op_relu\n")


def routine_asm() -> str:
    return """
; ---- relu (targets/z80/ops/relu.py) ----
op_relu:
        LD (relu_sp),SP
        EX DE,HL
        LD SP,HL                ; SP walks y down
        EX DE,HL
        XOR A
relu_loop:
        LD D,(HL)
        DEC HL
        LD E,(HL)
        DEC HL
        BIT 7,D
        JR Z,relu_put
        LD D,A                  ; negative: 0
        LD E,A
relu_put:
        PUSH DE
        DJNZ relu_loop
        DEC C
        JR NZ,relu_loop
        LD SP,(relu_sp)
        RET
relu_sp: DEFW 0
"""
