"""argmax: the id in [lo, hi) whose int16 logit is largest, the lowest id on a tie.

        LD HL,logits + 2*lo
        LD BC,n * 257                   ; B = C = n mod 256, n = hi - lo (1..256)
        CALL op_argmax
        LD A,lo + n                     ; (mod 256)
        SUB C                           ; A = the id

All registers may change. The logits are read with POP (interrupts are off in the step); B
counts down and C keeps B's value at the best so far, so the id is lo + n - C. The best
starts as -32768 at the first logit, and only a strictly larger logit replaces it, which makes
the first (lowest) maximum win. The best is kept in DE with its sign bit flipped, so the high
bytes compare unsigned (a candidate's is flipped by XOR); only on equal high bytes are the low
bytes compared. About 45 T-states per logit that is not a new best.
"""
from __future__ import annotations


def call_asm(logits: str, lo: int, hi: int) -> str:
    n = hi - lo
    if not (0 <= lo < hi <= 256):
        raise ValueError(f"argmax over [{lo}, {hi}): the Z80 routine takes ids 0..255")
    first = f"{logits}+{2 * lo}" if lo else logits
    return (f"        LD HL,{first}\n        LD BC,{(n % 256) * 257}\n        CALL op_argmax\n"
            f"        LD A,{(lo + n) % 256}\n        SUB C\n")


def routine_asm() -> str:
    return """
; ---- argmax (targets/z80/ops/argmax.py) ----
op_argmax:
        LD (am_sp),SP
        LD SP,HL                ; SP walks the logits
        LD DE,0                 ; -32768, sign bit flipped
am_loop:
        POP HL
        LD A,H
        XOR 128
        CP D
        JR NC,am_ge             ; high byte >= the best's
am_next:
        DJNZ am_loop
am_end:
        LD SP,(am_sp)
        RET
am_ge:
        JR NZ,am_new            ; larger
        LD A,E
        CP L
        JR NC,am_next           ; low byte not larger: keep the first
        LD A,D
am_new:
        LD D,A
        LD E,L
        LD C,B
        DJNZ am_loop
        JR am_end
am_sp:  DEFW 0
"""
