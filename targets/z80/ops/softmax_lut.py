"""softmax_lut: per head, w[j] = table[min(last, max_j(s[j] >> shift) - (s[j] >> shift))]
for positions j = 0..STEP_POS; s is int32 [heads, context], w is u8 [heads, context].

        CALL op_softmax<k>
        DEFW scores, weights
        DEFW table + last + 1, -(last + 1)      ; last = the table's length - 1
        DEFB heads

The routine is generated per (shift, context); shift = 8q + r. Per head, two passes read the
scores with POP (interrupts are off in `step`; SP is restored before the return):

1. The maximum of the raw scores, 32-bit signed: the high word with its sign bit flipped
   compared by one SBC, the low word only on a tie. Since >> is monotone, max(s) >> shift is
   the maximum of the shifted scores.
2. Only bytes q..3 of a score matter. Let X be bytes q..3 of the maximum with the low r bits
   set, and Y bytes q..3 of s[j] (both signed, 8(4-q) bits). Then D = X - Y >= 0 (no borrow,
   so an unsigned difference in 4-q bytes) and D >> r = max(s) >> shift - s[j] >> shift: the
   low r bits of X absorb Y's. X is patched into the pass's immediates. D >> r is made by a
   few whole-byte moves and at most four bit shifts (right for r <= 4, left by 8 - r with
   the result one byte up for r >= 5); when it cannot fit 16 bits the position is "far".
   Then E + (-(last+1)) carries exactly when E > last (far: the weight table[last], read
   once per call), else adding table + last + 1 gives the entry's address.

The weights are written through HL' with the position count in B'. No temporary buffer.
On the seed's shift 14: about 80 T-states per position for the maximum, 200 for the weight.
All registers may change.
"""
from __future__ import annotations


def routine_name(index: int) -> str:
    return f"op_softmax{index}"


def call_asm(index: int, scores: str, table: str, weights: str, heads: int, table_len: int) -> str:
    last = table_len - 1
    return (f"        CALL {routine_name(index)}\n        DEFW {scores},{weights}\n"
            f"        DEFW {table}+{last + 1},{-(last + 1) & 0xFFFF}\n        DEFB {heads}\n")


def _max_pass(p: str, q: int) -> str:
    """Pass 1: DE = the maximum's high word (sign bit flipped), {p}_mlo its low word. B = count."""
    if q >= 2:                  # the low word does not matter: ties need no look
        return f"""        LD DE,0                         ; the maximum so far: -2^31, flipped
{p}_p1:
        POP HL
        POP HL                          ; the high word
        LD A,H
        XOR 128                         ; signed -> unsigned order (clears carry)
        LD H,A
        SBC HL,DE
        JR C,{p}_less
        ADD HL,DE
        EX DE,HL                        ; a new maximum
{p}_less:
        DJNZ {p}_p1
"""
    return f"""        LD DE,0                         ; the maximum so far: -2^31, flipped
        LD ({p}_mlo),DE
{p}_p1:
        POP IX                          ; the low word
        POP HL                          ; the high word
        LD A,H
        XOR 128                         ; signed -> unsigned order (clears carry)
        LD H,A
        SBC HL,DE
        JR C,{p}_less
        JR NZ,{p}_new
        LD ({p}_t),IX                   ; equal high words: a new maximum if the low word is above
        LD HL,({p}_t)
        LD A,({p}_mlo)
        SUB L
        LD A,({p}_mlo+1)
        SBC A,H
        JR NC,{p}_less
        JR {p}_lo
{p}_new:
        ADD HL,DE
        EX DE,HL
{p}_lo:
        LD ({p}_mlo),IX
{p}_less:
        DJNZ {p}_p1
"""


def _patch_x(p: str, q: int, r: int) -> str:
    """X (bytes q..3 of the maximum, low r bits set) into pass 2's immediates."""
    mask = (1 << r) - 1
    set_bits = f"        OR {mask}\n" if mask else ""
    if q == 3:
        return f"        LD A,D\n        XOR 128\n{set_bits}        LD ({p}_xa+1),A\n"
    code = "        LD A,D\n        XOR 128\n        LD D,A                          ; DE = bytes 2..3\n"
    if q == 2:
        if mask:
            code += f"        LD A,E\n{set_bits}        LD E,A\n"
        return code + f"        LD ({p}_xa+1),DE\n"
    code += f"        LD ({p}_xb+1),DE\n"
    if q == 1:
        return code + f"        LD A,({p}_mlo+1)\n{set_bits}        LD ({p}_xa+1),A\n"
    if mask:
        return code + (f"        LD HL,({p}_mlo)\n        LD A,L\n{set_bits}        LD L,A\n"
                       f"        LD ({p}_xa+1),HL\n")
    return code + f"        LD HL,({p}_mlo)\n        LD ({p}_xa+1),HL\n"


