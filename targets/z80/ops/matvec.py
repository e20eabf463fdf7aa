"""matvec: y = sat16((W x + b) >> shift) for int8 W [rows, cols], Q8.8 int16 x, int16 b.

Calling convention (the same for every op routine: a CALL followed by an inline parameter
block, which the routine skips on return; all registers, the alternate set included, are
clobbered; interrupts must be off because the weights are read with POP):

        CALL op_matvec
        DEFW weights        ; the stream made by encode_weights()
        DEFW x, y, rows
        DEFB groups, cols   ; groups = ceil(cols / 8)
        DEFB flags          ; FLAG_BIAS: the stream holds a bias per row; FLAG_SAME_X: x and
                            ; cols are those of the previous op_matvec call
        DEFW mv_fin_<shift> ; the row finisher for this matvec's total shift

The trick is ops/subsets.py's: the columns go in groups of 8, up to four groups (a chunk of
32 columns) at a time; per chunk the routine builds the groups' subset-sum tables from x and
then a row costs one table lookup per byte of its weights' bit planes. With u = w + 128,

    sum_i w_i x_i = acc - 255*N - 128*sum(x),    acc = sum_b 2^b sum_g T_g[s_bg]

exactly, where N is the sum of the groups' offsets. The tables hold 16-bit entries, which needs sum |x| <= 65535
over the chunk: most activations are far smaller (the fast path). Otherwise the chunk takes
two passes, x split into bytes (x = 256*hi + lo, both small): the exact fallback.

A matvec of one chunk and one pass finishes each row at once. With several passes (more
than 32 columns, or a split chunk) each row's 32-bit sum is parked in mv_part between passes,
for a batch of up to `park_rows` rows at a time: all rows of a matvec of several chunks
(the rows of a chunk differ in length, so a chunk's stream starts where the last one's
ended), up to 32 rows of a split one. A matvec on the same x as the one before
(q, k, v) reuses its tables and K when that one took a single pass.

A row of a chunk need not take all eight planes: with its own offset m (a multiple of 16),
u = w - m, a row whose weights span less than 128 (64) takes 7 (6) planes and so 7/8 (6/8) of
the lookups and bytes. Each row starts with a header byte naming its planes and m. The row
code starts its sum at -2N (patched per build), which the P-1 doublings make -(2^P)N, so the
row's constant K = m*sum(x) + N does not depend on P: per chunk a table of 16 (24 bits).

A one-pass matvec (one chunk, sum |x| within the tables' bound) finishes each row from its
24-bit sum by a per-shift finisher (the bias added in 24 bits when fits_24_bits proves it
safe); the others go the 32-bit way. Rows are counted by B' (and H' for rounds of 256).

A matvec read only by argmax (codegen.pruned_matvecs: the output projection) computes just
the argmax range, and a row stops at plane 4 when even the most its last four planes can add
(15 * sum |x|) cannot lift it above the best y so far; such a row's y is -32768, which never
wins. The row code and mv_store are patched for that call and put back after it.

Stream (encode_weights): for each chunk, for each row: its header, then its pattern bytes for
that chunk in the order subsets.planes_asm reads them (P per group); in the last chunk each
row's bias (int16) follows. The stream is about as long as the weights, often shorter.
"""
from __future__ import annotations

import numpy as np

from . import subsets

NEEDS: set[str] = set()          # shared arithmetic it calls (runtime_math.py)

PARAM_SIZE = 15
FLAG_BIAS = 1
FLAG_SAME_X = 2
FLAG_ARGMAX = 4                  # only the largest y matters: rows that cannot beat it stop early
PRUNE_SHIFTS = range(0, 9)       # shifts the pruning handles; the shift rides in flags bits 3-7
PRUNE_PLANE = 4                  # the row code is left at this plane, before the last four
PRUNE_MAX_SUM = 58663            # sum |x| up to which w.x minus those planes fits 24 bits
CHUNK_GROUPS = subsets.MAX_GROUPS
MAX_COLS = 255


