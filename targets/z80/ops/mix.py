"""mix: per head h, out[h*P+d] = sat16(floor(sum_j w[h, j] * v[j, h*P+d] / max(1, sum_j w[h, j])))
over positions j = 0..STEP_POS; w is u8 [heads, context], v the int16 state [context, width].

        CALL op_mix
        DEFW weights, values, out
        DEFB heads, per_head
        DEFW row_bytes, context

The quotient always fits: |sum w*v| <= 32768 * sum w. A negative sum n is divided as
-1 - (-n - 1) // s, which floors; both dividends are below 65536 * s, so the 16-step divide
does. All registers may change.
"""
from __future__ import annotations


def call_asm(weights: str, values: str, out: str, heads: int, per_head: int, row_bytes: int,
             context: int) -> str:
    return (f"        CALL op_mix\n        DEFW {weights},{values},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def routine_asm() -> str:
    return """
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
        LD HL,0
        LD (mx_acc),HL
        LD (mx_acc+2),HL
        LD HL,(mx_par)
        LD (mx_wp),HL
        LD HL,(mx_vd)
        LD (mx_vp),HL
        LD A,(STEP_POS)
        INC A
        LD (mx_j),A
mx_pos:
        LD HL,(mx_wp)
        LD E,(HL)
        INC HL
        LD (mx_wp),HL
        LD D,0
        LD HL,(mx_vp)
        LD A,(HL)
        INC HL
        LD H,(HL)
        LD L,A
        CALL m_mul16s
        LD IX,mx_acc
        CALL m_add32
        LD HL,(mx_vp)
        LD DE,(mx_par+8)
        ADD HL,DE
        LD (mx_vp),HL
        LD HL,mx_j
        DEC (HL)
        JR NZ,mx_pos
        LD HL,(mx_acc)
        LD DE,(mx_acc+2)
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
mx_wp: DEFW 0
mx_vp: DEFW 0
mx_acc: DEFS 4
"""
