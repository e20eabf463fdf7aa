"""scores: per head h and position j = 0..STEP_POS, s[h, j] = wrap32(sum_d q[h*P+d] * k[j, h*P+d]).

        CALL op_scores          ; or op_scores_mul, the same block
        DEFW q, keys, scores
        DEFB heads, per_head
        DEFW row_bytes, context

scores is int32 [heads, context] (only positions up to STEP_POS are written).

op_scores (per_head = 8) works like the matvec (ops/subsets.py): a head's query is one group
of the subset-sum tables, four heads at a time, and a key is a row of weights. The key cache
must be written by op_storek (store.py): per head, 16 pattern bytes, the bit planes of the
keys in offset form u = k + 32768, planes 15..8 then 7..0. Two rows of one group give
acc_hi and acc_lo, and with the head's table offset N

    s = 256*acc_hi + acc_lo - 65535*N - 32768*sum(q)      (mod 2^32, which is wrap32)

A head whose sum |q| passes 65535 (16-bit table entries) goes twice, q split into its bytes
(q = 256*hi + lo): s = 256*s_hi + s_lo, the first written into scores, the second added.
All registers may change.

op_scores_mul is the plain fallback for other head widths: a shift-and-add product per term,
on the key cache as the interpreter holds it (written by op_store).
"""
from __future__ import annotations

from . import subsets

NEEDS_FALLBACK = {"m_mul16s", "m_add32"}     # shared arithmetic op_scores_mul calls
PER_HEAD = 8                                 # one group of the subset-sum tables


def fast(per_head: int) -> bool:
    return per_head == PER_HEAD