def groups(cols: int) -> int:
    return -(-cols // 8)


def chunk_groups(cols: int) -> list[int]:
    """Groups per chunk, in order."""
    if not 1 <= cols <= MAX_COLS:
        raise ValueError(f"{cols} columns: the Z80 matvec takes 1..{MAX_COLS}")
    g = groups(cols)
    return [min(CHUNK_GROUPS, g - start) for start in range(0, g, CHUNK_GROUPS)]


def row_form(row: np.ndarray, groups: int) -> tuple[int, int]:
    """(planes, offset m) for one row's weights in a chunk: u = w - m must fit the planes.
    m is a multiple of 16 (so the per-chunk table of row constants stays small); rows in a
    chunk of an odd number of groups take all 8 planes (see subsets.entry_planes)."""
    m = 16 * (int(row.min()) // 16)
    for planes in sorted(subsets.entry_planes(groups)):
        if int(row.max()) - m < 1 << planes:
            return planes, m
    raise AssertionError("an int8 row always fits 8 planes")


DISPATCH = (7, 8, 6)     # the row start tests the plane counts in this order: 7 is the most common


def header(planes: int, m: int) -> int:
    """64 times the plane count's place in DISPATCH, plus the offset of the row's constant in
    mv_ktab."""
    return 64 * DISPATCH.index(planes) + 3 * (m // 16 + 8)


def encode_weights(weight: np.ndarray, bias: np.ndarray | None) -> bytes:
    """The byte stream op_matvec reads for this matrix (see the module docstring)."""
    rows, cols = weight.shape
    w = weight.astype(np.int64)
    out = bytearray()
    start = 0
    sizes = chunk_groups(cols)
    for index, g in enumerate(sizes):
        part = w[:, 8 * start:min(cols, 8 * (start + g))]
        u = np.zeros((rows, 8 * g), dtype=np.uint8)
        for r in range(rows):
            planes, m = row_form(part[r], g)
            u[r, :part.shape[1]] = part[r] - m
            pattern = subsets.patterns(u[r:r + 1])[0]
            out.append(header(planes, m))
            out += pattern[(subsets.PLANES - planes) * g:].tobytes()
            if index == len(sizes) - 1 and bias is not None:
                out += int(bias[r]).to_bytes(2, "little", signed=True)
        start += g
    return bytes(out)


def row_offset(weight: np.ndarray, row: int) -> int:
    """Where `row` starts in the stream of a one-chunk matrix without bias."""
    if len(chunk_groups(weight.shape[1])) != 1:
        raise ValueError("row offsets are kept for one-chunk matrices only")
    g = groups(weight.shape[1])
    return sum(1 + g * row_form(weight[r].astype(np.int64), g)[0] for r in range(row))


def max_row_bytes(cols: int, bias: bool) -> int:
    """The most bytes one row can take in the stream: every chunk at 8 planes."""
    sizes = chunk_groups(cols)
    return len(sizes) + subsets.PLANES * sum(sizes) + (2 if bias else 0)


def finisher_label(shift: int, prefix: str = "mv") -> str:
    return f"{prefix}_fin_{shift}" if shift >= 0 else f"{prefix}_fin_m{-shift}"


def can_prune(cols: int, shift: int, bias: bool, wide: bool) -> bool:
    """Whether a matvec whose y feeds only an argmax may skip rows that cannot win: one
    chunk, no bias, a 24-bit finish and a small shift."""
    return len(chunk_groups(cols)) == 1 and not bias and not wide and shift in PRUNE_SHIFTS


def call_asm(weights: str, x: str, y: str, rows: int, cols: int, shift: int, bias: bool,
             same_x: bool = False, wide: bool = False, prune: bool = False) -> str:
    """same_x: the previous op_matvec call had the same x and columns; wide: w.x + b might
    not fit 24 bits (see fits_24_bits); prune: only an argmax reads y (see can_prune), so a
    row that cannot beat the largest y so far may stop after its top planes, its y -32768."""
    chunk_groups(cols)
    flags = (FLAG_BIAS if bias else 0) | (FLAG_SAME_X if same_x else 0)
    if prune:
        if not can_prune(cols, shift, bias, wide):
            raise ValueError("this matvec cannot prune its rows")
        flags |= FLAG_ARGMAX | shift << 3
    return (f"        CALL op_matvec\n"
            f"        DEFW {weights},{x},{y},{rows}\n"
            f"        DEFB {groups(cols)},{cols},{flags}\n"
            f"        DEFW {finisher_label(shift)},{fast_label(shift, bias, wide, prune)}\n")


# y = DE into (D'E'), which moves on: mv_store, and inline at the end of each 24-bit finisher
STORE_Y = ("        LD A,E\n        EXX\n        LD (DE),A\n        INC DE\n        EXX\n        LD A,D\n"
           "        EXX\n        LD (DE),A\n        INC DE\n")
NEXT_ROW = "        DEC B\n        JP NZ,mv_rowstart\n        JP mv_round\n"


def finisher_asm(shift: int, prefix: str = "mv", store: str = "mv_store") -> str:
    """From the row sum in HL:DE (high:low), y = sat16(sum >> shift) in DE, then JP store.

    A right shift by 8q+r moves whole bytes for free and r bits one at a time; for r >= 5 it
    is cheaper to shift left by 8-r into a fifth byte (B) and drop one more byte.
    A negative shift is a left shift: the sum must lie within 16-bit bounds scaled down.
    """
    lab = finisher_label(shift, prefix)
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
                       f"        JP {store}\n")
        elif len(value) == 1:
            out.append(f"        LD A,{value[0]}\n        LD E,A\n        RLA\n        SBC A,A\n        LD D,A\n"
                       f"        JP {store}\n")
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
            out.append(f"        JP {store}\n")
            if above:
                out.append(f"{lab}_sat:\n        LD A,{top}\n        RLA\n        LD DE,32767\n"
                           f"        JP NC,{store}\n        INC DE\n        JP {store}\n")
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
    out.append(f"        EX DE,HL\n        JP {store}\n"
               f"{lab}_pos:\n        LD DE,32767\n        JP {store}\n"
               f"{lab}_neg:\n        LD DE,32768\n        JP {store}\n"
               f"{lab}_sat:\n        LD A,H\n        RLA\n        JR C,{lab}_neg\n        JR {lab}_pos\n")
    return "".join(out)


FAST_SHIFTS = range(0, 24)


def fast_label(shift: int, bias: bool, wide: bool = False, prune: bool = False) -> str:
    """The finisher a one-pass matvec jumps to with w.x in A:D:E (24 bits): mv_r32 (the
    32-bit way) when the sum plus bias might pass 24 bits (wide) or the shift is unusual;
    a pruned matvec's (see can_prune) weighs each y against the best so far."""
    if wide or shift not in FAST_SHIFTS:
        return "mv_r32"
    return f"mv_f24{'p' if prune else 'b' if bias else ''}_{shift}"


def fits_24_bits(weight: np.ndarray, bias: np.ndarray | None) -> bool:
    """w.x + b stays within 24 bits signed for any x with sum |x| <= 65535 (the tables' bound)."""
    most = int(np.abs(weight.astype(np.int64)).max(initial=0)) * 65535
    if bias is not None:
        most += int(np.abs(bias.astype(np.int64)).max(initial=0))
    return most < 1 << 23


def finisher24_asm(shift: int, prune: bool = False) -> str:
    """From w.x in A:D:E (signed 24 bits), y = sat16(w.x >> shift) in DE, stored as mv_store
    does (inline: a row's end is hot) and on to the next row; the entry ..b first adds the
    row's int16 bias from the stream. prune: the variant mv_f24p_ that hands y to
    mv_store_am instead."""
    lab = f"mv_f24{'p' if prune else ''}_{shift}"
    store = "mv_store_am" if prune else "mv_store"
    done = f"        JP {store}\n" if prune else STORE_Y + NEXT_ROW
    out = [] if prune else [
        f"mv_f24b_{shift}:\n        LD H,A\n        POP BC\n        LD A,B\n        RLA\n        SBC A,A\n"
        "        LD L,A\n        LD A,E\n        ADD A,C\n        LD E,A\n        LD A,D\n        ADC A,B\n"
        f"        LD D,A\n        LD A,H\n        ADC A,L\n        LD H,{subsets.TABLES} >> 8\n"]
    out.append(f"{lab}:\n")
    q, r = divmod(shift, 8)
    sat = (f"{lab}_sat:\n        LD A,B\n        RLA\n        LD DE,32767\n        JP NC,{store}\n"
           f"        INC DE\n        JP {store}\n")
    if q == 0 and r >= 5:               # fits iff bits shift-1..7 of A agree; then left by 8-r
        out.append(f"        LD B,A\n        ADD A,{1 << (shift - 1)}\n        CP {1 << shift}\n"
                   f"        JR NC,{lab}_sat\n")
        out += ["        SLA E\n        RL D\n        RL B\n"] * (8 - r)
        out.append(f"        LD E,D\n        LD D,B\n{done}{sat}")
    elif q == 0:                        # right by r, then A must be D's sign
        out += ["        SRA A\n        RR D\n        RR E\n"] * r
        out.append(f"        LD B,A\n        LD A,D\n        RLA\n        SBC A,A\n        CP B\n"
                   f"        JR NZ,{lab}_sat\n{done}{sat}")
    elif q == 1:
        out += ["        SRA A\n        RR D\n"] * r
        out.append(f"        LD E,D\n        LD D,A\n{done}")
    else:
        out += ["        SRA A\n"] * r
        out.append(f"        LD E,A\n        RLA\n        SBC A,A\n        LD D,A\n{done}")
    return "".join(out)


def row_label(groups: int) -> str:
    """The row code (subsets.planes_asm) for a chunk of this many groups."""
    return f"st_planes{groups}"


def _setup_asm(park_rows: int, row_variants) -> str:
    set_ends = "".join(f"        LD ({row_label(g)}_end+1),HL\n" for g in sorted(row_variants))
    return f"""
; ---- matvec (targets/z80/ops/matvec.py) ----
op_matvec:
        POP HL
        LD DE,mv_par
        LD BC,{PARAM_SIZE}
        LDIR
        PUSH HL
        LD (mv_sp),SP
        LD HL,(mv_par+11)
        LD (mv_finj+1),HL
        LD HL,(mv_par+13)
        LD (mv_f24j+1),HL
        LD HL,mv_rowend
{set_ends}        LD HL,(mv_par+4)
        LD (mv_yp),HL
        LD A,(mv_par+10)
        AND {FLAG_SAME_X}
        JR Z,mv_fresh
        LD A,(mv_valid)
        OR A
        JR Z,mv_fresh
        LD HL,(mv_par+6)                ; same x, one pass: tables, K, mode and row code stand
        LD (mv_nb),HL
        LD HL,(mv_par)
        LD (mv_cs),HL
        LD HL,mv_ctab+2
        LD (mv_cp),HL
        XOR A
        LD (mv_c),A
        CALL mv_bias_final
        CALL mv_end_fast
        CALL mv_run1
        JP mv_done
mv_fresh:
        XOR A
        LD (mv_valid),A
        CALL mv_layout
        LD HL,(mv_par+6)
        LD (mv_batch),HL
        LD A,(mv_nchunks)
        DEC A
        CALL NZ,mv_park_batch           ; several chunks: a batch at a time in the park area
mv_restart:
        LD HL,(mv_par+6)
        LD (mv_left),HL
mv_batch_loop:
        LD HL,(mv_left)
        LD DE,(mv_batch)
        OR A
        SBC HL,DE
        JR NC,mv_batch_full
        ADD HL,DE                       ; fewer rows left than a batch
        EX DE,HL
        LD HL,0
mv_batch_full:
        LD (mv_left),HL
        LD (mv_nb),DE
        XOR A
        LD (mv_c),A
        INC A
        LD (mv_firstp),A
mv_chunk_loop:
        CALL mv_chunk_setup
        XOR A
        CALL mv_load                    ; x as it is
        JR C,mv_split                   ; sum |x| over the chunk > 65535
        CALL mv_build
        LD HL,mv_biasj
        LD (mv_scalej+1),HL
        LD A,(mv_nchunks)
        DEC A
        JR NZ,mv_one_of_many
        LD HL,mv_finj                   ; the whole matvec in one pass
        LD (mv_modej+1),HL
        INC A
        LD (mv_fin),A
        LD (mv_valid),A
        CALL mv_end_fast
        CALL mv_bias_final
        CALL mv_run1
        JR mv_chunk_next
mv_one_of_many:
        CALL mv_mode_final
mv_one_set:
        CALL mv_bias_final
        CALL mv_run
        JR mv_chunk_next
mv_split:                               ; x = 256*hi + lo, a pass each
        LD HL,(mv_batch)
        LD DE,{park_rows + 1}
        OR A
        SBC HL,DE
        JR C,mv_split_fits
        CALL mv_park_batch              ; (only before the first row: one chunk, all rows at once)
        JP mv_restart
mv_split_fits:
        LD A,1
        CALL mv_load
        CALL mv_build
        LD HL,mv_x256
        LD (mv_scalej+1),HL
        CALL mv_mode_notlast
        LD HL,mv_modej
        CALL mv_last_chunk_bias
        JR Z,mv_hi_bias
        LD HL,mv_bias_skip
mv_hi_bias:
        LD (mv_biasj+1),HL
        CALL mv_run_again
        LD A,2
        CALL mv_load
        CALL mv_build
        LD HL,mv_biasj
        LD (mv_scalej+1),HL
        CALL mv_mode_final
        CALL mv_bias_final
        CALL mv_run
mv_chunk_next:
        LD HL,mv_c
        INC (HL)
        LD A,(mv_nchunks)
        CP (HL)
        JP NZ,mv_chunk_loop
        LD HL,(mv_left)
        LD A,H
        OR L
        JP NZ,mv_batch_loop
mv_done:
        LD SP,(mv_sp)
        RET

mv_end_fast:                            ; rows of one pass end at mv_row1
        LD HL,(mv_endp)
        LD (HL),mv_row1 & 255
        INC HL
        LD (HL),mv_row1 >> 8
        RET

mv_run1:                                ; a one-pass run; with FLAG_ARGMAX, rows may stop at plane 4
        LD A,(mv_par+10)
        AND 4
        JP Z,mv_run
        LD HL,(mv_n)                    ; T = sum |x| = sum + 2N
        LD A,(mv_n+2)
        ADD HL,HL
        ADC A,A
        LD DE,(mv_sx)
        ADD HL,DE
        LD C,A
        LD A,(mv_sx+2)
        ADC A,C
        JP NZ,mv_run
        LD DE,58664
        OR A
        SBC HL,DE
        JP NC,mv_run                    ; past it, w.x minus the rest might not fit 24 bits
        ADD HL,DE
        LD D,H
        LD E,L
        XOR A
        ADD HL,HL
        ADC A,A
        ADD HL,HL
        ADC A,A
        ADD HL,HL
        ADC A,A
        ADD HL,HL
        ADC A,A
        OR A
        SBC HL,DE
        SBC A,0
        LD C,A                          ; C:HL = 15T: the most the last four planes add
        LD A,(mv_ktab+3*MV_KMIN+2)      ; mv_c15 = 15T + K[MV_KMIN], 32 bits
        LD B,A
        RLA
        SBC A,A
        LD (mv_c15+3),A
        LD DE,(mv_ktab+3*MV_KMIN)
        ADD HL,DE
        LD (mv_c15),HL
        LD A,C
        ADC A,B
        LD (mv_c15+2),A
        LD A,(mv_c15+3)
        ADC A,0
        LD (mv_c15+3),A
        LD HL,(mv_sx)                   ; 2S: the thresholds of successive m step down by it
        LD A,(mv_sx+2)
        ADD HL,HL
        ADC A,A
        LD (mv_s2c+1),A
        LD A,L
        LD (mv_s2a+1),A
        LD A,H
        LD (mv_s2b+1),A
        LD HL,32768
        LD (mv_best),HL
        LD HL,0
        LD C,0C0h                       ; -2^22: nothing stops before the first y
        CALL mv_thr_fill
        LD A,(mv_cg)
        ADD A,A
        ADD A,A
        LD (mv_bskip),A                 ; the row's bytes after plane 3: four planes
        LD A,(mv_par+10)
        RRCA
        RRCA
        RRCA
        AND 31
        LD (mv_shift),A
        LD HL,(mv_p4p)                  ; the row code jumps out at plane 4
        LD DE,mv_save4
        LD BC,mv_bound
        CALL mv_hook
        LD (mv_bjump+1),HL
        CALL mv_run                     ; (its finisher weighs each y: fast_label)
        LD HL,mv_save4
        LD DE,(mv_p4p)
        LD BC,3
        LDIR
        RET

mv_hook:                                ; HL = 3 bytes of code: saved at DE, replaced by JP BC;
        PUSH BC                         ; HL = the address after them
        PUSH HL
        LD BC,3
        LDIR
        POP HL
        POP BC
        LD (HL),195
        INC HL
        LD (HL),C
        INC HL
        LD (HL),B
        INC HL
        RET

mv_bound:                               ; at plane 4, A:IY = V: the row stops when V < thr[m]
        LD B,A                          ; (8V + K[m] + 15T cannot reach theta: see mv_newbest)
        EXX
        LD A,C
        EXX
        AND 63
        ADD A,mv_thr-mv_ktab
        LD L,A
        LD C,H
        LD H,mv_ktab >> 8
        LD A,IYL
        SUB (HL)
        INC L
        LD A,IYH
        SBC A,(HL)
        INC L
        LD A,B
        SBC A,(HL)
        JP PE,mv_bound_v
        JP M,mv_prune
mv_bound_keep:
        LD A,B
        LD H,C
        POP DE                          ; the three instructions the jump stands on
        LD L,E
        LD C,(HL)
mv_bjump:
        JP 0
mv_bound_v:
        JP P,mv_prune
        JP mv_bound_keep
mv_prune:
        LD HL,(mv_bskip)
        LD H,0
        ADD HL,SP
        LD SP,HL
        LD DE,32768
        JP mv_store                     ; (-32768 never beats the best)
mv_store_am:                            ; y = DE; a larger one than the best moves theta
        LD HL,(mv_best)
        LD A,L
        SUB E
        LD A,H
        SBC A,D
        JP PE,mv_sam_v
        JP M,mv_newbest
        JP mv_store
mv_sam_v:
        JP P,mv_newbest
        JP mv_store
mv_newbest:                             ; theta = ((y + 1) << shift) - 15T; per m in use,
        LD (mv_best),DE                 ; thr[m] = ceil((theta - K[m]) / 8), clamped to +-2^22
        LD A,D
        RLA
        SBC A,A
        LD C,A
        LD B,A
        LD H,D
        LD L,E
        LD A,L
        ADD A,1
        LD L,A
        LD A,H
        ADC A,0
        LD H,A
        LD A,C
        ADC A,0
        LD C,A
        LD A,B
        ADC A,0
        LD B,A
        LD A,(mv_shift)
        OR A
        JR Z,mv_nb_sub
mv_nb_shift:
        ADD HL,HL
        RL C
        RL B
        DEC A
        JR NZ,mv_nb_shift
mv_nb_sub:                              ; B:C:H:L - (15T + K[MV_KMIN]) + 7, then / 8
        LD DE,(mv_c15)
        OR A
        SBC HL,DE
        LD A,(mv_c15+2)
        LD E,A
        LD A,C
        SBC A,E
        LD C,A
        LD A,(mv_c15+3)
        LD E,A
        LD A,B
        SBC A,E
        LD B,A
        LD DE,7
        ADD HL,DE
        JR NC,mv_nb_7
        INC BC
mv_nb_7:
        SRA B
        RR C
        RR H
        RR L
        SRA B
        RR C
        RR H
        RR L
        SRA B
        RR C
        RR H
        RR L
        LD A,C                          ; within +-2^22 when B:C + 40h is below 80h
        ADD A,40h
        LD E,A
        LD A,B
        ADC A,0
        JR NZ,mv_nb_clamp
        BIT 7,E
        JR Z,mv_nb_fill
mv_nb_clamp:
        LD HL,0
        LD A,B
        RLA
        LD C,40h
        JR NC,mv_nb_fill
        LD C,0C0h
mv_nb_fill:
        LD (mv_ksp),SP                  ; (SP is in the weights: CALL on the real stack)
        LD SP,(mv_sp2)
        CALL mv_thr_fill
        LD SP,(mv_ksp)
        LD DE,(mv_best)
        JP mv_store
mv_thr_fill:                            ; C:HL = thr[MV_KMIN]; each next m's is 2S lower
        EX DE,HL
        LD HL,mv_thr+3*MV_KMIN
        LD B,MV_KCOUNT
mv_thr_l:
        LD (HL),E
        INC L
        LD (HL),D
        INC L
        LD (HL),C
        INC L
        LD A,E
mv_s2a:
        SUB 0
        LD E,A
        LD A,D
mv_s2b:
        SBC A,0
        LD D,A
        LD A,C
mv_s2c:
        SBC A,0
        LD C,A
        DJNZ mv_thr_l
        RET

mv_park_batch:                          ; batch = min(rows, park rows)
        LD HL,(mv_par+6)
        LD DE,{park_rows}
        OR A
        SBC HL,DE
        RET C
        LD (mv_batch),DE
        RET

mv_last_chunk_bias:                     ; NZ when this is the last chunk of a matvec with a bias
        LD A,(mv_par+10)
        AND {FLAG_BIAS}
        RET Z
        LD A,(mv_nchunks)
        DEC A
        LD B,A
        LD A,(mv_c)
        CP B
        JR Z,mv_lcb_yes
        XOR A
        RET
mv_lcb_yes:
        OR 1
        RET

mv_bias_final:                          ; the pass that finishes the rows adds the bias
        LD HL,mv_modej
        CALL mv_last_chunk_bias
        JR Z,mv_bias_set
        LD HL,mv_bias_add
mv_bias_set:
        LD (mv_biasj+1),HL
        RET

mv_mode_final:                          ; the chunk's last pass: on the last chunk, finish
        LD A,(mv_nchunks)
        DEC A
        LD B,A
        LD A,(mv_c)
        CP B
        JR NZ,mv_mode_notlast
        LD HL,mv_last
        LD (mv_modej+1),HL
        LD A,1
        LD (mv_fin),A
        RET
mv_mode_notlast:                        ; park first, then add
        LD HL,mv_first
        LD A,(mv_firstp)
        OR A
        JR NZ,mv_mode_set
        LD HL,mv_middle
mv_mode_set:
        LD (mv_modej+1),HL
        XOR A
        LD (mv_firstp),A
        LD (mv_fin),A
        RET

mv_run_again:                           ; a pass over rows the next pass reads again
        LD HL,(mv_cs)
        PUSH HL
        CALL mv_run
        POP HL
        LD (mv_cs),HL
        RET
mv_run:                                 ; this batch's rows of the chunk through the tables
        LD (mv_sp2),SP
        LD IX,mv_part
        LD DE,(mv_yp)
        LD HL,(mv_nb)                   ; rows: B' = 1..256 of them in this round, H' more rounds
        DEC HL
        LD B,L
        INC B
        EXX
        LD H,{subsets.TABLES} >> 8
        EXX
        LD SP,(mv_cs)
        JP mv_rowstart
mv_pass_done:
        LD (mv_cs),SP
        LD SP,(mv_sp2)
        LD HL,(mv_cp)                   ; the chunk's stream goes on from here next batch,
        LD DE,(mv_cs)                   ; and the next chunk's starts here
        LD (HL),E
        INC HL
        LD (HL),D
        LD BC,5
        ADD HL,BC
        LD (HL),E
        INC HL
        LD (HL),D
        LD A,(mv_fin)                   ; a pass that stored y moves it on
        OR A
        RET Z
        EXX
        LD (mv_yp),DE
        EXX
        RET
"""


def _chunks_asm(row_variants) -> str:
    variants = sorted(row_variants)

    def entries(g):
        labels = [subsets.planes_label(row_label(g), p) for p in subsets.entry_planes(g)]
        labels += [labels[0]] * (3 - len(labels))
        return ("".join(f"        LD HL,{lab}\n        LD (mv_p{p}j+1),HL\n" for lab, p in zip(labels, (8, 7, 6)))
                + f"        LD HL,{row_label(g)}_end+1\n        LD (mv_endp),HL\n"
                + f"        LD HL,{subsets.planes_label(row_label(g), subsets.PLANES)}_p{PRUNE_PLANE}\n"
                  "        LD (mv_p4p),HL\n")

    pick = "".join(f"        CP {g}\n        JR NZ,mv_cs_not{g}\n{entries(g)}        RET\nmv_cs_not{g}:\n"
                   for g in variants[:-1]) + entries(variants[-1]) + "        RET\n"
    return f"""
mv_layout:                              ; per chunk: groups, columns, stream (2), x (2)
        LD HL,(mv_par)                  ; the first chunk's stream; each pass over a chunk
        LD (mv_ctab+2),HL               ; leaves the next one's start (one batch then)
        LD A,(mv_par+8)
        LD (mv_lg),A
        LD A,(mv_par+9)
        LD (mv_lc),A
        LD DE,(mv_par+2)
        LD IX,mv_ctab
        XOR A
        LD (mv_nchunks),A
mv_lay_loop:
        LD A,(mv_lg)
        CP {CHUNK_GROUPS + 1}
        JR C,mv_lay_g
        LD A,{CHUNK_GROUPS}
mv_lay_g:
        LD (IX+0),A
        LD B,A
        LD A,(mv_lg)
        SUB B
        LD (mv_lg),A
        LD A,(mv_lc)
        CP {8 * CHUNK_GROUPS + 1}
        JR C,mv_lay_c
        LD A,{8 * CHUNK_GROUPS}
mv_lay_c:
        LD (IX+1),A
        LD C,A
        LD A,(mv_lc)
        SUB C
        LD (mv_lc),A
        LD (IX+4),E
        LD (IX+5),D
        EX DE,HL
        LD BC,{16 * CHUNK_GROUPS}       ; x += 32 columns
        ADD HL,BC
        EX DE,HL
        LD BC,6
        ADD IX,BC
        LD A,(mv_nchunks)
        INC A
        LD (mv_nchunks),A
        LD A,(mv_lg)
        OR A
        JR NZ,mv_lay_loop
        RET

mv_chunk_setup:                         ; chunk mv_c: mv_cg, mv_ccols, mv_cs, mv_cp, mv_cx, the row code
        LD A,(mv_c)
        LD L,A
        ADD A,A
        ADD A,L
        ADD A,A
        LD E,A
        LD D,0
        LD IX,mv_ctab
        ADD IX,DE
        LD A,(IX+1)
        LD (mv_ccols),A
        LD L,(IX+2)
        LD H,(IX+3)
        LD (mv_cs),HL
        PUSH IX
        POP HL
        INC HL
        INC HL
        LD (mv_cp),HL
        LD L,(IX+4)
        LD H,(IX+5)
        LD (mv_cx),HL
        LD A,(IX+0)
        LD (mv_cg),A
{pick}
mv_load:                                ; A = 0: x, 1: its high bytes, 2: its low bytes, as the build's
        LD HL,(mv_cx)                   ; source (st_src); with A = 0, carry when sum |x| > 65535
        LD (st_src),HL
        LD C,A
        LD A,(mv_cg)
        ADD A,A
        ADD A,A
        ADD A,A
        LD B,A
        LD A,(mv_ccols)
        CP B
        JR NZ,mv_ld_copy
        LD B,A
        LD A,C
        OR A
        JP Z,mv_ld_check                ; a whole chunk of x: read in place
mv_ld_copy:                             ; into st_x, then zeros up to whole groups
        LD A,C
        PUSH AF
        LD DE,st_x
        LD (st_src),DE
        LD A,(mv_ccols)
        LD B,A
mv_ld_loop:
        LD C,(HL)
        INC HL
        LD A,(HL)
        INC HL
        EX AF,AF'
        POP AF
        PUSH AF
        OR A
        JR Z,mv_ld_id
        DEC A
        JR Z,mv_ld_hi
        XOR A                           ; the low byte
        JR mv_ld_put
mv_ld_hi:
        EX AF,AF'
        LD C,A                          ; the high byte, sign-extended
        RLA
        SBC A,A
        JR mv_ld_put
mv_ld_id:
        EX AF,AF'
mv_ld_put:
        EX DE,HL
        LD (HL),C
        INC HL
        LD (HL),A
        INC HL
        EX DE,HL
        DJNZ mv_ld_loop
        LD A,(mv_cg)
        ADD A,A
        ADD A,A
        ADD A,A
        LD HL,mv_ccols
        SUB (HL)
        JR Z,mv_ld_padded
        ADD A,A
        LD B,A
        XOR A
mv_ld_pad:
        LD (DE),A
        INC DE
        DJNZ mv_ld_pad
mv_ld_padded:
        POP AF
        OR A                            ; (carry clear)
        RET NZ
        LD HL,st_x
        LD A,(mv_ccols)
        LD B,A
mv_ld_check:                            ; HL = B values (at most 32): carry when their sum of |x| passes 65535
        LD (mv_ldsp),SP                 ; (interrupts are off) POP reads them
        LD SP,HL
        LD C,B
mv_ld_small:                            ; every x in -1792..2047 (high byte -7..7): the sum is below 65536
        POP AF
        ADD A,7
        CP 15
        JR NC,mv_ld_big
        DJNZ mv_ld_small
        LD SP,(mv_ldsp)
        OR A
        RET
mv_ld_big:                              ; otherwise add them up
        LD SP,(mv_ldsp)
        LD B,C
        LD IY,0
mv_ld_exact:
        LD E,(HL)
        INC HL
        LD D,(HL)
        INC HL
        BIT 7,D
        JR Z,mv_ld_epos
        XOR A
        SUB E
        LD E,A
        SBC A,A
        SUB D
        LD D,A
mv_ld_epos:
        ADD IY,DE
        RET C
        DJNZ mv_ld_exact
        RET

mv_build:                               ; the tables; N and the sum of the values; the row constants
        LD A,(mv_cg)
        CALL st_build
        LD IX,0                         ; N: the sum of the tables' entries 0; IY: of their
        LD IY,0                         ; entries 255 (N + the sum of x); both below 65536
        LD HL,{subsets.TABLES}
        LD A,(mv_cg)
mv_bn:
        EX AF,AF'
        LD E,(HL)
        INC H
        LD D,(HL)
        DEC L
        LD B,(HL)
        DEC H
        LD C,(HL)
        INC L
        ADD IX,DE
        ADD IY,BC
        INC H
        INC H
        EX AF,AF'
        DEC A
        JR NZ,mv_bn
        LD (mv_n),IX
        LD (mv_n+2),A
        PUSH IY
        POP HL
        PUSH IX
        POP DE
        OR A
        SBC HL,DE                       ; the sum, 17 bits
        SBC A,A
        LD (mv_sx),HL
        LD (mv_sx+2),A
        EX DE,HL
        LD C,0                          ; C:HL = N
        XOR A                           ; init = -2N: after the row's P-1 doublings, -2^P * N
        SUB L
        LD E,A
        LD A,0
        SBC A,H
        LD D,A
        LD A,0
        SBC A,C
        SLA E
        RL D
        RLA
        LD HL,(mv_p8j+1)                ; into the entries of the chunk's row code
        CALL mv_init_at
        LD HL,(mv_p7j+1)
        CALL mv_init_at
        LD HL,(mv_p6j+1)
        CALL mv_init_at
        LD HL,(mv_sx)                   ; 16*sum (the step between offsets) and -128*sum
        LD A,(mv_sx+2)
        LD C,A
        ADD HL,HL
        RL C
        ADD HL,HL
        RL C
        ADD HL,HL
        RL C
        ADD HL,HL
        RL C
        LD (mv_s16),HL
        LD A,C
        LD (mv_kt_top+1),A
        ADD HL,HL
        RL C
        ADD HL,HL
        RL C
        ADD HL,HL
        RL C
        XOR A
        SUB L
        LD L,A
        LD A,0
        SBC A,H
        LD H,A
        LD A,0
        SBC A,C
        LD C,A
        LD DE,(mv_n)                    ; K for m = -128: N - 128*sum
        ADD HL,DE
        LD A,(mv_n+2)
        ADC A,C
        LD C,A
        EX DE,HL
        LD (mv_ksp),SP
        LD HL,mv_ktab
        LD SP,(mv_s16)                  ; (interrupts are off; no stack here)
        LD B,MV_KMIN+MV_KCOUNT
mv_kt_m:                                ; K = m*sum + N for m = -128, -112, ... up to the last in use
        LD (HL),E
        INC L
        LD (HL),D
        INC L
        LD (HL),C
        INC L
        EX DE,HL
        ADD HL,SP
        LD A,C
mv_kt_top:
        ADC A,0
        LD C,A
        EX DE,HL
        DJNZ mv_kt_m
        LD SP,(mv_ksp)
        RET

mv_init_at:                             ; HL = a row entry (LD IY,nn / LD A,n): A:DE goes there
        INC HL
        INC HL
        LD (HL),E
        INC HL
        LD (HL),D
        INC HL
        INC HL
        LD (HL),A
        RET
"""


def _rows_asm() -> str:
    """The row loop's tail: a row's acc (A:IY) to its sum, then to y or the park area.

    In a pass: SP = the stream, B' and H' count the rows left, D'E' = where y goes, C' = the row's
    header, IX = the park place. Patched per pass: mv_scalej (x256 for the high bytes of a
    split x), mv_biasj (none / skip / add the row's bias), mv_modej (finish / park first /
    add to the parked sum / join it and finish), and mv_p8j, mv_p7j, mv_p6j (the row code for
    the chunk's groups and the row's planes).
    """
    return f"""
mv_row1:                                ; a one-pass matvec: A:IY = acc, C' = the row's header
        LD L,A                          ; (H stays on the tables' first page for the next row)
        EXX
        LD A,C
        EXX
        AND 63
        LD C,A
        LD B,mv_ktab >> 8
        LD A,(BC)
        ADD A,IYL
        LD E,A
        INC C
        LD A,(BC)
        ADC A,IYH
        LD D,A
        INC C
        LD A,(BC)
        ADC A,L                         ; A:D:E = acc + K = w.x, 24 bits signed
mv_f24j:
        JP 0                            ; its 24-bit finisher (or mv_r32)
mv_r32:                                 ; the 32-bit way: sign-extend, bias, finish
        LD L,A
        RLA
        SBC A,A
        LD H,A
        JP mv_scalej
mv_rowend:                              ; A:IY = acc, C' = the row's header
        LD D,A
        EXX
        LD A,C
        EXX
        AND 63
        LD L,A
        LD H,mv_ktab >> 8
        LD C,(HL)
        INC L
        LD B,(HL)
        INC L
        ADD IY,BC
        LD A,D
        ADC A,(HL)                      ; A:IY = acc + K = w.x, 24 bits signed
        LD E,IYL
        LD D,IYH
        LD L,A
        RLA
        SBC A,A
        LD H,A                          ; HL:DE = w.x
mv_scalej:
        JP mv_biasj
mv_x256:                                ; the high bytes of a split x weigh 256
        LD H,L
        LD L,D
        LD D,E
        LD E,0
mv_biasj:
        JP mv_modej
mv_bias_skip:                           ; the bias is added in the chunk's other pass
        POP BC
        JP mv_modej
mv_bias_add:
        POP BC
        LD A,B
        RLA
        SBC A,A
        EX DE,HL
        ADD HL,BC
        EX DE,HL
        LD C,A
        LD B,A
        ADC HL,BC
mv_modej:
        JP mv_finj
mv_first:                               ; park the row's sum
        LD (IX+0),E
        LD (IX+1),D
        LD (IX+2),L
        LD (IX+3),H
        JP mv_parked
mv_middle:                              ; add it to the parked sum (inline: SP is in the weights, no CALL m_add32)
        LD A,(IX+0)
        ADD A,E
        LD (IX+0),A
        LD A,(IX+1)
        ADC A,D
        LD (IX+1),A
        LD A,(IX+2)
        ADC A,L
        LD (IX+2),A
        LD A,(IX+3)
        ADC A,H
        LD (IX+3),A
mv_parked:
        LD BC,4
        ADD IX,BC
        LD H,{subsets.TABLES} >> 8         ; where the next row starts
        JP mv_next_row
mv_last:                                ; the parked sum joins it, then finish
        LD A,(IX+0)
        ADD A,E
        LD E,A
        LD A,(IX+1)
        ADC A,D
        LD D,A
        LD A,(IX+2)
        ADC A,L
        LD L,A
        LD A,(IX+3)
        ADC A,H
        LD H,A
        LD BC,4
        ADD IX,BC
mv_finj:
        JP 0                            ; the finisher for this matvec's shift
mv_store:                               ; y = DE
        LD H,{subsets.TABLES} >> 8         ; where the next row starts
{STORE_Y}        JR mv_count
mv_next_row:
        EXX
mv_count:
        DJNZ mv_rowstart
mv_round:                               ; B' ran out: another 256 rows while H' > 0
        LD A,H
        OR A
        EXX
        JP Z,mv_pass_done
        EXX
        DEC H
mv_rowstart:                            ; (in the counters' set) the row's header: C' for its constant, and its planes
        DEC SP                          ; (H is on the tables' first page: each row leaves it there,
        POP AF                          ; and so does each way from a row's end to the next)
        LD C,A
        EXX
        CP 64
mv_p7j:
        JP C,0                          ; the row code for this chunk's groups: 7 planes
        CP 128
mv_p8j:
        JP C,0                          ; 8 planes
mv_p6j:
        JP 0                            ; 6 planes
"""


def _variables_asm(park_rows: int) -> str:
    return f"""mv_par: DEFS {PARAM_SIZE}
mv_sp: DEFW 0
mv_sp2: DEFW 0
mv_yp: DEFW 0
mv_nb: DEFW 0
mv_left: DEFW 0
mv_batch: DEFW 0
mv_cs: DEFW 0
mv_cp: DEFW 0
mv_cx: DEFW 0
mv_sx: DEFS 4
mv_n: DEFS 4
mv_s16: DEFW 0
mv_ksp: DEFW 0
mv_ldsp: DEFW 0
mv_p4p: DEFW 0
mv_save4: DEFS 3
mv_best: DEFW 0
mv_c15: DEFS 4
mv_bskip: DEFW 0
mv_shift: DEFB 0
mv_endp: DEFW 0
mv_c: DEFB 0
mv_cg: DEFB 0
mv_ccols: DEFB 0
mv_nchunks: DEFB 0
mv_firstp: DEFB 0
mv_fin: DEFB 0
mv_valid: DEFB 0
mv_lg: DEFB 0
mv_lc: DEFB 0
mv_ctab: DEFS {6 * (-(-MAX_COLS // (8 * CHUNK_GROUPS)) + 1)}
mv_part: DEFS {4 * park_rows}
"""


KTAB_BYTES = 3 * 16


def ktab_asm(thresholds: bool = True) -> str:
    """The per-chunk table of row constants, page-aligned (it follows the subset-sum tables),
    then, for a program with a pruned matvec, the pruning's thresholds (the same index)."""
    thr = f"mv_thr:\n        DEFS {KTAB_BYTES}\n" if thresholds else "mv_thr EQU mv_ktab\n"
    return ("        DEFS (256 - ($ & 255)) & 255   ; the row constants start on a page\n"
            f"mv_ktab:\n        DEFS {KTAB_BYTES}\n{thr}")


def k_range(weights) -> tuple[int, int]:
    """(first, count) of the row-constant indices (m // 16 + 8) that the rows of these int8
    matrices use: only those K are computed per build."""
    used = set()
    for weight in weights:
        w = np.asarray(weight).astype(np.int64)
        start = 0
        for g in chunk_groups(w.shape[1]):
            part = w[:, 8 * start:8 * (start + g)]
            used |= {row_form(row, g)[1] // 16 + 8 for row in part}
            start += g
    if not used:
        return 0, 16
    return min(used), max(used) - min(used) + 1


def kernel_asm(shifts, row_variants, park_rows: int, prune_shifts=(), ks: tuple[int, int] = (0, 16)) -> str:
    """The shared op_matvec routine, with a row finisher for each total shift in `shifts`
    (and a pruned one for each in `prune_shifts`); `ks`: k_range of the program's matrices;
    `row_variants`: the group counts of the chunks it meets (each needs subsets.planes_asm's
    row code under row_label(g), emitted with the subset tables' code); `park_rows`: the
    rows one batch of a several-pass matvec holds."""
    park_rows = max(1, park_rows)
    constants = f"MV_KMIN EQU {ks[0]}\nMV_KCOUNT EQU {ks[1]}\n"
    finishers = "".join(finisher_asm(s) + (finisher24_asm(s) if s in FAST_SHIFTS else "")
                        for s in sorted(set(shifts)))
    finishers += "".join(finisher24_asm(s, prune=True) for s in sorted(set(prune_shifts)))
    return (constants + _setup_asm(park_rows, row_variants) + _chunks_asm(row_variants) + _rows_asm() + finishers
            + _variables_asm(park_rows))


def park_rows(uses: list[tuple[int, int]]) -> int:
    """Rows of parking space for the matvecs (rows, cols) of a program: all rows of any that
    take several chunks, and up to 32 rows for the exact fallback of any other."""
    wide = [rows for rows, cols in uses if len(chunk_groups(cols)) > 1]
    return max(wide + [min(rows, 32) for rows, _ in uses] + [1])
