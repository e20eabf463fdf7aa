"""mix: per head h, out[h*P+d] = sat16(floor(sum_j w[h, j] * v[j, h*P+d] / max(1, sum_j w[h, j])))
over positions j = 0..STEP_POS; w is u8 [heads, context], v the int16 state [context, width].

        CALL op_mix
        DEFW weights, values, out
        DEFB heads, per_head
        DEFW row_bytes, context

Each product w*|v| is an eight-step shift-and-add on the weight's bits (the weight is the
short operand), skipped when w is 0, and added to or subtracted from a 32-bit sum kept in
the alternate registers (H'L' low word, D'E' high word); v's sign rides in the carry of F'. The quotient always fits: |sum w*v|
<= 32768 * sum w. A negative sum n is divided as -1 - (-n - 1) // s, which floors; both
dividends are below 65536 * s, so the 16-step divide does. All registers may change.
"""
from __future__ import annotations

NEEDS = {"m_div16q", "m_neg32"}      # shared arithmetic it calls (runtime_math.py)


def call_asm(weights: str, values: str, out: str, heads: int, per_head: int, row_bytes: int,
             context: int) -> str:
    return (f"        CALL op_mix\n        DEFW {weights},{values},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def _product_steps() -> str:
    """C:HL = DE * A (unsigned, 24 bits), MSB first; the first step just loads."""
    steps = ["        LD HL,0\n        LD C,L\n        ADD A,A\n        JR NC,mx_b7\n"
             "        LD H,D\n        LD L,E\nmx_b7:\n"]
    for bit in range(6, -1, -1):
        steps.append(f"        ADD HL,HL\n        RL C\n        ADD A,A\n        JR NC,mx_b{bit}\n"
                     f"        ADD HL,DE\n        JR NC,mx_b{bit}\n        INC C\nmx_b{bit}:\n")
    return "".join(steps)


def routine_asm() -> str:
    return f"""
; ---- mix (targets/z80/ops/mix.py) ----
op_mix:
        POP HL
        LD DE,mx_par
        LD BC,12
        LDIR
        PUSH HL
        LD A,(mx_par+6)
        LD (mx_h),A
        LD HL,(mx_par+2)
        LD (mx_vh),HL                   ; this head's slice of value row 0
mx_head:
        LD HL,(mx_par)                  ; wsum = max(1, sum of this head's weights)
        LD A,(STEP_POS)
        INC A
        LD B,A
        LD DE,0
mx_wsum:
        LD A,(HL)
        INC HL
        ADD A,E
        LD E,A
        JR NC,mx_wsum_nc
        INC D
mx_wsum_nc:
        DJNZ mx_wsum
        LD A,D
        OR E
        JR NZ,mx_wsum_ok
        INC E
mx_wsum_ok:
        LD (mx_ws),DE
        LD HL,(mx_vh)
        LD (mx_vd),HL
        LD A,(mx_par+7)
        LD (mx_d),A
mx_dim:
        EXX
        LD HL,0
        LD D,H
        LD E,L                          ; the sum, in H'L' (low) and D'E' (high)
        EXX
        LD IX,(mx_vd)
        LD IY,(mx_par)
        LD A,(STEP_POS)
        INC A
        LD (mx_j),A
mx_pos:
        LD A,(IY+0)                     ; w
        INC IY
        OR A
        JP Z,mx_skip
        LD E,(IX+0)
        LD D,(IX+1)
        EX AF,AF'
        LD A,D
        ADD A,A                         ; carry' = the sign of v, kept in F'
        JR NC,mx_plus
        XOR A                           ; DE = |v|
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A
        SCF
mx_plus:
        EX AF,AF'
{_product_steps()}        PUSH HL                         ; the product C:HL joins the sum
        LD A,C
        EXX
        POP BC
        EX AF,AF'
        JR C,mx_sub                     ; (carry' set: v was negative)
        EX AF,AF'
        ADD HL,BC
        LD C,A
        LD B,0
        EX DE,HL
        ADC HL,BC
        EX DE,HL
        EXX
        JR mx_skip
mx_sub:
        EX AF,AF'
        OR A
        SBC HL,BC
        LD C,A
        LD B,0
        EX DE,HL
        SBC HL,BC
        EX DE,HL
        EXX
mx_skip:
        LD BC,(mx_par+8)
        ADD IX,BC
        LD HL,mx_j
        DEC (HL)
        JP NZ,mx_pos
        EXX                             ; the sum to DE:HL
        PUSH DE
        PUSH HL
        EXX
        POP HL
        POP DE
        LD BC,(mx_ws)
        BIT 7,D
        JR NZ,mx_negative
        CALL m_div16q
        JR mx_store
mx_negative:
        CALL m_neg32                    ; -n - 1 = ~n
        LD A,L
        OR H
        JR NZ,mx_nb
        DEC DE
mx_nb:
        DEC HL
        CALL m_div16q
        LD A,L                          ; -1 - q = ~q
        CPL
        LD L,A
        LD A,H
        CPL
        LD H,A
mx_store:
        EX DE,HL
        LD HL,(mx_par+4)
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        LD (mx_par+4),HL
        LD HL,(mx_vd)
        INC HL
        INC HL
        LD (mx_vd),HL
        LD HL,mx_d
        DEC (HL)
        JP NZ,mx_dim
        LD HL,(mx_par)                  ; next head: weights row += context
        LD DE,(mx_par+10)
        ADD HL,DE
        LD (mx_par),HL
        LD A,(mx_par+7)
        ADD A,A
        LD E,A
        LD D,0
        LD HL,(mx_vh)
        ADD HL,DE
        LD (mx_vh),HL
        LD HL,mx_h
        DEC (HL)
        JP NZ,mx_head
        RET
mx_par: DEFS 12
mx_h: DEFB 0
mx_j: DEFB 0
mx_d: DEFB 0
mx_ws: DEFW 0
mx_vh: DEFW 0
mx_vd: DEFW 0
"""
