"""Straight-line arithmetic right shifts of a 32-bit value held in H:L:D:E (high to low).

A shift by 8q + r moves whole bytes (free at generation time) and shifts r bits; for r >= 5
it is cheaper to shift 8 - r bits left into a fifth byte (B) and move one byte further.
"""
from __future__ import annotations

REGS = ("E", "D", "L", "H")


def shifted_bytes(shift: int) -> tuple[list[str], list[str]]:
    """Code for the bit shifts, and the registers holding the result's bytes from the lowest
    (fewer than four: the rest are copies of the sign)."""
    q, r = divmod(shift, 8)
    regs = list(REGS)
    if r <= 4:
        code = ["        SRA H\n        RR L\n        RR D\n        RR E\n"] * r
        offset = q
    else:
        code = ["        LD A,H\n        RLA\n        SBC A,A\n        LD B,A\n"]
        code += ["        SLA E\n        RL D\n        RL L\n        RL H\n        RL B\n"] * (8 - r)
        regs.append("B")
        offset = q + 1
    return code, regs[offset:]


def sar32_asm(shift: int) -> str:
    """H:L:D:E >>= shift (arithmetic, 0 <= shift <= 31), result again in H:L:D:E."""
    if not 0 <= shift <= 31:
        raise ValueError(f"shift {shift} is outside 0..31")
    code, value = shifted_bytes(shift)
    if value == list(REGS):
        return "".join(code)
    top = "B" if shift % 8 > 4 else "H"
    out = code + [f"        LD A,{top}\n        RLA\n        SBC A,A\n"]     # A = the sign byte
    for dest, src in zip(REGS, value + ["A"] * (4 - len(value))):
        if dest != src:
            out.append(f"        LD {dest},{src}\n")
    return "".join(out)
