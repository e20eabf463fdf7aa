"""rmsnorm (seed numerics, no epsilon):
    xs = x >> 4;  m = max(1, sum(xs*xs) // n);  r = max(1, isqrt(m));
    inv = min(32767, 2^19 // r);  y[i] = sat16((((x[i] * inv) >> 15) * g[i]) >> sg)

        CALL op_rmsnorm
        DEFW x, gain, y
        DEFB n, sg          ; sg signed: a negative shift is a left shift
        DEFB log2(n)        ; or 255 when n is not a power of two
        DEFW rn_fin_<sg>    ; the finisher for sg (finishers_asm)

All registers may change (IY is kept).

The products go through the half-square table G (runtime_math.py): for signed bytes a, b,
a*b = g(a+b) - g(a) - g(b). The square of |xs| < 256 is g(xs) + g(-xs). With x = 256*xa + xb
and inv = 256*ia + ib (xb, ib unsigned; xb' = xb - 128, ib' = ib - 128), the four byte
products of x*inv collapse to

    x*inv = 65536*(L1 - S1) + 256*(L2 + L3 - S1 - S2) + (L4 - S2) + 128*x + K
    L1 = g(xa+ia), L2 = g(xa+ib'), L3 = g(xb'+ia), L4 = g(xb'+ib'), S1 = g(xa), S2 = g(xb')
    K = -65792*g(ia) - 257*g(ib') + 32768*ia + 128*ib'          (once per call)

where ia and ib' are written into the lookups' immediates once per call, so an element costs
six lookups. for t = 256*ta + tb. t*g is |t| times the bits of |g|, and the result shifted and saturated by
matvec's finisher for the gain's shift. The mean is a shift when n
is a power of two (else m_div32), the root a 12-step digit-by-digit square root (m < 2^24:
|xs| <= 2048), 2^19 // r the 16-step divide (r >= 17 there, so the quotient fits 16 bits;
below 17 inv is 32767). A left shift stops early once the value leaves the int16 range,
where the saturated result is already decided.
"""
from __future__ import annotations

from soulc.targets.z80.runtime_math import GTAB

from . import matvec

NEEDS = {"m_mul16u", "m_div32", "m_div16q"}      # shared arithmetic it calls (runtime_math.py)


def call_asm(x: str, gain: str, y: str, n: int, gain_shift: int) -> str:
    if not 1 <= n <= 255:
        raise ValueError(f"rmsnorm over {n} values: the Z80 routine takes 1..255")
    log2 = n.bit_length() - 1 if n & (n - 1) == 0 else 255
    return (f"        CALL op_rmsnorm\n        DEFW {x},{gain},{y}\n"
            f"        DEFB {n},{gain_shift & 0xFF},{log2}\n"
            f"        DEFW {matvec.finisher_label(gain_shift, 'rn')}\n")


def _lookup(base: str, label: str = "") -> str:
    """HL = the G entry at base + BC (base patched when the line has a label)."""
    head = f"{label}:\n" if label else ""
    return (head + f"        LD HL,{base}\n        ADD HL,BC\n        LD A,(HL)\n        INC H\n        INC H\n"
            "        LD H,(HL)\n        LD L,A\n")


