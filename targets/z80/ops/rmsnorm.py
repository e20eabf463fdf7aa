"""rmsnorm (seed numerics, no epsilon):
    xs = x >> 4;  m = max(1, sum(xs*xs) // n);  r = max(1, isqrt(m));
    inv = min(32767, 2^19 // r);  y[i] = sat16((((x[i] * inv) >> 15) * g[i]) >> sg)

        CALL op_rmsnorm
        DEFW x, gain, y
        DEFB n, k           ; k = 8 - log2(n), or 0 when n is not a power of two
        DEFW rn_fin_<sg>    ; the block for the gain's shift sg (finishers_asm)

All registers may change (IY is kept). Interrupts must be off: SP walks over x.

The sum of squares: SP walks x (POP). For |xs| <= 255, w = |xs| comes from x's middle
byte (a nibble swap, NEG for x < 0) and w^2 is read from the squares table SQ
(runtime_math.py: low byte at L = w, high byte a page up); the others (|x| >= 4081 or so) square
|xs| <= 2048 by two 16x8 shift-and-add multiplies (rn_mul8). The mean: when n is a power of
two, 8 - log2(n) left shifts of the 32-bit sum and a byte move (not log2(n) right shifts),
else two m_div16q. The root: 12 digit-by-digit steps with the remainder and 4*root + 1 in
16-bit registers, m's bytes fed two bits at a time (m < 2^23). 2^19 // r: 15 restoring steps
(r >= 17 there, so the quotient fits 15 bits; below 17 inv is 32767).

Per element, u = |t| = |(x * inv) >> 15| by 15 right-shift steps over inv's bits: the
steps' opcodes (ADD HL,DE or NOP) are written once per call from inv's bits, and the
accumulator starts at 32767 for x < 0, which rounds the quotient up: t = -ceil(|x|*inv/2^15).
Then u * |g| >> sg, rounded down (the product's sign positive) or up (negative), also by
right-shift steps: min(sg, 8) steps over the low bits of |g| (entered part-way through 8, with
the accumulator starting at 2^steps - 1 to round up), |g|'s bits shifted out of A by RRA, then
the rest of |g| (|g| >> sg, mostly 0..2) added in, then for sg > 8 the remaining shift and for
sg < 0 the left shift (finishers_asm: a block per shift with the entry, the rounding constant
and a mask). The magnitude saturates at 32767 (32768 for a negative result) and takes the sign.
u < 4400 always (|xs| < sqrt(n) * (r + 1), n <= 255), so the accumulators never overflow.
"""
from __future__ import annotations

from soulc.targets.z80.runtime_math import SQTAB

from . import matvec

NEEDS = {"m_div16q"}      # shared arithmetic it calls (runtime_math.py)

PARAM_SIZE = 10
X_STEPS = 15            # right-shift steps over inv's bits
STEP_BYTES = 5          # one x step: opcode (ADD HL,DE or NOP), SRL H, RR L
G_STEPS = 8             # right-shift steps over |g|'s low bits (at most)


def call_asm(x: str, gain: str, y: str, n: int, gain_shift: int) -> str:
    if not 1 <= n <= 255:
        raise ValueError(f"rmsnorm over {n} values: the Z80 routine takes 1..255")
    shifts = 9 - n.bit_length() if n & (n - 1) == 0 else 0    # 8 - log2(n), or 0: divide
    return (f"        CALL op_rmsnorm\n        DEFW {x},{gain},{y}\n"
            f"        DEFB {n},{shifts}\n"
            f"        DEFW {matvec.finisher_label(gain_shift, 'rn')}\n")


def _x_steps() -> str:
    return "".join(f"rn_m{i}:\n        NOP\n        SRL H\n        RR L\n" for i in range(X_STEPS))


def _g_steps() -> str:
    """rn_rs<k>: k steps to go. Carry: the bit of |g| for this step; RRA exposes the next."""
    return "".join(f"rn_rs{k}:\n        JR NC,$+3\n        ADD HL,DE\n        RR H\n        RR L\n        RRA\n"
                   for k in range(G_STEPS, 0, -1))


