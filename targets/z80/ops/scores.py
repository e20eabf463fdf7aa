"""scores: per head h and position j = 0..STEP_POS, s[h, j] = wrap32(sum_d q[h*P+d] * k[j, h*P+d]).

        CALL op_scores          ; or op_scores_mul, the same block
        DEFW q, keys, scores
        DEFB heads, per_head
        DEFW row_bytes, context

scores is int32 [heads, context] (only positions up to STEP_POS are written).

op_scores (per_head = 8) works like the matvec (ops/subsets.py): a head's query is one group
of the subset-sum tables, four heads at a time, and a key is a row of weights. The key cache
must be written by op_storek (store.py): per head, 16 pattern bytes, the bit planes of the
keys in offset form u = k + 32768, planes 15..8 then 7..0. Read as two's complement (k's
plane 15 is u's inverted, S), with Q(s) = T[s] - N:

    s = -2^15 Q(S) + sum_{b<15} 2^b Q(K_b) = N + (Horner from acc = -T[S] over the planes below)

and when k's planes 15..m all equal S (small keys: the seed's |k| < 2048 gives m >= 11) they
add up to -2^m Q(S): the key's code compares planes 14, 13, .. 10 with S and enters a
straight-line row at the first that differs (so 10-11 lookups per key and head on the seed,
not 16). The 24-bit A:IY acc holds the Horner sum mod 2^24; at plane 8 acc_hi (|acc_hi| <
2^23) is kept in the other register set (E, B, C), planes 7..0 follow (6..0 in the matvec's
one-group row st_planes1, whose end jumps to sc_end), + N, and the top byte is acc_hi's plus
the carry (acc >> 8 < acc_hi mod 2^16). Keys go from the last position down (SP reads the
planes, then moves -(row_bytes + 16)); a score is written by two PUSHes at the row's pointer;
the count is in A'.

A head whose sum |q| passes 65535 (16-bit table entries) goes twice, q split into its bytes
(q = 256*hi + lo): s = s_lo + 256*s_hi, the first written, the second added.
All registers may change; st_planes1's end jump is patched per call (matvec patches it back).

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


def _row_asm() -> str:
    """The key loop's code for one key of one head (see routine_asm)."""
    lines = ["sc_key:", "EX AF,AF'", "sc_key1:",
             "POP DE",                                   # E = plane 15 (u), D = plane 14
             "LD A,E", "CPL", "LD L,A",                  # S: k's plane 15 (its signs)
             "XOR A", "SUB (HL)", "LD IYL,A", "INC H",   # acc = -T[S]
             "LD A,0", "SBC A,(HL)", "LD IYH,A", "SBC A,A", "LD B,A",
             "LD A,L"]
    for b in range(14, 9, -1):                          # planes 14..10 equal to S collapse into it
        if b % 2:
            lines.append("POP DE")
        lines += [f"CP {'E' if b % 2 else 'D'}", f"JR NZ,sc_e{b}"]
    lines += ["LD A,B", "DEC H", "JR sc_q9"]
    for b in range(13, 9, -1):                          # entries: A = acc's top byte, H's page
        lines += [f"sc_e{b}:", "LD A,B"] + (["DEC H"] if b % 2 else []) + [f"JR sc_p{b}"]
    lines += ["sc_e14:", "LD A,B"]
    for b in range(14, 6, -1):                          # acc = 2*acc + T[plane b]
        odd = b % 2 == 1
        if b == 7:                                      # acc_hi kept in the other set: B, C, E
            lines += ["sc_mid:", "LD E,A", "LD B,IYH", "LD C,IYL", "EXX"]
        if odd:
            lines += [f"sc_q{b}:", "POP DE"]
        lines += [f"sc_p{b}:", "ADD IY,IY", "ADC A,A"]
        reg = "E" if odd else "D"
        if odd:                                         # H: the low page in, the high one out
            lines += [f"LD L,{reg}", "LD C,(HL)", "INC H", "LD B,(HL)"]
        else:
            lines += [f"LD L,{reg}", "LD B,(HL)", "DEC H", "LD C,(HL)"]
        lines += ["ADD IY,BC", "ADC A,0"]
    lines += ["ADD IY,IY", "ADC A,A",                   # planes 6..0: the matvec's one-group row
              "JP st_planes1_p1",
              "sc_end:",
              "sc_n:", "LD BC,0",                       # + N (patched per head)
              "ADD IY,BC", "ADC A,0", "EXX",
              "LD L,A", "LD A,IYH", "CP C", "LD A,L", "SBC A,B",   # carry: r >> 8 < acc_hi mod 2^16
              "LD A,E", "ADC A,0",                       # the top byte
              "sc_modej:", "JP sc_put"]
    return "".join(line + "\n" if line.endswith(":") else f"        {line}\n" for line in lines)


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
        LD HL,sc_end                    ; the row code ends here
        LD (st_planes1_end+1),HL
        LD HL,(sc_par)
        LD (sc_q),HL
        LD HL,(sc_par+4)
        LD (sc_orow),HL
        LD A,(sc_par+6)
        LD (sc_hleft),A
        LD DE,(sc_par+8)                ; the keys move on by -(row_bytes + 16)
        LD HL,-16
        OR A
        SBC HL,DE
        LD (sc_delta),HL
        LD (sc_dput+1),HL
        LD A,(STEP_POS)
        LD L,A
        LD H,0
        INC HL
        LD A,L
        LD (sc_cnt),A                   ; pos + 1 keys (0 for 256)
        ADD HL,HL
        ADD HL,HL
        LD (sc_opos),HL                 ; a head's scores end 4 * (pos + 1) bytes on
        LD HL,(sc_par+2)                ; the last key: keys + pos * row_bytes
        LD A,(STEP_POS)
        OR A
        JR Z,sc_kpos
