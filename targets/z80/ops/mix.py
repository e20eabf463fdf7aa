"""mix: per head h, out[h*P+d] = sat16(floor(sum_j w[h, j] * v[j, h*P+d] / max(1, sum_j w[h, j])))
over positions j = 0..STEP_POS; w is u8 [heads, context], v the int16 state [context, width].

        CALL op_mix
        DEFW weights, values, out
        DEFB heads, per_head
        DEFW row_bytes, context

The weights are the short operand, and a head's dims share them, so the products go digit by
digit of the weights with whole value rows added at once (Horner over the digit levels, highest
first): for each level, the accumulators of up to 8 dims (a chunk of the head) are doubled, then
every position whose weight has a digit at that level adds (or subtracts) its row of values, read
with POP (SP points into the value cache; interrupts are off). The digits are the weight's
non-adjacent form (NAF: digits -1, 0, +1 at levels 0..8, no two adjacent ones nonzero; 1.98
row adds per weight on the seed's softmax weights against 2.3 for bits with 255 = 256 - 1):
with x the weight, bit b of d = (x + x/2) XOR x/2 (mod 256) says level b (0..7) has a digit,
which is -1 when x has bit b+1 set; level 8 has a +1 when x >= 171. Once per head a pass writes,
for each position, d and s = x/2 + 128 * (x >= 171) into two pages of the scratch (position j
at 256 - P + j, so that the loops over the positions end when L wraps to 0; s's page right
after d's), sums the weights and ORs the d: a level whose bit is not in the OR is not scanned.
Level 8's scan tests bit 7 of s (always +); level b = 7..0 tests bit b of d, and a digit is -1
when s has bit b too (x's bit b+1; at level 7 s's bit 7 is 0 where d's is 1: no adjacent
digits); the masks are patched per level.

Scratch: the matvec's subset-sum table area (subsets.TABLES, page-aligned; its first three pages)
holds the parameter block, the 8 accumulators and their 8 wrap counts (the end of page 0), d
(page 1) and s (page 2), so op_mix first clears mv_valid (the next matvec rebuilds its tables);
nothing else outside the output is written, and the weights are read only. The row add, the
row subtract and the doubling are unrolled, one copy per dim (8 copies; a chunk of n dims
enters at dim 8 - n and uses accumulators 8-n..7; the entries are patched when n changes), with
the accumulator pointer stepped by INC L. A wrap is caught by CALL PE, which in a row add
pushes its return address over the value just popped: that handler puts the value back (PUSH
DE / POP DE; interrupts are off); the doublings, where nearly all wraps happen, have their own
entry without it. The accumulators and counts are cleared by PUSHes.

An accumulator is 16 bits, signed, with its wraps counted: a signed overflow in an add or a
doubling at level b adds +-2^b to the dim's 16-bit count K, so the sum is sext(acc) + 65536*K.
The finish reads the accumulators with POP and forms X = sum >> 8 (24 bits) beside the low byte.
When -256 * wsum <= sum < 256 * wsum (X = 0..wsum-1, or X = -wsum..-1) and wsum <= 32767, one
8-step divide of (X, or X + wsum) : low byte gives floor(sum / wsum) (the high byte of out is 0
or -1), and so for -512 * wsum <= sum < 512 * wsum with X - wsum or X + 2 * wsum (high byte 1
or -2): 74% and 21% of the seed's outputs. Otherwise |sum| <= 32768 * wsum, so
s' = sum + 32768 * wsum lies in 0 .. 65536 * wsum - 1: two 8-step divides (m_div16q when wsum
> 32767, where the remainder can reach 17 bits) give floor(s' / wsum) = out + 32768, which fits
16 bits (no saturation needed). The 8-step divide (mx_d8) is restoring, four steps of straight
code run twice (it calls into its own second half). All registers may change.
"""
from __future__ import annotations

from . import subsets

NEEDS = {"m_div16q"}      # shared arithmetic it calls (runtime_math.py)


def call_asm(weights: str, values: str, out: str, heads: int, per_head: int, row_bytes: int,
             context: int) -> str:
    if not 1 <= per_head <= 255 or not 1 <= heads <= 255:
        raise ValueError(f"mix of {heads} heads of {per_head}: the Z80 routine takes 1..255 of each")
    return (f"        CALL op_mix\n        DEFW {weights},{values},{out}\n"
            f"        DEFB {heads},{per_head}\n        DEFW {row_bytes},{context}\n")