def call_asm(q: str, keys: str, out: str, heads: int, per_head: int, row_bytes: int, context: int,
             use_fast: bool) -> str:
    name = "op_scores" if use_fast else "op_scores_mul"
    return (f"        CALL {name}\n        DEFW {q},{keys},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def routine_asm() -> str:
    tp = f"{subsets.TABLES} >> 8"
    return f"""
; ---- scores (targets/z80/ops/scores.py) ----
op_scores:
        POP HL
        LD DE,sc_par
        LD BC,12
        LDIR
        PUSH HL
        XOR A
        LD (mv_valid),A                 ; the tables are taken
        LD (st_planes1+5),A             ; and the row code starts from 0
        LD H,A
        LD L,A
        LD (st_planes1+2),HL
        LD HL,(sc_par)
        LD (sc_q),HL
        LD HL,(sc_par+2)
        LD (sc_kh),HL
        LD HL,(sc_par+4)
        LD (sc_orow),HL
        LD A,(sc_par+6)
        LD (sc_hleft),A
sc_batch:                               ; up to four heads: one table each
        LD A,(sc_hleft)
        CP {subsets.MAX_GROUPS + 1}
        JR C,sc_batch_n
        LD A,{subsets.MAX_GROUPS}
sc_batch_n:
        LD (sc_nh),A
        LD B,A
        LD HL,(sc_q)                    ; the heads' queries, read in place
        LD (st_src),HL
        LD IX,sc_hbig
sc_check:                               ; per head: sum |q| past 65535?
        PUSH BC
        PUSH HL
        LD B,{PER_HEAD}
        CALL mv_ld_check
        SBC A,A
        LD (IX+0),A
        INC IX
        POP HL
        LD BC,{2 * PER_HEAD}
        ADD HL,BC
        POP BC
        DJNZ sc_check
        LD A,(sc_nh)
        CALL st_build
        LD A,{tp}
        LD (sc_page),A
        LD IY,st_n
        LD IX,sc_hbig
        LD HL,(sc_kh)
        LD (sc_kbase),HL
        LD A,(sc_nh)
sc_head:
        PUSH AF
        LD A,(IX+0)
        OR A
        JR NZ,sc_split
        PUSH IY                         ; the head's N and sum from the shared build
        LD E,(IY+0)
        LD D,(IY+1)
        INC IY
        INC IY
        CALL sc_k
        POP IY
        LD HL,sc_put
        CALL sc_keys
        JR sc_head_next
sc_split:
        LD A,1                          ; this head's q: its high bytes, then its low bytes
        CALL sc_build1
        LD HL,sc_put256
        CALL sc_keys
        LD A,2
        CALL sc_build1
        LD HL,sc_add
        CALL sc_keys
sc_head_next:
        LD BC,{subsets.ST_RECORD}
        ADD IY,BC
        INC IX
        LD HL,(sc_q)
        LD BC,{2 * PER_HEAD}
        ADD HL,BC
        LD (sc_q),HL
        LD HL,(sc_kbase)
        LD BC,{2 * PER_HEAD}
        ADD HL,BC
        LD (sc_kbase),HL
        LD HL,(sc_par+10)               ; the scores row moves on by 4 * context
        ADD HL,HL
        ADD HL,HL
        LD BC,(sc_orow)
        ADD HL,BC
        LD (sc_orow),HL
        LD HL,sc_page
        INC (HL)
        INC (HL)
        POP AF
        DEC A
        JR NZ,sc_head
        LD HL,(sc_kbase)
        LD (sc_kh),HL
        LD A,(sc_hleft)
        LD HL,sc_nh
        SUB (HL)
        LD (sc_hleft),A
        JP NZ,sc_batch
        RET

sc_build1:                              ; A = 1 or 2: the table of this head alone from q's high or low bytes
        PUSH IY
        PUSH IX
        LD HL,(sc_q)
        LD (mv_cx),HL
        LD HL,mv_ccols
        LD (HL),{PER_HEAD}
        LD HL,mv_cg
        LD (HL),1
        CALL mv_load
        LD A,(sc_page)
        LD (st_page),A
        LD A,1
        CALL st_build_page
        LD DE,(st_n)
        LD IY,st_n+2
        CALL sc_k
        POP IX
        POP IY
        RET

sc_k:                                   ; DE = N, (IY) = the sum: K = N - 65536*N - 32768*sum
        PUSH DE
        LD A,(IY+2)
        LD B,(IY+1)
        LD C,(IY+0)
        SRA A
        RR B
        RR C                            ; B:C = bits 1-16 of the sum
        LD A,0
        RRA                             ; A = its bit 0, at bit 7
        POP HL
        PUSH HL
        LD D,A
        LD E,0
        OR A
        SBC HL,DE                       ; the low word; borrow
        LD (sc_klo+1),HL
        POP DE
        LD HL,0
        SBC HL,DE
        OR A
        SBC HL,BC                       ; the high word: -N - bits 1-16 of the sum - borrow
        LD (sc_khi+1),HL
        RET

sc_keys:                                ; HL = how a score is kept; every key of this head (keeps IX, IY)
        LD (sc_modej+1),HL
        PUSH IX
        PUSH IY
        LD (sc_sp),SP
        LD A,(STEP_POS)
        INC A
        LD (sc_j),A
        LD HL,(sc_kbase)
        LD (sc_kp),HL
        LD IX,(sc_orow)
sc_key:
        LD HL,sc_hi_done
        LD (st_planes1_end+1),HL
        LD SP,(sc_kp)
        LD A,(sc_page)
        LD H,A
        JP st_planes1
sc_hi_done:                             ; A:IY = acc_hi
        LD (sc_acc),IY
        LD (sc_acc+2),A
        LD HL,sc_lo_done
        LD (st_planes1_end+1),HL
        LD A,(sc_page)
        LD H,A
        JP st_planes1
sc_lo_done:                             ; A:IY = acc_lo: s = 256*acc_hi + acc_lo + K
        LD E,IYL
        LD D,IYH
        LD L,A
        LD H,0
        LD A,(sc_acc)
        ADD A,D
        LD D,A
        LD BC,(sc_acc+1)
        ADC HL,BC
sc_klo:
        LD BC,0
        EX DE,HL
        ADD HL,BC
        EX DE,HL
sc_khi:
        LD BC,0
        ADC HL,BC
sc_modej:
        JP sc_put
sc_put256:
        LD H,L
        LD L,D
        LD D,E
        LD E,0
sc_put:
        LD (IX+0),E
        LD (IX+1),D
        LD (IX+2),L
        LD (IX+3),H
        JR sc_next
sc_add:
        LD A,(IX+0)
        ADD A,E
        LD (IX+0),A
        LD A,(IX+1)
        ADC A,D
        LD (IX+1),A
        LD A,(IX+2)
        ADC A,L
        LD (IX+2),A
        LD A,(IX+3)
        ADC A,H
        LD (IX+3),A
sc_next:
        LD BC,4
        ADD IX,BC
        LD HL,(sc_kp)
        LD BC,(sc_par+8)
        ADD HL,BC
        LD (sc_kp),HL
        LD HL,sc_j
        DEC (HL)
        JP NZ,sc_key
        LD SP,(sc_sp)
        POP IY
        POP IX
        RET

sc_par: DEFS 12
sc_sp: DEFW 0
sc_q: DEFW 0
sc_kh: DEFW 0
sc_kbase: DEFW 0
sc_kp: DEFW 0
sc_orow: DEFW 0
sc_acc: DEFS 3
sc_page: DEFB 0
sc_hleft: DEFB 0
sc_nh: DEFB 0
sc_j: DEFB 0
sc_hbig: DEFS {subsets.MAX_GROUPS}
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
