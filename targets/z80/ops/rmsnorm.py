"""rmsnorm (seed numerics, no epsilon):
    xs = x >> 4;  m = max(1, sum(xs*xs) // n);  r = max(1, isqrt(m));
    inv = min(32767, 2^19 // r);  y[i] = sat16((((x[i] * inv) >> 15) * g[i]) >> sg)

        CALL op_rmsnorm
        DEFW x, gain, y
        DEFB n, sg          ; sg signed: a negative shift is a left shift

All registers may change (IY is kept). The squares and products use the shared shift-and-add
multiplies; the mean uses m_div32, the root m_isqrt, and 2^19 // r the 16-step divide (r >= 17
there, so the quotient fits 16 bits; below 17 inv is 32767). A left shift stops early once
the value leaves the int16 range, where the saturated result is already decided.
"""
from __future__ import annotations

from soulc.targets.z80.runtime_math import GTAB

NEEDS = {"m_mul16u", "m_mul8u", "m_neg32", "m_sat32", "m_isqrt", "m_div32", "m_div16q", "m_add32"}      # shared arithmetic it calls (runtime_math.py)


def call_asm(x: str, gain: str, y: str, n: int, gain_shift: int) -> str:
    if not 1 <= n <= 255:
        raise ValueError(f"rmsnorm over {n} values: the Z80 routine takes 1..255")
    return (f"        CALL op_rmsnorm\n        DEFW {x},{gain},{y}\n"
            f"        DEFB {n},{gain_shift & 0xFF}\n")


def routine_asm() -> str:
    return f"""
; ---- rmsnorm (targets/z80/ops/rmsnorm.py) ----
op_rmsnorm:
        POP HL
        LD DE,rn_par
        LD BC,8
        LDIR
        PUSH HL
        LD HL,0
        LD (rn_sum),HL
        LD (rn_sum+2),HL
        LD HL,(rn_par)
        LD (rn_p),HL
        LD A,(rn_par+6)
        LD (rn_k),A
rn_square:                              ; rn_sum += (x >> 4)^2
        LD HL,(rn_p)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD (rn_p),HL
        EX DE,HL
        SRA H
        RR L
        SRA H
        RR L
        SRA H
        RR L
        SRA H
        RR L
        BIT 7,H
        JR Z,rn_abs
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_abs:
        LD A,H
        OR A
        JR NZ,rn_big
        LD A,L                          ; |xs| < 256: xs^2 = g(xs) + g(-xs) = G[256+xs] + G[256-xs]
        LD H,{GTAB} >> 8
        INC H
        LD E,(HL)
        INC H
        INC H
        LD D,(HL)                       ; DE = G[256 + xs]
        NEG
        LD L,A
        LD H,{GTAB} >> 8
        JR NZ,rn_low
        INC H                           ; (xs = 0: G[256])
rn_low:
        LD A,(HL)
        INC H
        INC H
        LD H,(HL)
        LD L,A                          ; HL = G[256 - xs]
        ADD HL,DE                       ; (at most 255^2: no carry)
        LD DE,0
        JR rn_sq_done
rn_big:                                 ; |xs| <= 2048: twelve steps do
        LD D,H
        LD E,L
        LD B,H
        LD C,L
        EX DE,HL
        ADD HL,HL
        ADD HL,HL
        ADD HL,HL
        ADD HL,HL
        EX DE,HL
        LD HL,0
        CALL m_mul16u_s4
rn_sq_done:
        LD IX,rn_sum
        CALL m_add32
        LD HL,rn_k
        DEC (HL)
        JR NZ,rn_square
        LD HL,(rn_sum)
        LD DE,(rn_sum+2)
        LD A,(rn_par+6)
        LD C,A
        LD B,0
        CALL m_div32                    ; mean
        LD A,H
        OR L
        OR D
        OR E
        JR NZ,rn_mean
        INC L
rn_mean:
        CALL m_isqrt
        LD A,H
        OR L
        JR NZ,rn_root
        INC L
rn_root:
        LD DE,17
        OR A
        SBC HL,DE
        ADD HL,DE
        LD DE,32767
        JR C,rn_have_inv
        LD B,H
        LD C,L
        LD DE,8
        LD HL,0
        CALL m_div16q                   ; 2^19 // r
        EX DE,HL
rn_have_inv:
        LD (rn_inv),DE
        LD HL,(rn_par)
        LD (rn_p),HL
        LD A,(rn_par+6)
        LD (rn_k),A
rn_elem:
        LD HL,(rn_p)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD (rn_p),HL
        EX DE,HL                        ; HL = x
        LD A,H
        LD (rn_sign),A
        BIT 7,H
        JR Z,rn_xpos
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_xpos:
        LD B,H
        LD C,L
        LD DE,(rn_inv)                  ; inv < 2^15: fifteen steps
        SLA E
        RL D
        LD HL,0
        CALL m_mul16u_s1
        LD A,(rn_sign)
        OR A
        CALL M,m_neg32
        ADD HL,HL                       ; (x * inv) >> 15 is the high word of the product * 2
        RL E
        RL D
        LD HL,(rn_par+2)
        LD A,(HL)                       ; the gain
        INC HL
        LD (rn_par+2),HL
        EX DE,HL                        ; HL = t
        LD E,A
        XOR H
        LD (rn_sign),A                  ; the product's sign in bit 7
        BIT 7,H
        JR Z,rn_tpos
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_tpos:
        BIT 7,E
        JR Z,rn_gpos
        XOR A
        SUB E
        LD E,A
rn_gpos:
        CALL m_mul8u
        LD A,(rn_sign)
        OR A
        CALL M,m_neg32
        LD A,(rn_par+7)
        OR A
        JR Z,rn_shifted
        JP M,rn_left
rn_right:
        SRA D
        RR E
        RR H
        RR L
        DEC A
        JR NZ,rn_right
        JR rn_shifted
rn_left:
        LD B,A
rn_left_loop:
        LD A,H
        RLA
        SBC A,A
        CP E
        JR NZ,rn_shifted
        CP D
        JR NZ,rn_shifted
        ADD HL,HL
        RL E
        RL D
        INC B
        JR NZ,rn_left_loop
rn_shifted:
        CALL m_sat32
        EX DE,HL
        LD HL,(rn_par+4)
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        LD (rn_par+4),HL
        LD HL,rn_k
        DEC (HL)
        JP NZ,rn_elem
        RET
rn_par: DEFS 8
rn_sum: DEFS 4
rn_p: DEFW 0
rn_k: DEFB 0
rn_inv: DEFW 0
rn_sign: DEFB 0
"""
