"""softmax_lut: per head, w[j] = table[min(last, max_j(s[j] >> shift) - (s[j] >> shift))]
for positions j = 0..STEP_POS; s is int32 [heads, context], w is u8 [heads, context].

        CALL op_softmax<k>
        DEFW scores, table, weights
        DEFB heads
        DEFW last           ; the table's length - 1

The routine is generated per (shift, context). The shifted scores are kept with their sign
bit flipped, which turns the signed maximum into an unsigned one and leaves the (unsigned,
32-bit) difference unchanged. All registers may change.
"""
from __future__ import annotations

from .shifts import sar32_asm


def routine_name(index: int) -> str:
    return f"op_softmax{index}"


def call_asm(index: int, scores: str, table: str, weights: str, heads: int, table_len: int) -> str:
    return (f"        CALL {routine_name(index)}\n        DEFW {scores},{table},{weights}\n"
            f"        DEFB {heads}\n        DEFW {table_len - 1}\n")


def routine_asm(index: int, shift: int, context: int) -> str:
    p = f"sm{index}"
    return f"""
; ---- softmax_lut (targets/z80/ops/softmax_lut.py) ----
{routine_name(index)}:
        POP HL
        LD DE,{p}_par
        LD BC,9
        LDIR
        PUSH HL
        LD A,({p}_par+6)
        LD ({p}_h),A
{p}_head:
        LD HL,({p}_par)
        LD ({p}_src),HL
        LD HL,{p}_tmp
        LD ({p}_dst),HL
        LD HL,0
        LD ({p}_max),HL
        LD ({p}_max+2),HL
        LD A,(STEP_POS)
        INC A
        LD ({p}_n),A
{p}_scale:                              ; tmp[j] = (s[j] >> shift) with the sign bit flipped
        LD HL,({p}_src)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD C,(HL)
        INC HL
        LD B,(HL)
        INC HL
        LD ({p}_src),HL
        LD H,B
        LD L,C
{sar32_asm(shift)}        LD A,H
        XOR 128
        LD H,A
        LD B,H
        LD C,L
        LD HL,({p}_dst)
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        LD (HL),C
        INC HL
        LD (HL),B
        INC HL
        LD ({p}_dst),HL
        LD HL,({p}_max+2)               ; a new maximum?
        OR A
        SBC HL,BC
        JR C,{p}_new
        JR NZ,{p}_old
        LD HL,({p}_max)
        SBC HL,DE
        JR NC,{p}_old
{p}_new:
        LD ({p}_max),DE
        LD ({p}_max+2),BC
{p}_old:
        LD HL,{p}_n
        DEC (HL)
        JR NZ,{p}_scale
        LD HL,{p}_tmp
        LD ({p}_src),HL
        LD A,(STEP_POS)
        INC A
        LD ({p}_n),A
{p}_weigh:                              ; w[j] = table[min(last, max - tmp[j])]
        LD HL,({p}_src)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD C,(HL)
        INC HL
        LD B,(HL)
        INC HL
        LD ({p}_src),HL
        LD HL,({p}_max)
        OR A
        SBC HL,DE
        EX DE,HL                        ; DE = low word of the difference
        LD HL,({p}_max+2)
        SBC HL,BC
        LD A,H
        OR L
        JR NZ,{p}_far
        LD HL,({p}_par+7)
        OR A
        SBC HL,DE
        JR NC,{p}_index
{p}_far:
        LD DE,({p}_par+7)
{p}_index:
        LD HL,({p}_par+2)
        ADD HL,DE
        LD A,(HL)
        LD HL,({p}_par+4)
        LD (HL),A
        INC HL
        LD ({p}_par+4),HL
        LD HL,{p}_n
        DEC (HL)
        JR NZ,{p}_weigh
        LD HL,({p}_par)                 ; the next head's rows
        LD DE,{4 * context}
        ADD HL,DE
        LD ({p}_par),HL
        LD A,(STEP_POS)
        INC A
        LD E,A
        LD D,0
        LD HL,({p}_par+4)
        OR A
        SBC HL,DE
        LD DE,{context}
        ADD HL,DE
        LD ({p}_par+4),HL
        LD HL,{p}_h
        DEC (HL)
        JP NZ,{p}_head
        RET
{p}_par: DEFS 9
{p}_h: DEFB 0
{p}_n: DEFB 0
{p}_src: DEFW 0
{p}_dst: DEFW 0
{p}_max: DEFS 4
{p}_tmp: DEFS {4 * context}
"""
