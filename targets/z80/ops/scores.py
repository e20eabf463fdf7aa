"""scores: per head h and position j = 0..STEP_POS, s[h, j] = wrap32(sum_d q[h*P+d] * k[j, h*P+d]).

        CALL op_scores
        DEFW q, keys, scores
        DEFB heads, per_head
        DEFW row_bytes, context

keys is the int16 state [context, heads*per_head]; scores is int32 [heads, context] (only
positions up to STEP_POS are written). All registers may change.
"""
from __future__ import annotations


def call_asm(q: str, keys: str, out: str, heads: int, per_head: int, row_bytes: int, context: int) -> str:
    return (f"        CALL op_scores\n        DEFW {q},{keys},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def routine_asm() -> str:
    return """
; ---- scores (targets/z80/ops/scores.py) ----
op_scores:
        POP HL
        LD DE,sc_par
        LD BC,12
        LDIR
        PUSH HL
        LD A,(sc_par+6)
        LD (sc_h),A
        LD HL,(sc_par)
        LD (sc_qh),HL                   ; this head's query
        LD HL,(sc_par+2)
        LD (sc_kh),HL                   ; this head's slice of key row 0
sc_head:
        LD HL,(sc_par+4)
        LD (sc_out),HL
        LD HL,(sc_kh)
        LD (sc_kj),HL
        LD A,(STEP_POS)
        INC A
        LD (sc_j),A
sc_key:
        LD HL,0
        LD (sc_acc),HL
        LD (sc_acc+2),HL
        LD HL,(sc_qh)
        LD (sc_qp),HL
        LD HL,(sc_kj)
        LD (sc_kp),HL
        LD A,(sc_par+7)
        LD (sc_d),A
sc_dim:
        LD HL,(sc_kp)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD (sc_kp),HL
        LD HL,(sc_qp)
        LD A,(HL)
        INC HL
        LD H,(HL)
        LD L,A
        CALL m_mul16s
        LD IX,sc_acc
        CALL m_add32
        LD HL,(sc_qp)
        INC HL
        INC HL
        LD (sc_qp),HL
        LD HL,sc_d
        DEC (HL)
        JR NZ,sc_dim
        LD HL,(sc_out)
        LD DE,sc_acc
        EX DE,HL
        LD BC,4
        LDIR
        LD (sc_out),DE
        LD HL,(sc_kj)                   ; next key row
        LD DE,(sc_par+8)
        ADD HL,DE
        LD (sc_kj),HL
        LD HL,sc_j
        DEC (HL)
        JR NZ,sc_key
        LD HL,(sc_par+10)               ; next head: scores row += 4*context
        ADD HL,HL
        ADD HL,HL
        LD DE,(sc_par+4)
        ADD HL,DE
        LD (sc_par+4),HL
        LD A,(sc_par+7)                 ; q and key slices move by per_head values
        ADD A,A
        LD E,A
        LD D,0
        LD HL,(sc_qh)
        ADD HL,DE
        LD (sc_qh),HL
        LD HL,(sc_kh)
        ADD HL,DE
        LD (sc_kh),HL
        LD HL,sc_h
        DEC (HL)
        JP NZ,sc_head
        RET
sc_par: DEFS 12
sc_h: DEFB 0
sc_j: DEFB 0
sc_d: DEFB 0
sc_qh: DEFW 0
sc_kh: DEFW 0
sc_kj: DEFW 0
sc_qp: DEFW 0
sc_kp: DEFW 0
sc_out: DEFW 0
sc_acc: DEFS 4
"""
