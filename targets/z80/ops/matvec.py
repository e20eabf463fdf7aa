"""matvec: y = sat16((W x + b) >> shift) for int8 W [rows, cols], Q8.8 int16 x, int16 b.

Calling convention (the same for every op routine: a CALL followed by an inline parameter
block, which the routine skips on return; all registers, the alternate set included, are
clobbered; interrupts must be off because the weights are read with POP):

        CALL op_matvec
        DEFW weights        ; the stream made by encode_weights()
        DEFW x - 2*pad      ; pad = padded_cols - cols (zero to three leading dummy columns)
        DEFW y
        DEFW rows
        DEFB chunks, last_width
        DEFW mv_fin_<shift> ; the row finisher for this matvec's total shift
        DEFW mv_k32 | mv_k16 ; how the stream holds the row constants (see below)
        DEFB same_x         ; 1: x and the column layout are those of the previous call

The trick. With g(s) = s(s+1)/2 (the table G, see runtime_math.py), a*b = g(a+b) - g(a) - g(b).
Split x + 128 = 256*(a + 128) + (b + 128), i.e. x = 256*a + b with b = -128..127 and
a = -128..128, both signed, and store each weight w as u = w + 128. Then

    acc = sum w*x + bias = 256*SumH + SumL - 257*Sg + bias - R
    SumH = sum_i G[u_i + A_i]       A = a + 128 = ((x + 32768 + 128) >> 8), 0..256
    SumL = sum_i G[u_i + B_i]       B = b + 128 = the low byte of x, top bit flipped
    Sg = sum_i g(w_i)               (from the weights alone: stored per row)
    R = sum_i 256*g(a_i) + g(b_i)   (from x alone: once per call)

so a multiply-accumulate is two table lookups and two 16-bit adds. Before the rows, the
routine writes A and B straight into the immediate operands of an unrolled loop
(self-modifying code), where `LD HL,GTAB+A` / `ADD HL,BC` (BC = u) forms the 9-bit index.
The weights are popped two at a time from the stream. SumH and SumL are 16-bit (IX, IY) with
their carries counted out of line (B' and A'), 24 bits in all, which holds any row of up to
255 columns exactly; the 32-bit row sum is then exact (|acc| < 2^31 for 255 columns). R is
computed by running the same loop once over a virtual row of weights u = 128 (w = 0),
which yields exactly 256*SumH + SumL = R.

Columns are padded to a multiple of four (a block of the unrolled loop); dummy columns have
w = 0 and read whatever lies before x: their lookups equal their share of R, so they cancel.
A matrix wider than the unrolled loop is done in chunks of `unroll` columns, the row sums
parked between chunks (32 bits per row in mv_part, reloaded as IY = low word, IX = 256 * byte 2,
B' = byte 3).

Stream layout (encode_weights): for each chunk, for each row, that chunk's u bytes; after
each row of the last chunk its constant: Sg as 16 bits (mv_k16, when there is no bias and
every row's Sg fits), otherwise bias - 257*Sg as 32 bits (mv_k32), little-endian.
"""
from __future__ import annotations

NEEDS = {"m_neg32"}      # shared arithmetic it calls (runtime_math.py)

from dataclasses import dataclass

import numpy as np

from soulc.targets.z80.runtime_math import GTAB, g

BLOCK_COLS = 4
# Byte offsets inside one unrolled block of four columns (see _block): the immediate bytes
# written by the patch loop, and the block's size.
_H_PATCH = (5, 30, 58, 83)         # (and the byte after: the page, A may be 256)
_L_PATCH = (17, 42, 70, 95)
BLOCK_SIZE = 149
PARAM_SIZE = 15


@dataclass(frozen=True)
class MatvecPlan:
    rows: int
    cols: int
    padded: int                 # columns rounded up to a block
    widths: tuple[int, ...]     # padded columns per chunk

    @property
    def pad(self) -> int:
        return self.padded - self.cols