def routine_asm() -> str:
    return f"""
; ---- rmsnorm (targets/z80/ops/rmsnorm.py) ----
op_rmsnorm:
        POP HL
        LD DE,rn_par
        LD BC,11
        LDIR
        PUSH HL
        LD HL,(rn_par+9)
        LD (rn_finj+1),HL
        LD HL,0
        LD (rn_sum),HL
        LD (rn_sum+2),HL
        LD HL,(rn_par)
        LD A,(rn_par+6)
        LD B,A
rn_square:                              ; rn_sum += (x >> 4)^2
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        PUSH HL
        PUSH BC
        SRA D
        RR E
        SRA D
        RR E
        SRA D
        RR E
        SRA D
        RR E
        LD A,D
        OR A
        JR Z,rn_sq_small
        INC A
        JR NZ,rn_sq_big
        OR E
        JR Z,rn_sq_big                  ; -256
rn_sq_small:                            ; |xs| < 256: g(xs) + g(-xs)
        LD HL,{GTAB}+256
        ADD HL,DE
        LD C,(HL)
        INC H
        INC H
        LD B,(HL)
        LD HL,{GTAB}+256
        OR A
        SBC HL,DE
        LD A,(HL)
        INC H
        INC H
        LD H,(HL)
        LD L,A
        ADD HL,BC
        LD DE,0
        JR rn_sq_add
rn_sq_big:                              ; |xs| <= 2048: twelve steps do
        BIT 7,D
        JR Z,rn_sq_pos
        XOR A
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A
rn_sq_pos:
        LD B,D
        LD C,E
        EX DE,HL
        ADD HL,HL
        ADD HL,HL
        ADD HL,HL
        ADD HL,HL
        EX DE,HL
        LD HL,0
        CALL m_mul16u_s4
rn_sq_add:
        LD BC,(rn_sum)
        ADD HL,BC
        LD (rn_sum),HL
        LD HL,(rn_sum+2)
        ADC HL,DE
        LD (rn_sum+2),HL
        POP BC
        POP HL
        DJNZ rn_square
        LD HL,(rn_sum)                  ; the mean: a shift, or a division
        LD DE,(rn_sum+2)
        LD A,(rn_par+8)
        CP 255
        JR Z,rn_divide
        OR A
        JR Z,rn_mean
rn_halve:
        SRL D
        RR E
        RR H
        RR L
        DEC A
        JR NZ,rn_halve
        JR rn_mean
rn_divide:
        LD A,(rn_par+6)
        LD C,A
        LD B,0
        CALL m_div32
rn_mean:                                ; E:HL = m (below 2^24), at least 1
        LD A,H
        OR L
        OR E
        JR NZ,rn_m_ok
        INC L
rn_m_ok:
        LD C,E                          ; the root, two bits of m at a time: C:HL = m
        LD DE,0                         ; DE = root, H'L' = remainder
        EXX
        LD HL,0
        EXX
        LD B,12
rn_sqrt:
        ADD HL,HL
        RL C
        EXX
        ADC HL,HL
        EXX
        ADD HL,HL
        RL C
        EXX
        ADC HL,HL
        EXX
        EX DE,HL
        ADD HL,HL
        PUSH HL
        ADD HL,HL
        INC HL                          ; trial = 4 * root + 1
        PUSH HL
        EXX
        POP DE
        OR A
        SBC HL,DE
        JR NC,rn_sqrt_one
        ADD HL,DE
        EXX
        POP HL
        JR rn_sqrt_next
rn_sqrt_one:
        EXX
        POP HL
        INC HL
rn_sqrt_next:
        EX DE,HL
        DJNZ rn_sqrt
        EX DE,HL                        ; HL = r (>= 1)
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
rn_have_inv:                            ; DE = inv = 256*ia + ib: into the element code
        LD A,D
        ADD A,128
        LD L,A
        LD A,{GTAB} >> 8
        ADC A,0
        LD H,A
        LD (rn_l1+1),HL                 ; GTAB + ia + 128
        LD (rn_l3+1),HL
        LD L,E
        LD H,{GTAB} >> 8
        LD (rn_l2+1),HL                 ; GTAB + ib = GTAB + ib' + 128
        LD (rn_l4+1),HL
        PUSH DE
        LD A,D
        ADD A,128
        LD C,A
        LD B,0
{_lookup(GTAB + "+128")}        PUSH HL                         ; g(ia)
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
        LD (rn_kc1+1),HL                ; -g(ia)
        POP BC
        POP DE
        PUSH DE
        LD H,D                          ; 128*ia - g(ia)
        LD L,0
        SRL H
        RR L
        OR A
        SBC HL,BC
        LD (rn_ka+1),HL
        POP DE
        LD C,E
        LD B,0
{_lookup(GTAB + "+128")}        LD B,H
        LD C,L                          ; g(ib')
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
        LD (rn_kc2+1),HL                ; -g(ib')
        LD A,E
        SUB 128
        SRA A
        LD H,A
        LD A,0
        RRA
        LD L,A                          ; 128*ib'
        OR A
        SBC HL,BC
        LD (rn_kb+1),HL                 ; 128*ib' - g(ib')
        LD HL,(rn_par)
        LD (rn_p),HL
        LD HL,(rn_par+2)
        LD (rn_gp),HL
        LD HL,(rn_par+4)
        LD (rn_yp),HL
        LD A,(rn_par+6)
        LD (rn_n),A
rn_elem:                                ; t = (x*inv) >> 15 = 2*xa*ia + (xb*ia + (xb*ib >> 8) + xa*ib) >> 7
        LD HL,(rn_p)
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        LD (rn_p),HL
        LD (rn_x),DE
        LD A,D
        XOR 128
        LD C,A
        LD B,0                          ; BC = xa, offset form
{_lookup(GTAB + "+128")}        EX DE,HL                        ; DE = g(xa)
{_lookup("0", "rn_l2")}        OR A
        SBC HL,DE
        PUSH HL                         ; g(xa + ib') - g(xa)
{_lookup("0", "rn_l1")}        OR A
        SBC HL,DE
        PUSH HL                         ; g(xa + ia) - g(xa)
        LD A,(rn_x)
        LD C,A                          ; BC = xb' in offset form: xb
{_lookup(GTAB + "+128")}        EX DE,HL                        ; DE = g(xb')
{_lookup("0", "rn_l3")}        OR A
        SBC HL,DE
        PUSH HL                         ; g(xb' + ia) - g(xb')
{_lookup("0", "rn_l4")}        OR A
        SBC HL,DE
rn_kb:
        LD BC,0
        ADD HL,BC
        LD A,(rn_x)                     ; + 128*xb
        SRL A
        LD D,A
        LD A,0
        RRA
        LD E,A
        ADD HL,DE                       ; xb*ib (0..65025): its high byte
        LD E,H
        LD D,0
        POP HL
        ADD HL,DE
rn_ka:
        LD BC,0
        ADD HL,BC                       ; xb*ia + (xb*ib >> 8)
        EX DE,HL
        POP BC
        POP HL
        PUSH BC
rn_kc2:
        LD BC,0
        ADD HL,BC
        LD A,(rn_x+1)                   ; + 128*xa
        SRA A
        LD B,A
        LD A,0
        RRA
        LD C,A
        ADD HL,BC                       ; xa*ib
        LD A,H
        RLA
        SBC A,A
        ADD HL,DE
        ADC A,0                         ; A:HL = the sum, 17 bits
        ADD HL,HL
        RLA
        LD L,H
        LD H,A                          ; its >> 7
        POP BC
        EX DE,HL
rn_kc1:
        LD HL,0
        ADD HL,BC                       ; xa*ia
        ADD HL,HL
        ADD HL,DE                       ; t
        EX DE,HL                        ; t*g: |t| * |g| by the bits of |g|, then the sign
        LD HL,(rn_gp)
        LD A,(HL)
        INC HL
        LD (rn_gp),HL
        LD C,A
        XOR D
        LD (rn_sign),A                  ; bit 7: the product's sign
        BIT 7,D
        JR Z,rn_tpos
        XOR A
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A                          ; DE = |t| (up to 32768)
rn_tpos:
        LD A,C
        OR A
        JP P,rn_gpos
        NEG                             ; A = |g| (up to 128)
rn_gpos:
        LD HL,0
        LD C,L
{_bits_asm()}        LD A,(rn_sign)                  ; HL:DE = t*g, 32 bits
        EX DE,HL
        LD H,0
        LD L,C
        OR A
        JP P,rn_finj
        XOR A                           ; negate
        SUB E
        LD E,A
        LD A,0
        SBC A,D
        LD D,A
        LD A,0
        SBC A,L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
rn_finj:
        JP 0                            ; the finisher for this rmsnorm's shift
rn_store:                               ; y = DE
        LD HL,(rn_yp)
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        LD (rn_yp),HL
        LD HL,rn_n
        DEC (HL)
        JP NZ,rn_elem
        RET
rn_par: DEFS 11
rn_sum: DEFS 4
rn_p: DEFW 0
rn_gp: DEFW 0
rn_yp: DEFW 0
rn_x: DEFW 0
rn_n: DEFB 0
rn_sign: DEFB 0
"""


def _bits_asm() -> str:
    """C:HL += DE * A by A's eight bits, the top one first (C:HL starts at 0)."""
    out = []
    for bit in range(8):
        if bit:
            out.append("        ADD HL,HL\n        RL C\n")
        out.append(f"        ADD A,A\n        JR NC,rn_b{bit}\n        ADD HL,DE\n        JR NC,rn_b{bit}\n"
                   f"        INC C\nrn_b{bit}:\n")
    return "".join(out)


def finishers_asm(shifts) -> str:
    """A row finisher (ops/matvec.py) per gain shift, storing through rn_store."""
    return "".join(matvec.finisher_asm(s, "rn", "rn_store") for s in sorted(set(shifts)))