def routine_asm() -> str:
    page = f"{SQTAB} >> 8"
    return f"""
; ---- rmsnorm (targets/z80/ops/rmsnorm.py) ----
op_rmsnorm:
        POP HL
        LD DE,rn_par
        LD BC,{PARAM_SIZE}
        LDIR
        PUSH HL
        LD (rn_sp),SP
        LD SP,(rn_par)                  ; the sum of squares: SP walks x
        LD IX,0                         ; the sum: B'C' (high word), IX (low word)
        EXX
        LD BC,0
        EXX
        LD A,(rn_par+6)
        LD B,A
rn_sq:
        POP HL
        LD A,H
        ADD A,16
        CP 32
        JR NC,rn_sq_big                 ; |x| >= 4096
        LD A,L                          ; A = (x >> 4) & 255: a nibble swap
        XOR H
        AND 0F0h
        XOR H
        RRCA
        RRCA
        RRCA
        RRCA
        BIT 7,H
        JR Z,rn_sq_pos
        NEG                             ; w = |xs|
        JR Z,rn_sq_big                  ; xs = -256
rn_sq_pos:
        LD L,A
        LD H,{page}
        LD E,(HL)
        INC H
        LD D,(HL)                       ; w^2 from the squares table
rn_sq_add:
        ADD IX,DE
        JR NC,rn_sq_next
        EXX
        INC BC
        EXX
rn_sq_next:
        DJNZ rn_sq
        LD SP,(rn_sp)
        PUSH IX
        POP HL
        EXX
        PUSH BC
        EXX
        POP DE                          ; DE:HL = the sum
        LD A,(rn_par+7)                 ; the mean: 8 - log2(n) left shifts and a byte, or a division
        OR A
        JR Z,rn_divide
rn_halve:
        ADD HL,HL
        RL E
        RL D
        DEC A
        JR NZ,rn_halve
        LD L,H
        LD H,E
        LD E,D
        JR rn_mean
rn_sq_big:                              ; xs^2 (|xs| <= 2048) on the real stack
        LD (rn_sp2),SP
        LD SP,(rn_sp)
        PUSH BC
        SRA H
        RR L
        SRA H
        RR L
        SRA H
        RR L
        SRA H
        RR L
        BIT 7,H
        JR Z,rn_sqb_pos
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_sqb_pos:                             ; HL = w = |xs| = 256*wh + wl
        EX DE,HL
        LD A,D
        CALL rn_mul8                    ; HL = w * wh (below 2^15)
        PUSH HL
        LD A,E
        CALL rn_mul8                    ; A:HL = w * wl
        POP DE
        LD C,A                          ; + 256 * w * wh
        LD A,H
        ADD A,E
        LD H,A
        LD A,C
        ADC A,D
        LD E,A
        PUSH DE                         ; E:HL = w^2: the high word into B'C'
        EXX
        POP HL
        LD H,0
        ADD HL,BC
        LD B,H
        LD C,L
        EXX
        EX DE,HL
        POP BC
        LD SP,(rn_sp2)
        JR rn_sq_add
rn_divide:                              ; DE:HL // n, a word at a time
        PUSH HL
        EX DE,HL
        LD DE,0
        LD A,(rn_par+6)
        LD C,A
        LD B,0
        CALL m_div16q
        EX (SP),HL
        CALL m_div16q
        POP DE
rn_mean:                                ; E:HL = m (below 2^23), at least 1
        LD A,H
        OR L
        OR E
        JR NZ,rn_m_ok
        INC L
rn_m_ok:
        LD (rn_m),HL                    ; the root: HL = remainder, DE = 4*root + 1
        LD A,E
        LD HL,0
        LD DE,1                         ; (a zero byte of m on top leaves both as they are)
        OR A
        JR NZ,rn_r3
        LD A,(rn_m+1)
        OR A
        JR NZ,rn_r2
        JR rn_r1
rn_r3:
        CALL rn_root4
        LD A,(rn_m+1)
rn_r2:
        CALL rn_root4
rn_r1:
        LD A,(rn_m)
        CALL rn_root4
        SRL D
        RR E
        SRL D
        RR E                            ; DE = r
        LD HL,-17
        ADD HL,DE
        LD BC,32767
        JR NC,rn_have_inv
        LD HL,16                        ; 2^19 // r: 16 = 2^19 >> 15 < r
        LD B,15
rn_div:
        ADD HL,HL
        SBC HL,DE
        JR NC,rn_div1
        ADD HL,DE                       ; (sets carry)
rn_div1:
        CCF
        RL C
        RLA
        DJNZ rn_div
        LD B,A                          ; BC = inv
rn_have_inv:                            ; inv's bits into the x steps' opcodes
        LD HL,rn_m0
        LD DE,{STEP_BYTES}
        LD A,C
        PUSH BC
        LD B,8
        CALL rn_patch
        POP AF
        LD B,7
        CALL rn_patch
        LD HL,(rn_par+8)                ; the gain shift's block
        LD DE,rn_gent+1
        LDI
        LDI
        LD A,(HL)
        LD (rn_cpat+1),A
        INC HL
        LD A,(HL)
        LD (rn_mpat+1),A
        INC HL
        LD DE,rn_post+1
        LDI
        LDI
        LD HL,(rn_par+4)                ; y - x - 2: y's element from SP
        LD DE,(rn_par)
        OR A
        SBC HL,DE
        DEC HL
        DEC HL
        LD (rn_yd+1),HL
        LD HL,(rn_par+2)                ; this set: HL = gain pointer, B = count
        LD A,(rn_par+6)
        LD B,A
        LD SP,(rn_par)
rn_elem:
        LD A,(HL)
        INC HL
        EXX
        POP DE                          ; x
        LD C,A                          ; g
        XOR D
        LD B,A                          ; bit 7: the product's sign
        LD HL,0
        BIT 7,D
        JR Z,rn_m0
        XOR A
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A                          ; |x|
        LD HL,32767                     ; rounds up
{_x_steps()}        EX DE,HL                        ; DE = u = |t|
        LD A,C
        OR A
        JP P,rn_gpos
        NEG                             ; A = |g|
rn_gpos:
        LD HL,0
        BIT 7,B
        JR Z,rn_gfl
rn_cpat:
        LD L,0                          ; 2^steps - 1: rounds up
rn_gfl:
        SRL A
rn_gent:
        JP 0                            ; min(sg, 8) steps before rn_r0
{_g_steps()}rn_r0:                                  ; carry: bit sg of |g|; A's low bits: the rest
        JR NC,rn_rm
        ADD HL,DE
rn_rm:
rn_mpat:
        AND 0
        JR NZ,rn_more
rn_post:
        JP rn_done                      ; or the shift's own ending
rn_more:                                ; += 2u * A
        EX DE,HL
        ADD HL,HL
        EX DE,HL
rn_more1:
        SRL A
        JR NC,rn_more2
        ADD HL,DE
        JR C,rn_sat
rn_more2:
        JR Z,rn_post
        EX DE,HL
        ADD HL,HL
        EX DE,HL
        JR NC,rn_more1
rn_sat:
        BIT 7,B
        JR Z,rn_satp
        LD HL,32768
        JR rn_store
rn_done:                                ; HL = the magnitude
        BIT 7,B
        JR NZ,rn_neg
        BIT 7,H
        JR Z,rn_store
rn_satp:
        LD HL,32767
        JR rn_store
rn_neg:
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
        JP M,rn_store
        OR L
        JR Z,rn_store
        LD HL,32768
        JR rn_store
rn_nosat:                               ; sg >= 5: |result| < 4400 * 128 / 32 needs no saturation
        BIT 7,B
        JR Z,rn_store
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_store:
        EX DE,HL
rn_yd:
        LD HL,0
        ADD HL,SP
        LD (HL),E
        INC HL
        LD (HL),D
        EXX
        DEC B
        JP NZ,rn_elem
        LD SP,(rn_sp)
        RET
rn_root4:                               ; four root steps on A's bits
        LD B,4
rn_root:
        RLA
        ADC HL,HL
        RLA
        ADC HL,HL
        SBC HL,DE
        JR C,rn_root0
        EX DE,HL                        ; a one: 4*root + 1 -> 2*(4*root + 1) + 3
        ADD HL,HL
        INC HL
        INC HL
        INC HL
        EX DE,HL
        DJNZ rn_root
        RET
rn_root0:
        ADD HL,DE                       ; a zero: -> 2*(4*root + 1) - 1
        EX DE,HL
        ADD HL,HL
        DEC HL
        EX DE,HL
        DJNZ rn_root
        RET
rn_mul8:                                ; A:HL = DE * A
        LD HL,0
        LD B,8
rn_mul8l:
        ADD HL,HL
        RLA
        JR NC,rn_mul8s
        ADD HL,DE
        ADC A,0
rn_mul8s:
        DJNZ rn_mul8l
        RET
rn_patch:                               ; B of A's bits, low first, into opcodes from HL
        LD C,A
rn_patch1:
        SRL C
        SBC A,A
        AND 19h                         ; ADD HL,DE
        LD (HL),A
        ADD HL,DE
        DJNZ rn_patch1
        RET
rn_par: DEFS {PARAM_SIZE}
rn_sp: DEFW 0
rn_sp2: DEFW 0
rn_m: DEFW 0
"""