def _unrolled(body: str) -> str:
    """The per-dim code for dims 0..7, one copy each (the chunk's n dims enter at dim 8 - n)."""
    return "".join(body for _ in range(8))


_ADD = """        POP DE
        LD A,(HL)
        ADD A,E
        LD (HL),A
        INC L
        LD A,(HL)
        ADC A,D
        LD (HL),A
        CALL PE,mx_ov                   ; (INC L would change P/V)
        INC L
"""
_SUB = _ADD.replace("ADD A,E", "SUB E").replace("ADC A,D", "SBC A,D")
_DBL = """        LD A,(HL)
        ADD A,A
        LD (HL),A
        INC L
        LD A,(HL)
        ADC A,A
        LD (HL),A
        CALL PE,mx_ovd                  ; (INC L would change P/V)
        INC L
"""
_DIV = """        ADC HL,HL
        SBC HL,BC
        JR NC,$+3
        ADD HL,BC
        RLA
"""
ADD_BYTES, DBL_BYTES = 12, 11


def _unrolled_n(body: str, n: int) -> str:
    return "".join(body for _ in range(n))


def routine_asm(tables: bool = False) -> str:
    """tables: the program has the subset-sum tables (codegen: uses_tables()), whose area serves
    as scratch (mv_valid cleared); otherwise the routine carries its own three pages."""
    assert subsets.TABLE_BYTES >= 3 * 256
    if tables:
        scratch, take = "", "        LD (mv_valid),A                 ; the tables are taken: the next matvec rebuilds them\n"
        acc = subsets.TABLES
    else:
        scratch, take = "        DEFS (256 - ($ & 255)) & 255\nmx_scratch:\n        DEFS 768\n", ""
        acc = "mx_scratch"
    return f"""
; ---- mix (targets/z80/ops/mix.py) ----
mx_acc EQU {acc}                        ; scratch, page-aligned, 3 pages
mx_par EQU mx_acc                       ; the parameter block; mx_vc (values) moves on to each chunk's slice of row 0
mx_vc EQU mx_par+2
mx_n EQU mx_par+12
mx_rem EQU mx_par+13
mx_sp EQU mx_par+16
mx_any EQU mx_par+18                    ; the OR of the head's digit masks
mx_a EQU mx_acc+0xE0                    ; 8 accumulators, then their 8 wrap counts (mx_a+16)
mx_dp EQU (mx_acc >> 8) + 1             ; the page of the digit masks d[j]
mx_sp_pg EQU mx_dp + 1                  ; the page of the weights' signs and level-8 digits s[j]
op_mix:
        XOR A
        LD (mx_n),A                     ; no chunk's entries set yet
{take}        POP HL
        LD DE,mx_par
        LD BC,12
        LDIR
        PUSH HL
mx_head:                                ; per position: s and d, the sum (IY) and the OR of the d (C')
        LD DE,(mx_par)
        LD A,(STEP_POS)
        CPL
        LD L,A                          ; position j at 256 - P + j in the pages (the loops end at L = 0)
        LD (mx_pg+1),A
        LD H,mx_sp_pg
        LD IY,0
        XOR A
        LD B,A
        EXX
        LD C,A
        EXX
mx_bl:
        LD A,(DE)
        INC DE
        LD C,A
        ADD IY,BC
        CP 171                          ; s = x/2 + 128 * (x >= 171)
        CCF
        RRA
        LD (HL),A
        RES 7,A
        LD C,A
        ADC A,A                         ; x again (the carry is its bit 0)
        ADD A,C
        XOR C                           ; d = (x + x/2) ^ x/2
        DEC H
        LD (HL),A
        INC H
        EXX
        OR C
        LD C,A
        EXX
        INC L
        JR NZ,mx_bl
        EXX
        LD A,C
        LD (mx_any),A
        PUSH IY
        POP HL
        LD A,H
        OR L
        JR NZ,mx_wsum_ok
        INC L
mx_wsum_ok:
        LD (mx_ws+1),HL
        LD A,H                          ; wsum > 32767: no fast divide (the remainder can reach 17 bits)
        RLA
        SBC A,A
        AND 0xF8
        ADD A,0x20                      ; JR NZ, or JR
        LD (mx_fj),A
        LD (mx_fj2),A
        XOR A                           ; 128 * wsum: (wsum >> 1) << 8 + (wsum & 1) << 7
        SRL H
        RR L
        RRA
        LD (mx_c1+1),A
        LD A,L
        LD (mx_c1+2),A
        LD A,H
        LD (mx_c2+1),A
        LD A,(mx_par+7)
        LD (mx_rem),A
mx_chunk:
        CP 9
        JR C,mx_n_ok
        LD A,8
mx_n_ok:
        LD HL,mx_n
        CP (HL)
        JR Z,mx_same                    ; the entries as for the last chunk
        LD (HL),A
        NEG                             ; the chunk's dims use accumulators 8-n..7
        ADD A,8
        LD C,A
        ADD A,A
        LD B,A
        ADD A,mx_a & 255
        LD (mx_l0+1),A
        LD (mx_fa+1),A
        LD (mx_dbl+1),A
        ADD A,16
        LD (mx_fl+1),A
        LD A,B                          ; the entries into the unrolled code: (8-n) * bytes per dim
        ADD A,A
        ADD A,A
        ADD A,B
        ADD A,C                         ; (8-n) * 11
        LD E,A
        LD D,0
        LD HL,mx_dbl0
        ADD HL,DE
        LD (mx_dblj+1),HL
        LD A,C
        ADD A,E                         ; (8-n) * 12
        LD E,A
        LD HL,mx_add0
        ADD HL,DE
        LD (mx_addj+1),HL
        LD HL,mx_sub0
        ADD HL,DE
        LD (mx_subj+1),HL
mx_same:
        CALL mx_clr
        EXX
        LD H,mx_acc >> 8
        EXX
        LD HL,256                       ; level 8: bit 7 of s, always +
        LD (mx_pw+1),HL
        LD A,mx_sp_pg
        LD (mx_pg+2),A
        LD A,128
        LD (mx_tst+1),A
        XOR A
        LD (mx_sgn+1),A
        CALL mx_scan
        LD A,mx_dp                      ; levels 7..0: bit b of d, - when s has bit b too
        LD (mx_pg+2),A
        XOR A
        LD (mx_pw+2),A
        LD C,128                        ; the level's bit in C through the loop
mx_level:
        LD A,C
        LD (mx_tst+1),A
        LD (mx_pw+1),A
        LD (mx_sgn+1),A
mx_dbl: LD HL,mx_a                      ; patched low byte: every accumulator of the chunk doubled
mx_dblj: JP 0                           ; patched: into mx_dbl0 at the chunk's first dim
mx_dbl0:
{_unrolled(_DBL)}        LD A,(mx_any)                   ; no digit at this level: no scan
        AND C
        CALL NZ,mx_scan
        SRL C
        JR NZ,mx_level
        EXX                             ; out = floor((sext(acc) + 65536*K) / wsum), written from HL'
        LD HL,(mx_par+4)
        EXX
mx_fl:  LD DE,mx_a+16                   ; patched low byte: the chunk's first wrap count
        LD (mx_sp),SP
mx_fa:  LD SP,mx_a                      ; patched low byte: the chunk's first accumulator
mx_ws:  LD BC,0                         ; patched: wsum
mx_fin:
        POP HL
        LD A,L
        EX AF,AF'                       ; the low byte in A'
        LD A,H
        RLA
        LD L,H
        LD A,(DE)
        SBC A,0
        LD H,A
        INC E
        LD A,(DE)
        SBC A,0                         ; A:H:L = sum >> 8
        ADD A,1
        JR C,mx_fneg
        DEC A
mx_fj:  JR NZ,mx_slow                   ; patched: JR when wsum > 32767
        SBC HL,BC                       ; 0 <= sum < 256 * wsum: out = sum / wsum in 8 steps
        JR NC,mx_slowp
        ADD HL,BC
mx_fb:  EXX
        LD B,A                          ; out's high byte in B'
        EXX
        EX AF,AF'
        CALL mx_d8
        CPL
mx_put:
        EXX
        LD (HL),A
        INC HL
        LD (HL),B
        INC HL
        EXX
        INC E
        JR NZ,mx_fin
        LD SP,(mx_sp)
        EXX
        LD (mx_par+4),HL
        EXX
        LD A,(mx_n)                     ; the next chunk of dims
        LD B,A
        ADD A,A
        LD E,A
        LD D,0
        LD HL,(mx_vc)
        ADD HL,DE
        LD (mx_vc),HL
        LD HL,mx_rem
        LD A,(HL)
        SUB B
        LD (HL),A
        JP NZ,mx_chunk
        LD HL,(mx_par)                  ; next head: weights row += context
        LD DE,(mx_par+10)
        ADD HL,DE
        LD (mx_par),HL
        LD HL,mx_par+6                  ; heads left
        DEC (HL)
        JP NZ,mx_head
        RET
mx_fneg:                                ; -256 * wsum <= sum < 0: out = (sum >> 8 + wsum : low byte) / wsum - 256
mx_fj2: JR NZ,mx_sln                    ; patched: JR when wsum > 32767
        DEC A
        ADD HL,BC
        JR C,mx_fb
        DEC A                           ; -512 * wsum <= sum: the high byte -2
        ADD HL,BC
        JR C,mx_fb
        SBC HL,BC
        SBC HL,BC
mx_sln: LD A,-1
        JR mx_slow
mx_slowp:                               ; sum >= 256 * wsum: below 512 * wsum the high byte is 1
        INC A
        SBC HL,BC
        ADD HL,BC                       ; (carry: below)
        JR C,mx_fb
        DEC A
        ADD HL,BC
mx_slow:                                ; s = sum + 32768 * wsum = 256 * (A:H:L + 128 * wsum) + the low byte
        PUSH DE
mx_c1:  LD DE,0                         ; patched: 128 * wsum, low word
        ADD HL,DE
mx_c2:  ADC A,0                         ; patched: its high byte
        LD D,A
        LD E,H
        LD H,L
        EX AF,AF'
        LD L,A
        BIT 7,B
        JR NZ,mx_big
        EX DE,HL                        ; s / wsum = out + 32768 in two divides of 8 bits
        LD A,D
        CALL mx_d8
        XOR 0x7F
        EXX
        LD B,A
        EXX
        LD A,E
        CALL mx_d8
        CPL
mx_sput:
        POP DE
        JP mx_put
mx_big:
        CALL m_div16q
        LD A,H
        XOR 0x80
        EXX
        LD B,A
        EXX
        LD A,L
        JR mx_sput
mx_d8:                                  ; 8 quotient bits of (HL:A) / BC into A, complemented; HL < BC <= 32768
        RLA
        CALL mx_d4
mx_d4:
{_unrolled_n(_DIV, 4)}        RET
mx_clr:                                 ; accumulators and wrap counts to 0; SP saved as mx_scan will have it
        LD (mx_sp),SP
        LD SP,mx_a+32
        LD HL,0
        LD B,8
mx_clear:
        PUSH HL
        PUSH HL
        DJNZ mx_clear
        LD SP,(mx_sp)
        RET
mx_scan:                                ; each position with a digit at this level adds or subtracts its row
mx_pg:  LD HL,0                         ; patched: the page tested, 256 - P
        LD IX,(mx_vc)
        LD DE,(mx_par+8)
mx_sl:
        LD A,(HL)
mx_tst: AND 0                           ; patched: the level's bit
        JR NZ,mx_hit
mx_sn:
        INC L
        ADD IX,DE
        JP NZ,mx_sl
        LD SP,(mx_sp)
        RET
mx_hit:
        INC H                           ; s
        LD A,(HL)
        DEC H
mx_sgn: AND 0                           ; patched: the level's bit, 0 at level 8
        LD SP,IX
        EXX
mx_l0:  LD L,0                          ; patched: the chunk's first accumulator
mx_addj: JP Z,0                         ; patched: into mx_add0 / mx_sub0 at the chunk's first dim
mx_subj: JP 0
mx_add0:
{_unrolled(_ADD)}        EXX
        JP mx_sn
mx_sub0:
{_unrolled(_SUB)}        EXX
        JP mx_sn
mx_ov:                                  ; the accumulator at L-1 wrapped in a row add (A = its new high byte): the
        POP IY                          ; CALL's return address overwrote the value just popped, which goes back
        PUSH DE                         ; (interrupts are off)
        POP DE
        JR mx_pw
mx_ovd:                                 ; the same in a doubling (most wraps): K += or -= 2^level
        POP IY
mx_pw:  LD DE,0                         ; patched: 2^level
        RLA                             ; the wrapped result's sign: negative = it went up
        SET 4,L                         ; L = the wrap count's low byte (carry kept)
        DEC L
        JR C,mx_ov_up
        LD A,(HL)
        SUB E
        LD (HL),A
        INC L
        LD A,(HL)
        SBC A,D
        JR mx_ov_done
mx_ov_up:
        LD A,(HL)
        ADD A,E
        LD (HL),A
        INC L
        LD A,(HL)
        ADC A,D
mx_ov_done:
        LD (HL),A
        RES 4,L                         ; back to the accumulator's high byte
        JP (IY)
mx_end:
{scratch}"""
