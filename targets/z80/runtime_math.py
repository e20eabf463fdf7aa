"""Arithmetic shared by the Z80 op routines: the table of squares and helper subroutines.

The one table, SQ, holds w*w for w = 0..255 as 16-bit entries: low bytes in the page at
SQTAB, high bytes in the page after it, so a square is L = w, H = the page, two reads
(rmsnorm's sum of squares). The matrix products use the subset-sum tables of ops/subsets.py.

Helper subroutines (registers named are inputs; all others may be clobbered unless said):
  m_mul16s   signed HL * signed DE -> DE:HL (high word in DE), 32-bit.  Keeps IX, IY.
  m_mul16u   unsigned HL * unsigned DE -> DE:HL.                      Keeps IX, IY.
  m_mul8u    unsigned HL * unsigned E -> DE:HL in eight steps.         Keeps IX, IY.
  m_div32    unsigned DE:HL / BC -> DE:HL quotient, BC remainder (BC > 0).  Keeps IX, IY.
  m_div16q   unsigned DE:HL / BC -> HL quotient, DE remainder, when DE < BC (the quotient fits
             16 bits); 16 steps.  Keeps IX, IY.
  m_isqrt    floor(sqrt(DE:HL)) -> HL, for DE:HL < 2^30.  Keeps IX, IY.
  m_neg32    DE:HL = -DE:HL.
  m_sat32    HL = sat16(DE:HL).
  m_add32    (IX) += DE:HL, the 32-bit little-endian value at IX.  Keeps IX, IY.
The multiplies are shift-and-add (unrolled); they serve the per-element ops, not the matrix
products.
"""
from __future__ import annotations

SQTAB = "soul_sqtab"


def sqtable_values() -> list[int]:
    """SQ[w] = w*w for w = 0..255 (the largest, 65025, fits 16 bits)."""
    return [w * w for w in range(256)]


def defb_lines(values, per_line: int = 16) -> str:
    values = [v & 0xFF for v in values]
    return "".join("        DEFB " + ",".join(str(v) for v in values[i:i + per_line]) + "\n"
                   for i in range(0, len(values), per_line))


def sqtable_asm() -> str:
    """The squares table, page-aligned (2 pages: the low bytes of w*w, then the high bytes)."""
    values = sqtable_values()
    return ("        DEFS (256 - ($ & 255)) & 255   ; SQ must start on a page\n"
            f"{SQTAB}:\n"
            + defb_lines([v & 0xFF for v in values])
            + defb_lines([v >> 8 for v in values]))


def _mul16u_body(label: str) -> str:
    """DE:HL = HL * DE (unsigned): DE shifts out its bits as the high word shifts in.
    Entering at step k (label_s<k>, with BC = multiplicand, HL = 0 and the multiplier
    shifted left by k) takes 16 - k steps: a short multiplier costs less."""
    steps = []
    for i in range(16):
        steps.append(f"""{label}_s{i}:
        ADD HL,HL
        RL E
        RL D
        JR NC,{label}_{i}
        ADD HL,BC
        JR NC,{label}_{i}
        INC DE
{label}_{i}:
""")
    return f"""        LD B,H
        LD C,L
        LD HL,0
{''.join(steps)}        RET
"""


