"""embed: h[i] = sat16(deshift(te[tok, i]) + deshift(pe[pos, i])), deshift(v) = v << (8 - s).

        CALL op_embed<k>
        DEFW te, pe, h

The token and position come from STEP_TOKEN and STEP_POS. The routine is generated for one
(width, token shift, position shift): the shifts become straight-line code. Each term is
built as a 24-bit value in C:HL (a right shift of more than 7 leaves only the sign), the two
are added and the sum saturated. All registers may change.
"""
from __future__ import annotations

NEEDS = {"m_mul16u"}      # shared arithmetic it calls (runtime_math.py)


def routine_name(index: int) -> str:
    return f"op_embed{index}"


def call_asm(index: int, te: str, pe: str, y: str) -> str:
    return f"        CALL {routine_name(index)}\n        DEFW {te},{pe},{y}\n"


def _term(shift: int) -> str:
    """A = an int8 -> C:HL = A << (8 - shift), or A >> (shift - 8), in 24 bits."""
    if shift > 24:
        raise ValueError(f"embedding shift {shift} is out of range")
    if shift - 8 > 24 or 8 - shift > 16:
        raise ValueError(f"embedding shift {shift} is out of range for the Z80 embed (24 bits)")
    out = []
    if shift > 8:
        out += ["        SRA A\n"] * min(shift - 8, 7)
    out.append("        LD L,A\n        ADD A,A\n        SBC A,A\n        LD H,A\n        LD C,A\n")
    if shift < 8:
        out += ["        ADD HL,HL\n        RL C\n"] * (8 - shift)
    return "".join(out)


def routine_asm(index: int, width: int, tok_shift: int, pos_shift: int) -> str:
    name = routine_name(index)
    p = f"emb{index}"
    return f"""
; ---- embed (targets/z80/ops/embed.py) ----
{name}:
        POP HL
        LD DE,{p}_par
        LD BC,6
        LDIR
        PUSH HL
        LD A,(STEP_TOKEN)
        LD L,A
        LD H,0
        LD DE,{width}
        CALL m_mul16u
        LD DE,({p}_par)
        ADD HL,DE
        LD ({p}_t),HL
        LD A,(STEP_POS)
        LD L,A
        LD H,0
        LD DE,{width}
        CALL m_mul16u
        LD DE,({p}_par+2)
        ADD HL,DE
        LD ({p}_p),HL
        LD HL,{width}
        LD ({p}_n),HL
{p}_loop:
        LD HL,({p}_t)
        LD A,(HL)
        INC HL
        LD ({p}_t),HL
{_term(tok_shift)}        LD ({p}_a),HL
        LD A,C
        LD ({p}_a+2),A
        LD HL,({p}_p)
        LD A,(HL)
        INC HL
        LD ({p}_p),HL
{_term(pos_shift)}        LD DE,({p}_a)
        ADD HL,DE
        LD A,({p}_a+2)
        ADC A,C
        LD C,A
        LD A,H
        RLA
        SBC A,A
        CP C
        JR Z,{p}_fits
        LD HL,32767
        BIT 7,C
        JR Z,{p}_fits
        INC HL
{p}_fits:
        EX DE,HL
        LD HL,({p}_par+4)
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        LD ({p}_par+4),HL
        LD HL,({p}_n)
        DEC HL
        LD ({p}_n),HL
        LD A,H
        OR L
        JP NZ,{p}_loop                  ; the body grows with the shifts: past a JR's reach
        RET
{p}_par: DEFS 6
{p}_t: DEFW 0
{p}_p: DEFW 0
{p}_n: DEFW 0
{p}_a: DEFS 3
"""
