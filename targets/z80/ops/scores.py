"""scores: per head h and position j = 0..STEP_POS, s[h, j] = wrap32(sum_d q[h*P+d] * k[j, h*P+d]).

        CALL op_scores
        DEFW q, keys, scores
        DEFB heads, per_head
        DEFW row_bytes, context

scores is int32 [heads, context] (only positions up to STEP_POS are written).

op_scores (when per_head is a multiple of 4 and fits the unrolled matvec loop) runs on the
matvec kernel (ops/matvec.py): the head's query is patched into the loop as its x, with its
R, and every key is two weight rows. The key cache must be written by op_storek (store.py):
per head, KH = the high bytes in offset form, then KL = the low bytes. With k = 256*kh + kl,
kh the weight of KH and kl - 128 that of KL:

    s = 256*X1 + X2 - 257*(256*S1 + S2) - 257*R + 128*sum(q)
    X1, X2 = 256*SumH + SumL over the KH and KL rows;  S1, S2 = sum G[KH + 128], sum G[KL + 128]

(the matvec identity with the rows' own half-square sums, here computed per key). Everything
is modulo 2^32, as wrap32 is. All registers may change.

op_scores_mul is the plain fallback for other shapes: a shift-and-add product per term, on
the key cache as the interpreter holds it (written by op_store).
"""
from __future__ import annotations

from soulc.targets.z80.runtime_math import GTAB

NEEDS_FALLBACK = {"m_mul16s", "m_add32"}     # shared arithmetic op_scores_mul calls


def fast(per_head: int, unroll: int) -> bool:
    return per_head % 4 == 0 and per_head <= unroll


