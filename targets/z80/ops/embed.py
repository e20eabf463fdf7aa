"""embed: h[i] = sat16(deshift(te[tok, i]) + deshift(pe[pos, i])), deshift(v) = v << (8 - s).

        LD DE,te + width - 1
        LD HL,pe + width - 1
        LD IX,h + 2*width
        CALL op_embed<k>

The token and position come from STEP_TOKEN and STEP_POS. The routine is generated for one
(width, token shift, position shift), width 1..256 and shifts -8..24: the row addresses come
from a multiply by the width in straight-line code, and the shifts become straight-line code.
The rows are read from their last byte down with DE and HL (the main registers), the terms
are built in the alternate ones, and h is written by PUSH with SP walking down from its end
(interrupts are off in the step); B counts. deshift(v) is v << k, k = 8 - s, for k >= 0 and
the flooring v >> -k for k < 0 (SRA; past 7 only the sign is left). Three forms:
- both shifts 1..8 and equal: (te + pe) << k, the 9-bit sum from the sign-flipped bytes' sum
  (its carry is the high byte plus 1); no sum can leave 16 bits;
- both shifts >= 1: 16-bit terms, |term| <= 2^14, so the sum needs no saturation; when both
  k >= 0 the common left shift m = min(k_t, k_p) is done once, after the sum;
- a shift <= 0: 24-bit terms in C:HL, a 24-bit sum whose signed overflow (P/V) saturates
  towards the operands' sign, else the sum saturates when it leaves 16 bits.
All registers may change (the alternate ones too).
"""
from __future__ import annotations

NEEDS: set[str] = set()       # no shared arithmetic (runtime_math.py): the multiply is its own
MIN_SHIFT, MAX_SHIFT = -8, 24       # a term of at most 24 bits; past 15 a term is only the sign


def routine_name(index: int) -> str:
    return f"op_embed{index}"


def call_asm(index: int, te: str, pe: str, y: str, width: int | None = None) -> str:
    w = f"{width}" if width is not None else f"emb{index}_w"
    return (f"        LD DE,{te}+{w}-1\n        LD HL,{pe}+{w}-1\n        LD IX,{y}+2*{w}\n"
            f"        CALL {routine_name(index)}\n")


def _check(shift: int) -> None:
    if not MIN_SHIFT <= shift <= MAX_SHIFT:
        raise ValueError(f"embedding shift {shift} is out of range for the Z80 embed ({MIN_SHIFT}..{MAX_SHIFT})")


def _term16(k: int) -> str:
    """A = an int8 v -> HL = v << k (0 <= k <= 7) or v >> -k (k < 0), the cheaper way."""
    if k < 0:
        out = "        SRA A\n" * min(-k, 7)
        return out + "        LD L,A\n        ADD A,A\n        SBC A,A\n        LD H,A\n"
    if k >= 5:                          # (v << 8) >> (8 - k): 11 + 16 (8 - k) T-states
        return "        LD H,A\n        LD L,0\n" + "        SRA H\n        RR L\n" * (8 - k)
    return "        LD L,A\n        ADD A,A\n        SBC A,A\n        LD H,A\n" + "        ADD HL,HL\n" * k


def _term24(k: int) -> str:
    """A = an int8 v -> C:HL = v << k (k <= 16) or v >> -k, 24 bits."""
    if k >= 8:
        return ("        LD H,A\n        ADD A,A\n        SBC A,A\n        LD C,A\n        LD L,0\n"
                + "        ADD HL,HL\n        RL C\n" * (k - 8))
    out = "        SRA A\n" * min(-k, 7)
    out += "        LD L,A\n        ADD A,A\n        SBC A,A\n        LD H,A\n        LD C,A\n"
    return out + "        ADD HL,HL\n        RL C\n" * max(k, 0)


def _body(p: str, tok_shift: int, pos_shift: int) -> str:
    """The loop body from the P set (DE = te, HL = pe) to PUSH HL = h[i], ending in the P set."""
    kt, kp = 8 - tok_shift, 8 - pos_shift
    if tok_shift == pos_shift and 1 <= tok_shift <= 8:
        return ("        LD A,(DE)\n        XOR 128\n        LD C,A\n        LD A,(HL)\n        XOR 128\n"
                "        ADD A,C                 ; carry:A = te + pe + 256\n"
                "        DEC DE\n        DEC HL\n        EXX\n"
                "        LD L,A\n        SBC A,A\n        CPL\n        LD H,A          ; HL = te + pe\n"
                + "        ADD HL,HL\n" * kt + "        PUSH HL\n        EXX\n")
    fetch_te = "        LD A,(DE)\n        DEC DE\n        EXX\n"
    fetch_pe = "        EXX\n        LD A,(HL)\n        DEC HL\n        EXX\n"
    if tok_shift >= 1 and pos_shift >= 1:
        m = min(kt, kp) if kt >= 0 and kp >= 0 else 0
        return (fetch_te + _term16(kt - m) + "        EX DE,HL\n" + fetch_pe + _term16(kp - m)
                + "        ADD HL,DE\n" + "        ADD HL,HL\n" * m + "        PUSH HL\n        EXX\n")
    return (fetch_te + _term24(kt) + "        LD B,C\n        EX DE,HL\n" + fetch_pe + _term24(kp) +
            f"""        ADD HL,DE
        LD A,C
        ADC A,B
        JP PE,{p}_sat           ; past 24 bits: B is the operands' sign
        LD B,A
        LD A,H
        RLA
        SBC A,A
        CP B
        JR Z,{p}_fits           ; bits 16..23 are the sign of bit 15: it fits
{p}_sat:
        LD HL,32767
        BIT 7,B
        JR Z,{p}_fits
        INC HL
{p}_fits:
        PUSH HL
        EXX
""")


def _row(width: int) -> str:
    """HL = A * width, A unsigned (uses BC)."""
    bits = bin(width)[2:]
    out = "        LD L,A\n        LD H,0\n"
    if bits.count("1") > 1:
        out += "        LD B,H\n        LD C,L\n"
    for bit in bits[1:]:
        out += "        ADD HL,HL\n" + ("        ADD HL,BC\n" if bit == "1" else "")
    return out + "        RET\n"


def routine_asm(index: int, width: int, tok_shift: int, pos_shift: int) -> str:
    _check(tok_shift)
    _check(pos_shift)
    if not 1 <= width <= 256:
        raise ValueError(f"embedding width {width}: the Z80 embed takes 1..256")
    name = routine_name(index)
    p = f"emb{index}"
    body = _body(p, tok_shift, pos_shift)
    wide = tok_shift <= 0 or pos_shift <= 0       # the 24-bit form: its body is past DJNZ's reach
    loop_end = f"        DEC B\n        JP NZ,{p}_loop\n" if wide else f"        DJNZ {p}_loop\n"
    return f"""
; ---- embed (targets/z80/ops/embed.py) ----
{p}_w   EQU {width}
{name}:
        LD ({p}_sp),SP
        PUSH HL                 ; pe + width - 1
        LD A,(STEP_TOKEN)
        CALL {p}_row
        ADD HL,DE
        EX (SP),HL              ; the token's row end on the stack
        EX DE,HL
        LD A,(STEP_POS)
        CALL {p}_row
        ADD HL,DE               ; HL = the position's row end
        POP DE                  ; DE = the token's row end
        LD SP,IX                ; SP walks h down
        LD B,{width % 256}
{p}_loop:
{body}{loop_end}        LD SP,({p}_sp)
        RET
{p}_row:                        ; HL = A * {width}
{_row(width)}{p}_sp: DEFW 0
"""
