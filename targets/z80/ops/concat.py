"""concat: y = a then b, for int16 vectors of na and nb elements (the halves of a matvec
split by rows). Inline code, two block copies (19 bytes, 21 T-states per byte copied):

        LD HL,a / LD DE,y / LD BC,2*na / LDIR / LD HL,b / LD BC,2*nb / LDIR

The first LDIR leaves DE just past y's first part. A, BC, DE, HL change.
"""
from __future__ import annotations


def call_asm(a: str, b: str, y: str, na: int, nb: int) -> str:
    return (f"        LD HL,{a}\n        LD DE,{y}\n        LD BC,{2 * na}\n        LDIR\n"
            f"        LD HL,{b}\n        LD BC,{2 * nb}\n        LDIR\n")
