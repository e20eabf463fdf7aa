"""add: y[i] = sat16(a[i] + b[i]) over n int16 values (1 <= n <= 65535).

        CALL op_add
        DEFW b, y, count, a             ; count: high byte n mod 256, low byte passes of 256

All registers may change (the alternate ones too). The routine reads the block with SP, then
walks a with POP (interrupts are off in the step), b and y with HL and DE; the count is in the
alternate B and C (DJNZ over n mod 256, then 256 per further pass). Per element: the low bytes
by ADD A,(HL), the high bytes by ADC A,(HL), whose P/V flag is the 16-bit signed overflow; the
rare overflow path rewrites the low byte and saturates towards the operands' sign (the wrong
sign bit the overflow left in the high byte, inverted). Each element is read before its y is
written, so y may be a or b (in place). About 101 T-states per element.
"""
from __future__ import annotations


def count_word(n: int) -> int:
    """The loop count of n elements as a word: high byte n mod 256 (DJNZ), low byte the passes."""
    if not 1 <= n <= 65535:
        raise ValueError(f"add/relu over {n} values: the Z80 routine takes 1..65535")
    return (n % 256) * 256 + (n + 255) // 256


def call_asm(a: str, b: str, y: str, n: int) -> str:
    return f"        CALL op_add\n        DEFW {b},{y},{count_word(n)},{a}\n"


def routine_asm() -> str:
    return """
; ---- add (targets/z80/ops/add.py) ----
op_add:
        POP HL                  ; -> DEFW b, y, count, a
        LD (add_sp),SP
        LD SP,HL
        POP HL                  ; b
        POP DE                  ; y
        EXX
        POP BC                  ; B' = n mod 256, C' = passes of 256
        POP HL
        LD (add_ret+1),SP       ; return past the block
        LD SP,HL                ; SP walks a
add_loop:
        EXX
        POP BC                  ; a[i]
        LD A,C
        ADD A,(HL)
        LD (DE),A
        INC HL
        INC DE
        LD A,B
        ADC A,(HL)
        JP PE,add_sat           ; signed overflow
add_hi:
        LD (DE),A
        INC HL
        INC DE
        EXX
        DJNZ add_loop
        DEC C
        JR NZ,add_loop
        LD SP,(add_sp)
add_ret:
        JP 0                    ; (patched: the caller, past the block)
add_sat:                        ; A = the high byte, its sign bit the wrong one
        RLA
        SBC A,A                 ; past 32767: FF, past -32768: 00 (the low byte)
        DEC DE
        LD (DE),A
        INC DE
        XOR 128                 ; 7F or 80
        JR add_hi
add_sp: DEFW 0
"""