def plan(rows: int, cols: int, unroll: int) -> MatvecPlan:
    if unroll % BLOCK_COLS or unroll <= 0:
        raise ValueError(f"unroll {unroll} is not a positive multiple of {BLOCK_COLS}")
    if cols > 255:
        raise ValueError(f"{cols} columns: the Z80 matvec counts carries in 8 bits (at most 255)")
    padded = -(-cols // BLOCK_COLS) * BLOCK_COLS
    widths = []
    left = padded
    while left > unroll:
        widths.append(unroll)
        left -= unroll
    widths.append(left)
    return MatvecPlan(rows, cols, padded, tuple(widths))


def half_square_sums(weight: np.ndarray) -> np.ndarray:
    w = weight.astype(np.int64)
    return (w * (w + 1) // 2).sum(axis=1)


def narrow_constants(weight: np.ndarray, bias: np.ndarray | None) -> bool:
    """Can the rows' constants be the 16-bit Sg (no bias, and 257 * Sg fits the 24-bit sum)?"""
    return bias is None and 257 * int(half_square_sums(weight).max(initial=0)) < 2**24


def row_constants(weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    k = -257 * half_square_sums(weight)
    if bias is not None:
        k = k + bias.astype(np.int64)
    return k


def encode_weights(weight: np.ndarray, bias: np.ndarray | None, unroll: int) -> bytes:
    """The byte stream op_matvec reads for this matrix (see the module docstring)."""
    rows, cols = weight.shape
    p = plan(rows, cols, unroll)
    u = np.full((rows, p.padded), 128, dtype=np.uint8)
    u[:, p.pad:] = (weight.astype(np.int16) + 128).astype(np.uint8)
    if narrow_constants(weight, bias):
        k_bytes = half_square_sums(weight).astype("<u2").view(np.uint8).reshape(rows, 2)
    else:
        k = row_constants(weight, bias)
        if np.abs(k).max(initial=0) >= 2**31:
            raise ValueError("row constant does not fit 32 bits")
        k_bytes = (k & 0xFFFFFFFF).astype("<u4").view(np.uint8).reshape(rows, 4)
    parts = []
    start = 0
    for index, width in enumerate(p.widths):
        chunk = u[:, start:start + width]
        if index == len(p.widths) - 1:
            chunk = np.concatenate([chunk, k_bytes], axis=1)
        parts.append(chunk.tobytes())
        start += width
    return b"".join(parts)


def encoded_size(weight: np.ndarray, bias: np.ndarray | None, unroll: int) -> int:
    rows, cols = weight.shape
    return rows * (plan(rows, cols, unroll).padded + (2 if narrow_constants(weight, bias) else 4))


def finisher_label(shift: int) -> str:
    return f"mv_fin_{shift}" if shift >= 0 else f"mv_fin_m{-shift}"


def call_asm(weights: str, x: str, y: str, rows: int, cols: int, shift: int, unroll: int,
             narrow: bool, same_x: bool = False) -> str:
    """same_x: the previous op_matvec call had the same x and columns, in one chunk (the
    patched loop and R are still valid)."""
    p = plan(rows, cols, unroll)
    if same_x and len(p.widths) > 1:
        raise ValueError("same_x needs a matrix that fits the unrolled loop")
    x_arg = f"{x}-{2 * p.pad}" if p.pad else x
    return (f"        CALL op_matvec\n"
            f"        DEFW {weights},{x_arg},{y},{rows}\n"
            f"        DEFB {len(p.widths)},{p.widths[-1]}\n"
            f"        DEFW {finisher_label(shift)},{'mv_k16' if narrow else 'mv_k32'}\n"
            f"        DEFB {int(same_x)}\n")


def _product(k: int, col: int, half: str) -> str:
    acc = "IX" if half == "h" else "IY"
    return (f"mvp{k}{half}{col}:\n"
            f"        LD HL,{GTAB}\n"
            f"        ADD HL,BC\n"
            f"        LD E,(HL)\n"
            f"        INC H\n"
            f"        INC H\n"
            f"        LD D,(HL)\n"
            f"        ADD {acc},DE\n"
            f"        JR C,mvc{k}{half}{col}\n"
            f"mvr{k}{half}{col}:\n")


def _block(k: int, last: bool) -> str:
    """Four columns: two weight pairs, eight lookups; then the carry handlers."""
    text = [f"mvb{k}:\n"]
    for unit in range(2):
        c0, c1 = 2 * unit, 2 * unit + 1
        text.append("        POP BC\n        LD A,B\n        LD B,0\n")
        text.append(_product(k, c0, "h") + _product(k, c0, "l"))
        text.append("        LD C,A\n")
        text.append(_product(k, c1, "h") + _product(k, c1, "l"))
    text.append(f"mv_end:\n        JP mv_k32\n" if last else f"        JP mvb{k + 1}\n")
    for col in range(4):
        text.append(f"mvc{k}h{col}:\n        EXX\n        INC B\n        EXX\n        JR mvr{k}h{col}\n")
        text.append(f"mvc{k}l{col}:\n        EX AF,AF'\n        INC A\n        EX AF,AF'\n        JR mvr{k}l{col}\n")
    return "".join(text)


def _store_result() -> str:
    """y (DE) to the output (D'E'), one row fewer to do (H'L')."""
    return ("mv_store:\n"
            "        LD A,E\n        EXX\n        LD (DE),A\n        INC DE\n        EXX\n"
            "        LD A,D\n        EXX\n        LD (DE),A\n        INC DE\n"
            "mv_rowdone_x:\n"
            "        DEC HL\n        LD A,H\n        OR L\n        EXX\n"
            "mv_next:\n        JP NZ,mv_zero\n        JP mv_chunk_end\n")


def finisher_asm(shift: int) -> str:
    """From the row sum in HL:DE (high:low), y = sat16(sum >> shift) to mv_store.

    A right shift by 8q+r moves whole bytes for free and r bits one at a time; for r >= 5 it
    is cheaper to shift left by 8-r into a fifth byte (B) and drop one more byte.
    A negative shift is a left shift: the sum must lie within 16-bit bounds scaled down.
    """
    lab = finisher_label(shift)
    out = [f"{lab}:\n"]
    regs = ["E", "D", "L", "H"]
    if shift >= 0:
        q, r = divmod(shift, 8)
        if r <= 4:
            out += ["        SRA H\n        RR L\n        RR D\n        RR E\n"] * r
            offset = q
        else:
            out.append("        LD A,H\n        RLA\n        SBC A,A\n        LD B,A\n")
            out += ["        SLA E\n        RL D\n        RL L\n        RL H\n        RL B\n"] * (8 - r)
            regs.append("B")
            offset = q + 1
        top = regs[-1]
        value = regs[offset:]
        if not value:
            out.append(f"        LD A,{top}\n        RLA\n        SBC A,A\n        LD E,A\n        LD D,A\n"
                       "        JP mv_store\n")
        elif len(value) == 1:
            out.append(f"        LD A,{value[0]}\n        LD E,A\n        RLA\n        SBC A,A\n        LD D,A\n"
                       "        JP mv_store\n")
        else:
            lo, hi, above = value[0], value[1], value[2:]
            if above:
                out.append(f"        LD A,{hi}\n        RLA\n        SBC A,A\n")
                for reg in above:
                    out.append(f"        CP {reg}\n        JR NZ,{lab}_sat\n")
            if lo != "E":
                out.append(f"        LD E,{lo}\n")
            if hi != "D":
                out.append(f"        LD D,{hi}\n")
            out.append("        JP mv_store\n")
            if above:
                out.append(f"{lab}_sat:\n        LD A,{top}\n        RLA\n        LD DE,32767\n"
                           "        JP NC,mv_store\n        INC DE\n        JP mv_store\n")
        return "".join(out)
    n = -shift
    hi_bound = 32767 >> n
    lo_bound = -(32768 >> n)
    out.append(f"        LD A,D\n        RLA\n        SBC A,A\n        CP L\n        JR NZ,{lab}_sat\n"
               f"        CP H\n        JR NZ,{lab}_sat\n")
    # signed 16-bit compare as unsigned with the sign bit flipped
    out.append(f"        LD A,D\n        XOR 128\n        LD D,A\n"
               f"        LD HL,{(hi_bound ^ 0x8000) & 0xFFFF}\n        OR A\n        SBC HL,DE\n"
               f"        JR C,{lab}_pos\n"
               f"        LD HL,{(lo_bound ^ 0x8000) & 0xFFFF}\n        SCF\n        SBC HL,DE\n"
               f"        JR NC,{lab}_neg\n"
               f"        LD A,D\n        XOR 128\n        LD D,A\n        EX DE,HL\n")
    out += ["        ADD HL,HL\n"] * min(n, 16)
    out.append(f"        EX DE,HL\n        JP mv_store\n"
               f"{lab}_pos:\n        LD DE,32767\n        JP mv_store\n"
               f"{lab}_neg:\n        LD DE,32768\n        JP mv_store\n"
               f"{lab}_sat:\n        LD A,H\n        RLA\n        JR C,{lab}_neg\n        JR {lab}_pos\n")
    return "".join(out)


def kernel_asm(unroll: int, shifts, part_rows: int = 0) -> str:
    """The shared op_matvec routine for an unrolled width of `unroll` columns, with a row
    finisher for each total shift in `shifts`; `part_rows` rows of parking space for
    matrices wider than `unroll`."""
    plan(1, 1, unroll)
    blocks = unroll // BLOCK_COLS
    body = "".join(_block(k, k == blocks - 1) for k in range(blocks))
    patch = []
    for col in range(4):
        patch.append(f"""        LD C,(HL)
        INC HL
        LD A,(HL)
        INC HL
        XOR 128
        LD B,A                          ; BC = x + 32768
        LD A,C
        ADD A,128
        LD (IX+{_L_PATCH[col]}),A             ; B, and the carry into A
        LD A,B
        ADC A,0
        LD (IX+{_H_PATCH[col]}),A             ; A = (x + 32768 + 128) >> 8, 0..256
        LD A,{GTAB} >> 8
        ADC A,0
        LD (IX+{_H_PATCH[col] + 1}),A
""")
    finishers = "".join(finisher_asm(s) for s in sorted(set(shifts)))
    return f"""
; ---- matvec (targets/z80/ops/matvec.py) ----
op_matvec:
        POP HL
        LD DE,mv_par
        LD BC,{PARAM_SIZE}
        LDIR
        PUSH HL
        LD (mv_sp),SP
        LD HL,(mv_par+10)
        LD (mv_finj+1),HL
        LD HL,(mv_par)
        LD (mv_wp),HL
        LD A,(mv_par+8)
        LD (mv_left),A
        LD A,(mv_par+14)
        OR A
        JR Z,mv_fresh
        LD HL,mv_zero                   ; same x: loop, entry and -R are still set
        LD (mv_init+1),HL
        LD (mv_next+1),HL
        JP mv_last
mv_fresh:
        LD HL,0
        LD (mv_r),HL
        LD (mv_r+2),HL
        LD HL,(mv_par+2)
        LD (mv_xp),HL
        LD A,(mv_par+8)
        DEC A
        LD HL,mv_zero
        JR Z,mv_single
        LD HL,mv_zerop
mv_single:
        LD (mv_init+1),HL
        LD (mv_next+1),HL
mv_chunk:
        LD A,(mv_left)
        DEC A
        LD A,{unroll}
        JR NZ,mv_width
        LD A,(mv_par+9)
mv_width:
        LD HL,mv_virt_done
        LD (mv_vret+1),HL
        LD HL,mv_radd
        LD (mv_rret+1),HL
mv_prep:                                ; A = width, (mv_xp) = x: patch, then R (see mv_vret)
        LD B,A
        LD A,{unroll}
        SUB B
        RRCA
        RRCA                            ; blocks to skip
        LD IX,mvb0
        LD DE,{BLOCK_SIZE}
        OR A
        JR Z,mv_entry_found
mv_skip:
        ADD IX,DE
        DEC A
        JR NZ,mv_skip
mv_entry_found:
        LD (mv_go+1),IX
        SRL B
        SRL B                           ; blocks to patch
        LD HL,(mv_xp)
mv_patch:                               ; write B and A of four columns into a block
        PUSH BC
{''.join(patch)}        POP BC
        LD DE,{BLOCK_SIZE}
        ADD IX,DE
        DJNZ mv_patch
        LD (mv_xp),HL
        LD HL,mv_raw                    ; the virtual row u = 128 gives R
        LD (mv_end+1),HL
        LD SP,mv_ones
        JP mv_zero
mv_virt_done:
        LD SP,(mv_sp)
        LD A,(mv_left)
        DEC A
        JR NZ,mv_rows
        LD HL,(mv_r)                    ; last chunk: the row constants' readers add -R
        LD DE,(mv_r+2)
        CALL m_neg32
        LD (mv_nrlo+1),HL
        LD (mv_n16lo+1),HL
        LD (mv_nrhi+1),DE
        LD (mv_n16hi+1),DE
mv_last:
        LD HL,(mv_par+12)
        LD (mv_end+1),HL
        JR mv_rows_go
mv_rows:
        LD HL,mv_raw
        LD (mv_end+1),HL
        LD HL,mv_park
        LD (mv_rret+1),HL
mv_rows_go:
        LD HL,mv_part
        LD (mv_pp),HL
        EXX
        LD HL,(mv_par+6)                ; H'L' = rows to do
        LD DE,(mv_par+4)                ; D'E' = where y goes
        EXX
        LD SP,(mv_wp)
mv_init:
        JP mv_zero
mv_chunk_end:
        LD (mv_wp),SP
        LD SP,(mv_sp)
        LD HL,mv_load
        LD (mv_init+1),HL
        LD (mv_next+1),HL
        LD HL,mv_left
        DEC (HL)
        JP NZ,mv_chunk
        RET

mv_zerop:                               ; zero, and move on to this row's parking place
        LD HL,(mv_pp)
        LD DE,4
        ADD HL,DE
        LD (mv_pp),HL
mv_zero:                                ; start a row from zero
        LD IX,0
        LD IY,0
        EXX
        LD B,0
        EXX
        EX AF,AF'
        XOR A
        EX AF,AF'
mv_go:
        JP mvb0
mv_load:                                ; continue a row from its parked sum P:
        LD HL,(mv_pp)                   ; IY = P low word, IX = 256 * P byte 2,
        LD A,(HL)                       ; B' = P byte 3, A' = 0
        LD IYL,A
        INC HL
        LD A,(HL)
        LD IYH,A
        INC HL
        LD A,(HL)
        LD IXH,A
        LD IXL,0
        INC HL
        LD A,(HL)
        EXX
        LD B,A
        EXX
        INC HL
        LD (mv_pp),HL
        EX AF,AF'
        XOR A
        EX AF,AF'
        JP mv_go

{body}
mv_park:                                ; park this row's sum HL:DE (not the last chunk)
        LD IX,(mv_pp)
        LD (IX-4),E
        LD (IX-3),D
        LD (IX-2),L
        LD (IX-1),H
        EXX
        JP mv_rowdone_x

mv_raw:                                 ; HL:DE = 256*SumH + SumL (32 bits), then on
        LD E,IYL
        LD D,IYH
        EX AF,AF'
        LD L,A
        LD H,0
        LD A,IXL
        ADD A,D
        LD D,A
        EXX
        LD A,B
        EXX
        LD B,A
        LD C,IXH
        ADC HL,BC
mv_rret:
        JP mv_radd
mv_radd:                                ; R += HL:DE
        EX DE,HL
        LD BC,(mv_r)
        ADD HL,BC
        LD (mv_r),HL
        EX DE,HL
        LD BC,(mv_r+2)
        ADC HL,BC
        LD (mv_r+2),HL
mv_vret:
        JP mv_virt_done

mv_k32:                                 ; the row constant is bias - 257*Sg: add -R
        POP HL
mv_nrlo:
        LD DE,0
        ADD HL,DE
        EX DE,HL
        POP HL
mv_nrhi:
        LD BC,0
        ADC HL,BC
        EX DE,HL                        ; HL = low, DE = high
        JP mv_tail
mv_k16:                                 ; the row constant is Sg: start from -R - 257*Sg
        POP DE
        LD A,D
        ADD A,E
        LD B,A
        LD A,D
        ADC A,0
        LD C,A                          ; 257*Sg = C:B:E
        LD D,B
mv_n16lo:
        LD HL,0
        OR A
        SBC HL,DE
        EX DE,HL
mv_n16hi:
        LD HL,0
        LD B,0
        SBC HL,BC
        EX DE,HL                        ; HL = low, DE = high
mv_tail:                                ; + SumL + 256*SumH, then finish
        LD C,IYL
        LD B,IYH
        ADD HL,BC
        EX DE,HL                        ; HL = high, DE = low
        LD BC,0
        ADC HL,BC
        EX AF,AF'
        LD C,A
        ADD HL,BC                       ; + 65536 * (carries of SumL)
        EX DE,HL
        LD A,IXL
        ADD A,H
        LD H,A
        EX DE,HL
        EXX
        LD A,B
        EXX
        LD B,A
        LD C,IXH
        ADC HL,BC                       ; + 256 * SumH, its carries included
mv_finj:
        JP 0

{_store_result()}
{finishers}
mv_par: DEFS {PARAM_SIZE}
mv_sp: DEFW 0
mv_wp: DEFW 0
mv_xp: DEFW 0
mv_pp: DEFW 0
mv_r: DEFS 4
mv_left: DEFB 0
mv_ones:
        DEFS {unroll},128
mv_part:
        DEFS {4 * part_rows}
"""