sc_kmul:
        ADD HL,DE
        DEC A
        JR NZ,sc_kmul
sc_kpos:
        LD (sc_kh),HL
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
        ADD A,A                         ; all of them small (the usual case)?
        ADD A,A
        ADD A,A
        LD B,A
        CALL mv_ld_check
        LD HL,(sc_q)
        LD A,(sc_nh)
        LD B,A
        JR C,sc_check                   ; no: head by head
        XOR A
sc_small:
        LD (IX+0),A
        INC IX
        DJNZ sc_small
        JR sc_built
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
sc_built:
        LD A,(sc_nh)
        CALL st_build
        LD A,{tp}
        LD (sc_page),A
        LD IY,st_n
        LD IX,sc_hbig
        LD A,(sc_nh)
sc_head:
        PUSH AF
        LD A,(IX+0)
        OR A
        JR NZ,sc_split
        LD E,(IY+0)                     ; the head's N from the shared build
        LD D,(IY+1)
        LD HL,sc_put
        CALL sc_keys
        JR sc_head_next
sc_split:
        LD A,2                          ; this head's q: its low bytes, then its high bytes
        CALL sc_build1
        LD HL,sc_put
        CALL sc_keys
        LD A,1
        CALL sc_build1
        LD HL,sc_add256
        CALL sc_keys
sc_head_next:
        LD BC,{subsets.ST_RECORD}
        ADD IY,BC
        INC IX
        LD HL,(sc_q)
        LD BC,{2 * PER_HEAD}
        ADD HL,BC
        LD (sc_q),HL
        LD HL,(sc_kh)
        ADD HL,BC
        LD (sc_kh),HL
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
        POP IX
        POP IY
        RET

sc_keys:                                ; HL = how a score is kept, DE = N: every key of this head, from the last (keeps IX, IY)
        LD (sc_modej+1),HL
        LD (sc_n+1),DE
        PUSH IX
        PUSH IY
        LD (sc_sp),SP
        LD HL,(sc_opos)
        LD DE,(sc_orow)
        ADD HL,DE
        LD (sc_outp),HL
        LD A,(sc_page)
        LD (sc_page1+1),A
        LD H,A
        EXX
        LD H,A
        EXX
        LD SP,(sc_kh)
        LD A,(sc_cnt)
        EX AF,AF'
        JP sc_key1
{_row_asm()}sc_put:                                 ; the score into the row, the next key
        LD H,A
        EX DE,HL
sc_dput:
        LD HL,0
        ADD HL,SP
        LD SP,(sc_outp)
        PUSH DE
        PUSH IY
sc_next:
        LD (sc_outp),SP
        LD SP,HL
sc_page1:
        LD H,0
        EX AF,AF'
        DEC A
        JP NZ,sc_key
        LD SP,(sc_sp)
        POP IY
        POP IX
        RET
sc_add256:                              ; 256 * the score added (the split's second pass)
        LD D,L
        LD A,IYH
        LD E,A
        LD A,IYL
        LD B,A
        LD C,0
        LD HL,(sc_delta)
        ADD HL,SP
        LD (sc_kp),HL
        LD SP,(sc_outp)
        DEC SP
        DEC SP
        DEC SP
        DEC SP
        POP HL
        ADD HL,BC
        EX DE,HL
        POP BC
        ADC HL,BC
        PUSH HL
        PUSH DE
        LD HL,(sc_kp)
        JR sc_next

sc_par: DEFS 12
sc_sp: DEFW 0
sc_q: DEFW 0
sc_kh: DEFW 0
sc_kp: DEFW 0
sc_orow: DEFW 0
sc_outp: DEFW 0
sc_delta: DEFW 0
sc_opos: DEFW 0
sc_page: DEFB 0
sc_hleft: DEFB 0
sc_nh: DEFB 0
sc_cnt: DEFB 0
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
