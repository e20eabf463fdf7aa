"""mix: per head h, out[h*P+d] = sat16(floor(sum_j w[h, j] * v[j, h*P+d] / max(1, sum_j w[h, j])))
over positions j = 0..STEP_POS; w is u8 [heads, context], v the int16 state [context, width].

        CALL op_mix
        DEFW weights, values, out
        DEFB heads, per_head
        DEFW row_bytes, context

The weights are the short operand, and a head's dims share them, so the products go bit by bit
of the weights with whole value rows added at once (Horner over the bit levels, highest first):
for each level, the accumulators of up to 8 dims (a chunk of the head) are doubled, then every
position whose weight has a digit at that level adds (or subtracts) its row of values, read with
POP (SP points into the value cache; interrupts are off). Each weight is recoded so that it has
few digits: w <= 128 is its bits, w >= 129 is 256 - m (m = 256 - w <= 127: a +1 at level 8 and
-1 at m's bits), e.g. 255 = 256 - 1 costs two row adds, not eight. The code sits in the weight
byte itself for the head's duration, e = w or e = 128 + m = (128 - w) mod 256 (its own inverse,
so the same pass puts the weights back): level 8 takes e >= 129, level 7 e = 128, lower levels
bit b of e, negative when e >= 128; the scan's test is patched per level.

Scratch: the matvec's subset-sum table area (subsets.TABLES, page-aligned) holds the 8 accumulators,
their 8 wrap counts and the parameter block, so op_mix first clears mv_valid (the next matvec
rebuilds its tables); nothing else outside the output is written. The row add, the row subtract
and the doubling are unrolled, one copy per dim (8 copies; a chunk of n dims enters at dim 8 - n
and uses accumulators 8-n..7), with the accumulator pointer stepped by INC L. A wrap is caught
by CALL PE, which in a row add pushes its return address over the value just popped: the
handler puts the value back (PUSH DE / POP DE; interrupts are off).

An accumulator is 16 bits, signed, with its wraps counted: a signed overflow in an add or a
doubling at level b adds +-2^b to the dim's 16-bit count K, so the sum is sext(acc) + 65536*K.
|sum| <= 32768 * wsum, so s' = sum + 32768 * wsum lies in 0 .. 65536 * wsum - 1: one unsigned
16-step divide (m_div16q) gives floor(s' / wsum) = out + 32768, which fits 16 bits (no saturation
needed). All registers may change.
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
        CALL PE,mx_ov                   ; (INC L would change P/V)
        INC L
"""
ADD_BYTES, DBL_BYTES = 12, 11