def _difference(p: str, q: int, r: int) -> str:
    """Pass 2, one position: HL = D >> r (D = X - Y), or a jump to {p}_far when it passes 16 bits."""
    far = f"{p}_far"
    if q == 0:                  # D = H:L:B:C
        code = f"""        POP DE                          ; s1:s0
{p}_xa: LD HL,0
        OR A
        SBC HL,DE
        LD B,H
        LD C,L
        POP DE                          ; s3:s2
{p}_xb: LD HL,0
        SBC HL,DE
        LD A,H
"""
        if r == 0:
            return code + f"        OR L\n        JR NZ,{far}\n        LD H,B\n        LD L,C\n"
        code += f"        OR A\n        JR NZ,{far}\n        LD A,L\n        CP {1 << r}\n        JR NC,{far}\n"
        if r <= 4:
            return code + "        SRL L\n        RR B\n        RR C\n" * r + "        LD H,B\n        LD L,C\n"
        return code + "        SLA C\n        RL B\n        RL L\n" * (8 - r) + "        LD H,L\n        LD L,B\n"
    if q == 1:                  # D = H:L:A
        code = f"""        POP BC                          ; B = s1
        POP DE                          ; s3:s2
{p}_xa: LD A,0
        SUB B
{p}_xb: LD HL,0
        SBC HL,DE
"""
        if r == 0:
            return code + f"        INC H\n        DEC H\n        JR NZ,{far}\n        LD H,L\n        LD L,A\n"
        if r >= 5:
            return code + f"        ADD A,A\n        ADC HL,HL\n        JR C,{far}\n" * (8 - r)
        code += f"        LD C,A\n        LD A,H\n        CP {1 << r}\n        JR NC,{far}\n"
        return code + "        SRL H\n        RR L\n        RR C\n" * r + "        LD H,L\n        LD L,C\n"
    if q == 2:                  # D = HL
        code = f"""        POP DE
        POP DE                          ; s3:s2
{p}_xa: LD HL,0
        OR A
        SBC HL,DE
"""
        if r <= 4:
            return code + "        SRL H\n        RR L\n" * r
        return code + "        XOR A\n" + "        ADD HL,HL\n        RLA\n" * (8 - r) + "        LD L,H\n        LD H,A\n"
    code = f"""        POP DE
        POP DE                          ; D = s3
{p}_xa: LD A,0
        SUB D
"""
    if r <= 3:
        code += "        SRL A\n" * r
    else:
        code += "        RLCA\n" * (8 - r) + f"        AND {0xFF >> r}\n"
    return code + "        LD L,A\n        LD H,0\n"


def routine_asm(index: int, shift: int, context: int) -> str:
    if not 0 <= shift <= 31:
        raise ValueError(f"shift {shift} is outside 0..31")
    p = f"sm{index}"
    q, r = divmod(shift, 8)
    return f"""
; ---- softmax_lut (targets/z80/ops/softmax_lut.py) ----
{routine_name(index)}:
        POP HL
        LD DE,{p}_par
        LD BC,9
        LDIR
        PUSH HL
        LD ({p}_sp),SP
        LD HL,({p}_par+4)               ; table + last + 1
        LD ({p}_tab+1),HL
        DEC HL
        LD A,(HL)
        LD ({p}_far+1),A                ; table[last]: the weight of a far position
        LD HL,({p}_par+6)               ; -(last + 1)
        LD ({p}_lim+1),HL
{p}_head:
        LD A,(STEP_POS)
        INC A
        LD B,A
        LD C,A
        LD SP,({p}_par)                 ; the head's scores, read by POP
{_max_pass(p, q)}{_patch_x(p, q, r)}        LD SP,({p}_par)
        LD A,C
        EXX
        LD B,A                          ; B' = positions, HL' = the weights
        LD HL,({p}_par+2)
        EXX
{p}_p2:
{_difference(p, q, r)}{p}_lim: LD DE,0                         ; -(last + 1): a carry when past last
        ADD HL,DE
        JR C,{p}_far
{p}_tab: LD DE,0                         ; table + last + 1
        ADD HL,DE
        LD A,(HL)
{p}_put:
        EXX
        LD (HL),A
        INC HL
        DEC B
        EXX
        JP NZ,{p}_p2
        JR {p}_next
{p}_far: LD A,0
        JR {p}_put
{p}_next:
        LD HL,({p}_par)                 ; the next head's rows
        LD DE,{4 * context}
        ADD HL,DE
        LD ({p}_par),HL
        LD HL,({p}_par+2)
        LD DE,{context}
        ADD HL,DE
        LD ({p}_par+2),HL
        LD HL,{p}_par+8
        DEC (HL)
        JP NZ,{p}_head
        LD SP,({p}_sp)
        RET
{p}_par: DEFS 9
{p}_sp: DEFW 0
{p}_mlo: DEFW 0
{p}_t: DEFW 0
"""