HELPERS = {
    "m_mul16s": r"""
m_mul16s:                       ; DE:HL = HL * DE, signed
        LD A,H
        XOR D
        PUSH AF                 ; sign of the product in bit 7
        BIT 7,H
        JR Z,m_mul16s_a
        XOR A
        SUB L
        LD L,A
        SBC A,A
        SUB H
        LD H,A
m_mul16s_a:
        BIT 7,D
        JR Z,m_mul16s_b
        XOR A
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A
m_mul16s_b:
        CALL m_mul16u
        POP AF
        RET P
        JP m_neg32
""",
    "m_neg32": r"""
m_neg32:                        ; DE:HL = -DE:HL
        XOR A
        SUB L
        LD L,A
        LD A,0
        SBC A,H
        LD H,A
        LD A,0
        SBC A,E
        LD E,A
        LD A,0
        SBC A,D
        LD D,A
        RET
""",
    "m_sat32": r"""
m_sat32:                        ; HL = sat16(DE:HL)
        LD A,H
        RLA
        SBC A,A                 ; the sign of the low word
        CP E
        JR NZ,m_sat32_out
        CP D
        RET Z
m_sat32_out:
        LD HL,32767
        BIT 7,D
        RET Z
        INC HL
        RET
""",
    "m_add32": r"""
m_add32:                        ; (IX..IX+3) += DE:HL
        LD A,(IX+0)
        ADD A,L
        LD (IX+0),A
        LD A,(IX+1)
        ADC A,H
        LD (IX+1),A
        LD A,(IX+2)
        ADC A,E
        LD (IX+2),A
        LD A,(IX+3)
        ADC A,D
        LD (IX+3),A
        RET
""",
    "m_mul8u": r"""
m_mul8u:                        ; DE:HL = HL * E, unsigned: the last eight steps
        LD D,E
        LD E,0
        LD B,H
        LD C,L
        LD HL,0
        JP m_mul16u_s8
""",
    "m_mul16u": r"""
m_mul16u:                       ; DE:HL = HL * DE, unsigned
""" + _mul16u_body("m_mul16u") + r"""""",
    "m_div32": r"""
m_div32:                        ; DE:HL = DE:HL / BC, BC = remainder (unsigned)
        PUSH BC
        EXX
        POP BC                  ; BC' = divisor
        LD HL,0                 ; HL' = remainder
        EXX
        LD A,32
m_div32_loop:
        ADD HL,HL               ; shift the dividend left, its top bit into the remainder
        RL E
        RL D
        EXX
        ADC HL,HL
        JR C,m_div32_big        ; 17 bits: certainly >= the divisor
        SBC HL,BC               ; (carry clear)
        JR NC,m_div32_one
        ADD HL,BC
        EXX
        DEC A
        JR NZ,m_div32_loop
        JR m_div32_done
m_div32_big:
        OR A
        SBC HL,BC
m_div32_one:
        EXX
        INC L                   ; the quotient bit (bit 0 is 0 after the shift)
        DEC A
        JR NZ,m_div32_loop
m_div32_done:
        EXX
        PUSH HL
        EXX
        POP BC
        RET
""",
    "m_div16q": r"""
m_div16q:                       ; HL = DE:HL / BC, DE = remainder, when DE < BC (unsigned)
        LD A,16
m_div16q_loop:
        ADD HL,HL               ; shift DE:HL left; quotient bits enter at bit 0 of HL
        EX DE,HL
        ADC HL,HL
        JR C,m_div16q_big       ; the remainder reached 17 bits: it exceeds BC
        SBC HL,BC               ; (carry is clear here)
        JR NC,m_div16q_one
        ADD HL,BC               ; undo
        EX DE,HL
        DEC A
        JR NZ,m_div16q_loop
        RET
m_div16q_big:
        OR A
        SBC HL,BC
m_div16q_one:
        EX DE,HL
        INC L
        DEC A
        JR NZ,m_div16q_loop
        RET
""",
    "m_isqrt": r"""
m_isqrt:                        ; HL = floor(sqrt(DE:HL)), DE:HL < 2^30
        LD (m_sq_n),HL
        LD (m_sq_n+2),DE
        LD HL,0
        LD (m_sq_r),HL
        LD (m_sq_r+2),HL
        LD (m_sq_b),HL
        LD HL,16384
        LD (m_sq_b+2),HL        ; bit = 2^30
m_isqrt_loop:
        LD HL,(m_sq_r)          ; t = root + bit
        LD DE,(m_sq_b)
        ADD HL,DE
        LD (m_sq_t),HL
        LD HL,(m_sq_r+2)
        LD DE,(m_sq_b+2)
        ADC HL,DE
        LD (m_sq_t+2),HL
        LD HL,(m_sq_n)          ; n - t
        LD DE,(m_sq_t)
        OR A
        SBC HL,DE
        EX DE,HL
        LD HL,(m_sq_n+2)
        LD A,(m_sq_t+2)
        LD C,A
        LD A,(m_sq_t+3)
        LD B,A
        SBC HL,BC
        JR C,m_isqrt_small
        LD (m_sq_n),DE          ; n -= t
        LD (m_sq_n+2),HL
        CALL m_isqrt_half       ; root >>= 1
        LD HL,(m_sq_r)          ; root += bit
        LD DE,(m_sq_b)
        ADD HL,DE
        LD (m_sq_r),HL
        LD HL,(m_sq_r+2)
        LD DE,(m_sq_b+2)
        ADC HL,DE
        LD (m_sq_r+2),HL
        JR m_isqrt_next
m_isqrt_small:
        CALL m_isqrt_half
m_isqrt_next:
        LD HL,(m_sq_b)          ; bit >>= 2
        LD DE,(m_sq_b+2)
        SRL D
        RR E
        RR H
        RR L
        SRL D
        RR E
        RR H
        RR L
        LD (m_sq_b),HL
        LD (m_sq_b+2),DE
        LD A,(m_sq_cnt)
        DEC A
        LD (m_sq_cnt),A
        JR NZ,m_isqrt_loop
        LD A,16
        LD (m_sq_cnt),A
        LD HL,(m_sq_r)
        RET
m_isqrt_half:                   ; root >>= 1
        LD HL,(m_sq_r)
        LD DE,(m_sq_r+2)
        SRL D
        RR E
        RR H
        RR L
        LD (m_sq_r),HL
        LD (m_sq_r+2),DE
        RET
m_sq_n: DEFS 4
m_sq_r: DEFS 4
m_sq_b: DEFS 4
m_sq_t: DEFS 4
m_sq_cnt: DEFB 16
""",
}

# what each helper calls
_DEPENDS = {"m_mul16s": {"m_mul16u", "m_neg32"}, "m_mul8u": {"m_mul16u"}}


def math_asm(needed=None) -> str:
    """The helper subroutines (assembly text): those in `needed` and what they call, or all."""
    names = set(HELPERS) if needed is None else set(needed)
    for name in list(names):
        names |= _DEPENDS.get(name, set())
    text = "".join(HELPERS[name] for name in HELPERS if name in names)
    return "\n; ---- shared arithmetic (targets/z80/runtime_math.py) ----" + text if text else ""
