"""argmax: the id in [lo, hi) whose int16 logit is largest, the lowest id on a tie.

        CALL op_argmax
        DEFW logits + 2*lo, hi - lo
        DEFB lo
        ; returns A = the id (also in STEP_NEXT when the step defines it)

All registers may change. Only a strictly larger logit replaces the best so far, which
makes the first (lowest) maximum win. Signed compare: flip both sign bits, compare unsigned.
"""
from __future__ import annotations


def call_asm(logits: str, lo: int, hi: int) -> str:
    first = f"{logits}+{2 * lo}" if lo else logits
    return f"        CALL op_argmax\n        DEFW {first},{hi - lo}\n        DEFB {lo}\n"


def routine_asm() -> str:
    return """
; ---- argmax (targets/z80/ops/argmax.py) ----
op_argmax:
        POP HL
        LD DE,am_par
        LD BC,5
        LDIR
        PUSH HL
        LD HL,(am_par)
        LD BC,(am_par+2)
        LD A,(am_par+4)
        LD (am_best),A
        LD (am_id),A
        LD E,(HL)
        INC HL
        LD A,(HL)
        INC HL
        XOR 128
        LD D,A                  ; DE = best so far, sign bit flipped
        DEC BC
am_loop:
        LD A,B
        OR C
        JR Z,am_done
        DEC BC
        LD A,(am_id)
        INC A
        LD (am_id),A
        PUSH BC
        LD C,(HL)
        INC HL
        LD A,(HL)
        INC HL
        XOR 128
        LD B,A                  ; BC = candidate, sign bit flipped
        PUSH HL
        LD H,D
        LD L,E
        OR A
        SBC HL,BC               ; carry: best < candidate
        JR NC,am_keep
        LD D,B
        LD E,C
        LD A,(am_id)
        LD (am_best),A
am_keep:
        POP HL
        POP BC
        JR am_loop
am_done:
        LD A,(am_best)
        RET
am_par: DEFS 5
am_best: DEFB 0
am_id: DEFB 0
"""