def _block(shift: int) -> str:
    """The block for one gain shift: entry, rounding constant, mask, ending (and its code)."""
    lab = matvec.finisher_label(shift, "rn")
    steps = min(max(shift, 0), G_STEPS)
    mask = (1 << (7 - steps)) - 1 if steps <= 7 else 0
    ending, code = ("rn_nosat" if shift >= 5 else "rn_done"), ""
    if shift > G_STEPS:
        extra = min(shift - G_STEPS, 14)        # the magnitude is below 2^13 here
        ending = f"{lab}_x"
        code = (f"{lab}_x:\n        BIT 7,B\n        JR Z,{lab}_f\n        LD DE,{(1 << extra) - 1}\n"
                f"        ADD HL,DE\n{lab}_f:\n        LD A,{extra}\n{lab}_l:\n        SRL H\n        RR L\n"
                f"        DEC A\n        JR NZ,{lab}_l\n        JP rn_nosat\n")
    elif shift < 0:
        left = min(-shift, 16)
        ending = f"{lab}_x"
        code = (f"{lab}_x:\n        LD A,{left}\n{lab}_l:\n        ADD HL,HL\n        JP C,rn_sat\n"
                f"        DEC A\n        JR NZ,{lab}_l\n        JP rn_done\n")
    rs = f"rn_rs{steps}" if steps else "rn_r0"
    return f"{lab}:\n        DEFW {rs}\n        DEFB {(1 << steps) - 1},{mask}\n        DEFW {ending}\n" + code


def finishers_asm(shifts) -> str:
    """A block per gain shift (see _block), named like matvec's finishers."""
    return "".join(_block(s) for s in sorted(set(shifts)))