def call_asm(q: str, keys: str, out: str, heads: int, per_head: int, row_bytes: int, context: int,
             use_fast: bool) -> str:
    name = "op_scores" if use_fast else "op_scores_mul"
    return (f"        CALL {name}\n        DEFW {q},{keys},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def routine_asm(per_head: int) -> str:
    return f"""
; ---- scores (targets/z80/ops/scores.py) ----
op_scores:
        POP HL
        LD DE,sc_par
        LD BC,12
        LDIR
        PUSH HL
        LD (mv_sp),SP
        LD A,(sc_par+6)
        LD (sc_h),A
        LD HL,(sc_par)
        LD (sc_qh),HL
        LD HL,(sc_par+2)
        LD (sc_kh),HL
        LD HL,(sc_par+4)
        LD (sc_orow),HL
sc_head:
        LD HL,0                         ; sum q, in DE:HL
        LD D,H
        LD E,L
        LD IX,(sc_qh)
        LD A,{per_head}
sc_qsum:
        PUSH AF
        LD C,(IX+0)
        LD B,(IX+1)
        INC IX
        INC IX
        LD A,B
        ADD A,A
        SBC A,A                         ; the term's sign extension
        ADD HL,BC
        EX DE,HL
        LD C,A
        LD B,A
        ADC HL,BC
        EX DE,HL
        POP AF
        DEC A
        JR NZ,sc_qsum
        LD B,7                          ; 128 * sum q
sc_q128:
        ADD HL,HL
        RL E
        RL D
        DJNZ sc_q128
        LD (sc_qc),HL
        LD (sc_qc+2),DE
        LD HL,(sc_qh)                   ; patch the query into the loop; R
        LD (mv_xp),HL
        LD HL,0
        LD (mv_r),HL
        LD (mv_r+2),HL
        LD HL,sc_rdone
        LD (mv_vret+1),HL
        LD HL,mv_radd
        LD (mv_rret+1),HL
        LD A,{per_head}
        JP mv_prep
sc_rdone:
        LD SP,(mv_sp)
        LD HL,(mv_r)
        LD DE,(mv_r+2)
        LD IX,sc_qc
        CALL sc_sub257                  ; qc = 128 * sum q - 257 * R
        LD HL,(sc_kh)
        LD (sc_kj),HL
        LD HL,(sc_orow)
        LD (sc_op),HL
        LD A,(STEP_POS)
        INC A
        LD (sc_j),A
sc_key:
        LD HL,(sc_qc)                   ; c = qc - 257 * (256*S1 + S2)
        LD (sc_c),HL
        LD HL,(sc_qc+2)
        LD (sc_c+2),HL
        LD HL,(sc_kj)
        CALL sc_gsum                    ; S1
        PUSH BC
        PUSH DE
        CALL sc_gsum                    ; S2
        POP HL                          ; 256*S1 + S2 as C:D:E + (S1 << 8)
        LD A,D
        ADD A,L
        LD D,A
        LD A,C
        ADC A,H
        LD L,A
        POP BC
        LD A,0
        ADC A,C
        LD H,A
        EX DE,HL                        ; DE:HL
        LD IX,sc_c
        CALL sc_sub257
        LD HL,sc_hi                     ; the KH row, then the KL row right after it
        LD (mv_rret+1),HL
        LD SP,(sc_kj)
        JP mv_zero
sc_hi:
        LD (sc_x),DE
        LD (sc_x+2),HL
        LD HL,sc_lo
        LD (mv_rret+1),HL
        JP mv_zero
sc_lo:
        LD SP,(mv_sp)                   ; s = 256*X1 + X2 + c
        EX DE,HL
        LD BC,(sc_c)
        ADD HL,BC
        EX DE,HL
        LD BC,(sc_c+2)
        ADC HL,BC                       ; HL:DE = X2 + c
        LD A,(sc_x)
        ADD A,D
        LD D,A
        LD BC,(sc_x+1)
        ADC HL,BC
        EX DE,HL
        LD IX,(sc_op)
        LD (IX+0),L
        LD (IX+1),H
        LD (IX+2),E
        LD (IX+3),D
        LD BC,4
        ADD IX,BC
        LD (sc_op),IX
        LD HL,(sc_kj)
        LD BC,(sc_par+8)
        ADD HL,BC
        LD (sc_kj),HL
        LD HL,sc_j
        DEC (HL)
        JP NZ,sc_key
        LD BC,{2 * per_head}
        LD HL,(sc_qh)
        ADD HL,BC
        LD (sc_qh),HL
        LD HL,(sc_kh)
        ADD HL,BC
        LD (sc_kh),HL
        LD HL,(sc_par+10)               ; scores row += 4 * context
        ADD HL,HL
        ADD HL,HL
        LD BC,(sc_orow)
        ADD HL,BC
        LD (sc_orow),HL
        LD HL,sc_h
        DEC (HL)
        JP NZ,sc_head
        RET

sc_sub257:                              ; (IX) -= 257 * DE:HL  (32 bits)
        LD A,(IX+0)
        SUB L
        LD (IX+0),A
        LD A,(IX+1)
        SBC A,H
        LD (IX+1),A
        LD A,(IX+2)
        SBC A,E
        LD (IX+2),A
        LD A,(IX+3)
        SBC A,D
        LD (IX+3),A                     ; -= DE:HL
        LD A,(IX+1)
        SUB L
        LD (IX+1),A
        LD A,(IX+2)
        SBC A,H
        LD (IX+2),A
        LD A,(IX+3)
        SBC A,E
        LD (IX+3),A                     ; -= DE:HL << 8
        RET

sc_gsum:                                ; C:DE = sum G[(HL) + 128] over {per_head} bytes; HL moves on
        LD DE,0
        LD C,E
        LD B,{per_head}
sc_gs_loop:
        LD A,(HL)
        INC HL
        PUSH HL
        ADD A,128
        LD L,A
        LD A,{GTAB} >> 8
        ADC A,0
        LD H,A
        LD A,(HL)
        INC H
        INC H
        LD H,(HL)
        LD L,A
        ADD HL,DE
        EX DE,HL
        JR NC,sc_gs_nc
        INC C
sc_gs_nc:
        POP HL
        DJNZ sc_gs_loop
        RET

sc_par: DEFS 12
sc_h: DEFB 0
sc_j: DEFB 0
sc_qh: DEFW 0
sc_kh: DEFW 0
sc_kj: DEFW 0
sc_orow: DEFW 0
sc_op: DEFW 0
sc_qc: DEFS 4
sc_c: DEFS 4
sc_x: DEFS 4
"""


def fallback_routine_asm() -> str:
    return """
; ---- scores, plain (targets/z80/ops/scores.py) ----
op_scores_mul:
        POP HL
        LD DE,scm_par
        LD BC,12
        LDIR
        PUSH HL
        LD A,(scm_par+6)
        LD (scm_h),A
        LD HL,(scm_par)
        LD (scm_qh),HL                  ; this head's query
        LD HL,(scm_par+2)
        LD (scm_kh),HL                  ; this head's slice of key row 0
scm_head:
        LD HL,(scm_par+4)
        LD (scm_out),HL
        LD HL,(scm_kh)
        LD (scm_kj),HL
        LD A,(STEP_POS)
        INC A
        LD (scm_j),A
scm_key:
        LD HL,0
        LD (scm_acc),HL
        LD (scm_acc+2),HL
        LD HL,(scm_qh)
        LD (scm_qp),HL
        LD HL,(scm_kj)
        LD (scm_kp),HL
        LD A,(scm_par+7)
        LD (scm_d),A
scm_dim:
        LD HL,(scm_kp)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD (scm_kp),HL
        LD HL,(scm_qp)
        LD A,(HL)
        INC HL
        LD H,(HL)
        LD L,A
        CALL m_mul16s
        LD IX,scm_acc
        CALL m_add32
        LD HL,(scm_qp)
        INC HL
        INC HL
        LD (scm_qp),HL
        LD HL,scm_d
        DEC (HL)
        JR NZ,scm_dim
        LD HL,(scm_out)
        LD DE,scm_acc
        EX DE,HL
        LD BC,4
        LDIR
        LD (scm_out),DE
        LD HL,(scm_kj)                  ; next key row
        LD DE,(scm_par+8)
        ADD HL,DE
        LD (scm_kj),HL
        LD HL,scm_j
        DEC (HL)
        JR NZ,scm_key
        LD HL,(scm_par+10)              ; next head: scores row += 4*context
        ADD HL,HL
        ADD HL,HL
        LD DE,(scm_par+4)
        ADD HL,DE
        LD (scm_par+4),HL
        LD A,(scm_par+7)                ; q and key slices move by per_head values
        ADD A,A
        LD E,A
        LD D,0
        LD HL,(scm_qh)
        ADD HL,DE
        LD (scm_qh),HL
        LD HL,(scm_kh)
        ADD HL,DE
        LD (scm_kh),HL
        LD HL,scm_h
        DEC (HL)
        JP NZ,scm_head
        RET
scm_par: DEFS 12
scm_h: DEFB 0
scm_j: DEFB 0
scm_d: DEFB 0
scm_qh: DEFW 0
scm_kh: DEFW 0
scm_kj: DEFW 0
scm_qp: DEFW 0
scm_kp: DEFW 0
scm_out: DEFW 0
scm_acc: DEFS 4
"""