def routine_asm(tables: bool = False) -> str:
    """tables: the program has the subset-sum tables (codegen: uses_tables()), whose area serves
    as scratch (mv_valid cleared); otherwise the routine carries its own page-aligned 50 bytes."""
    if tables:
        scratch, take = "", "        XOR A\n        LD (mv_valid),A                 ; the tables are taken: the next matvec rebuilds them\n"
        acc = subsets.TABLES
    else:
        scratch, take = "        DEFS (256 - ($ & 255)) & 255\nmx_scratch:\n        DEFS 50\n", ""
        acc = "mx_scratch"
    return f"""
; ---- mix (targets/z80/ops/mix.py) ----
mx_acc EQU {acc}                        ; scratch (page-aligned): 8 accumulators, 8 wrap counts
mx_par EQU {acc}+32                     ; the parameter block; mx_vc (values) moves on to each chunk's slice of row 0
mx_vc EQU mx_par+2
mx_n EQU mx_par+12
mx_rem EQU mx_par+13
mx_pw EQU mx_par+14
mx_sp EQU mx_par+16
op_mix:
{take}        POP HL
        LD DE,mx_par
        LD BC,12
        LDIR
        PUSH HL
mx_head:
        CALL mx_flip                    ; the weights to their codes; DE = their sum
        LD A,D
        OR E
        JR NZ,mx_wsum_ok
        INC E
mx_wsum_ok:
        LD (mx_ws+1),DE
        LD HL,0                         ; 32768 * wsum: (wsum & 1) << 15 low, wsum >> 1 high
        SRL D
        RR E
        RR H
        LD (mx_cl+1),HL
        LD (mx_ch+1),DE
        LD A,(mx_par+7)
        LD (mx_rem),A
mx_chunk:
        CP 9
        JR C,mx_n_ok
        LD A,8
mx_n_ok:
        LD (mx_n),A
        NEG                             ; the chunk's dims use accumulators 8-n..7: L starts at 2*(8-n)
        ADD A,8
        LD C,A
        ADD A,A
        LD (mx_l0+1),A
        LD (mx_fl+2),A
        LD B,A                          ; the entries into the unrolled code: (8-n) * bytes per dim
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
        LD HL,mx_acc                    ; accumulators and wrap counts to 0
        LD B,32
        XOR A
mx_clear:
        LD (HL),A
        INC L
        DJNZ mx_clear
        LD HL,256                       ; level 8: e >= 129, always +
        LD (mx_pw),HL
        LD HL,0x81FE                    ; CP 129
        LD (mx_tst),HL
        LD A,0x30                       ; JR NC
        LD (mx_jr),A
        XOR A
        LD (mx_sgn+1),A
        CALL mx_scan
        LD HL,128                       ; level 7: e = 128 (w = 128), +
        LD (mx_pw),HL
        CALL mx_dbl
        LD HL,0x80FE                    ; CP 128
        LD (mx_tst),HL
        LD A,0x28                       ; JR Z
        LD (mx_jr),A
        CALL mx_scan
        LD A,0x20                       ; levels 6..0: bit b of e, - when e >= 128
        LD (mx_jr),A
        LD A,0x80
        LD (mx_sgn+1),A
        LD A,0xE6                       ; AND n
        LD (mx_tst),A
        LD A,64
mx_level:
        LD (mx_tst+1),A
        LD L,A
        LD H,0
        LD (mx_pw),HL
        CALL mx_dbl
        CALL mx_scan
        LD A,(mx_tst+1)
        SRL A
        JR NZ,mx_level
mx_fl:  LD IX,mx_acc                    ; patched low byte: the chunk's first accumulator
        LD IY,(mx_par+4)                ; out = floor((sext(acc) + 65536*K + 32768*wsum) / wsum) - 32768
        LD A,(mx_n)                     ; the count in A' through the loop
mx_fin:
        EX AF,AF'
        LD L,(IX+0)
        LD H,(IX+1)
        LD E,(IX+16)
        LD D,(IX+17)
        BIT 7,H
        JR Z,mx_fin_p
        DEC DE
mx_fin_p:
mx_cl:  LD BC,0                         ; patched: 32768*wsum, low word
        ADD HL,BC
        EX DE,HL
mx_ch:  LD BC,0                         ; patched: high word
        ADC HL,BC
mx_ws:  LD BC,0                         ; patched: wsum
        BIT 7,B
        JR NZ,mx_slow
        LD A,D                          ; the fast divide: HL = remainder, A = the next 8 dividend bits
        CALL mx_d8
        XOR 0x7F                        ; the quotient's bits come complemented; out = q - 32768
        LD (IY+1),A
        LD A,E
        CALL mx_d8
        CPL
mx_put:
        LD (IY+0),A
        INC IY
        INC IY
        INC IX
        INC IX
        EX AF,AF'
        DEC A
        JR NZ,mx_fin
        LD (mx_par+4),IY
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
        CALL mx_flip                    ; the weights back
        LD HL,(mx_par)                  ; next head: weights row += context
        LD DE,(mx_par+10)
        ADD HL,DE
        LD (mx_par),HL
        LD HL,mx_par+6                  ; heads left
        DEC (HL)
        JP NZ,mx_head
        RET
mx_slow:                                ; wsum > 32767: the remainder can reach 17 bits
        EX DE,HL
        CALL m_div16q
        LD A,H
        XOR 0x80
        LD (IY+1),A
        LD A,L
        JR mx_put
mx_d8:                                  ; 8 quotient bits of (HL:A) / BC into A, complemented; HL < BC <= 32768
        LD D,4
mx_d8l:
        RLA
        ADC HL,HL
        SBC HL,BC
        JR NC,$+3
        ADD HL,BC
        RLA
        ADC HL,HL
        SBC HL,BC
        JR NC,$+3
        ADD HL,BC
        DEC D
        JR NZ,mx_d8l
        RLA
        RET
mx_flip:                                ; e = (128 - w) mod 256 for w >= 129, both ways; DE = sum of the bytes before
        LD HL,(mx_par)
        LD A,(STEP_POS)
        INC A
        LD B,A
        LD DE,0
mx_flip_l:
        LD A,(HL)
        LD C,A
        ADD A,E
        LD E,A
        JR NC,mx_flip_c
        INC D
mx_flip_c:
        LD A,C
        CP 129
        JR C,mx_flip_n
        LD C,A
        LD A,128
        SUB C
        LD (HL),A
mx_flip_n:
        INC HL
        DJNZ mx_flip_l
        RET
mx_dbl:                                 ; every accumulator of the chunk doubled
        LD HL,mx_acc
        LD A,(mx_l0+1)
        LD L,A
mx_dblj: JP 0                           ; patched: into mx_dbl0 at the chunk's first dim
mx_dbl0:
{_unrolled(_DBL)}        RET
mx_scan:                                ; each position with a digit at this level adds its row
        LD (mx_sp),SP
        LD HL,(mx_par)
        LD IX,(mx_vc)
        LD DE,(mx_par+8)
        LD A,(STEP_POS)
        INC A
        LD B,A
        EXX
        LD H,mx_acc >> 8
        EXX
mx_sl:
        LD A,(HL)
mx_tst: AND 0                           ; patched: AND bit / CP 128 / CP 129
mx_jr:  JR NZ,mx_hit                    ; patched: JR NZ / JR Z / JR NC
mx_sn:
        INC HL
        ADD IX,DE
        DJNZ mx_sl
        LD SP,(mx_sp)
        RET
mx_hit:
        LD A,(HL)
mx_sgn: AND 0                           ; patched: 128 where e >= 128 means a minus digit
        LD SP,IX
        EXX
mx_l0:  LD L,0                          ; patched: 2 * (8 - n), the chunk's first accumulator
mx_subj: JP NZ,0                        ; patched: into mx_sub0 / mx_add0 at the chunk's first dim
mx_addj: JP 0
mx_add0:
{_unrolled(_ADD)}        EXX
        JP mx_sn
mx_sub0:
{_unrolled(_SUB)}        EXX
        JP mx_sn
mx_ov:                                  ; the accumulator at L-1 wrapped (A = its new high byte): K += or -= 2^level.
        POP IY                          ; In a row add the CALL's return address overwrote the value just
        PUSH DE                         ; popped: it goes back (interrupts are off)
        POP DE
        LD DE,(mx_pw)
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
