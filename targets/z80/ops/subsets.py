"""Subset-sum tables: a dot product with byte-wide weights at one table lookup per weight byte.

For a group of 8 columns with int16 values x_0..x_7, the table holds, for every s = 0..255,

    T[s] = N + sum of x_k over the bits k set in s,    N = sum of |x_k| over the negative x_k

so that 0 <= T[s] <= sum |x_k|. Take each weight in offset form u = w + 128 (0..255) and cut
the weights of a row into bit planes: for plane b and group g the *pattern* byte s_bg has bit
k set when bit b of the weight of column 8g+k is. Then, for a row,

    sum_i u_i x_i = sum_b 2^b sum_g (T_g[s_bg] - N_g)

So a row costs one lookup per group per plane: a byte of weight bits (8 columns, one plane)
per lookup, whatever the values of x, against two lookups per weight for byte-by-byte
multiplication. The sums are Horner's rule over the planes from the top one:
acc = 2*acc + T_g[s]. While sum |x| over the groups of a row is at most 65535 every plane's
sum fits 16 bits, every table entry is unsigned 16-bit and acc (at most 255 * 65535) fits
the 24 bits A:IY; the callers check that and otherwise split x into bytes (ops/matvec.py).

Tables: MAX_GROUPS groups, from the page-aligned label TABLES: group g's low bytes fill page
2g, its high bytes page 2g+1, so an entry is found by L = s with H = the page.

`planes_asm(groups, label)` is a row (entered with a jump): in the stream (read with POP, SP = the row) come the
pattern bytes plane by plane from b = 7, the groups ascending in even-numbered planes
(H walks up from the low page of group 0 to the high page of the last group) and descending
in odd ones (H walks back), so H is back where it started after the eight planes. It starts
at `label` with H = the low page of the first group, computes A:IY = 2^(P-1) c + sum_b 2^b sum_g T_g[s_bg]
(mod 2^24) for a row of P planes, and ends with `JP` to the address in label_end+1, which the caller
patches. c is the start value in the immediates of each entry's LD IY,nn / LD A,n (entry+2: low
word, entry+5: high byte), which the caller patches too (matvec: -2N, scores: 0).
B, C, D, E, L change.

`build_asm()` is `st_build`: A = groups (1..MAX_GROUPS), (st_src) = 8 int16 values per group
(zero-padded: st_x serves when x must be copied); it fills the tables of groups 0..A-1, and
per group g at st_n + 2g its N (16 bits); `st_build_page` does the same from the table whose
low page is (st_page). (Entries 0 and 255 of a table are N and N + the sum of its values.)
Each table is the sum of two 16-entry half tables (columns 0-3 and 4-7, each with its own
part of N): 256 entries at 44 T-states, written a row of 16 at a time by straight-line code
whose immediates hold the first half table. Registers, IX and IY included, change (AF' too).
"""
from __future__ import annotations

import numpy as np

from ..buffers import Spare, buffers_asm

TABLES = "mv_tab"
MAX_GROUPS = 4
TABLE_BYTES = 512 * MAX_GROUPS
PLANES = 8
ST_RECORD = 2            # bytes per group at st_n: N
_ROW_ENTRY = 10          # bytes of one entry of st_row (see build_asm)


def tables_asm() -> str:
    """The table space, page-aligned (it follows the G table, itself page-aligned)."""
    return ("        DEFS (256 - ($ & 255)) & 255   ; the subset-sum tables start on a page\n"
            f"{TABLES}:\n        DEFS {TABLE_BYTES}\n")


def plane_order(plane_index: int, groups: int) -> list[int]:
    """The groups in the order a row's code reads them in its plane_index-th plane (0 = bit 7)."""
    return list(range(groups)) if plane_index % 2 == 0 else list(reversed(range(groups)))


def patterns(u: np.ndarray) -> np.ndarray:
    """u: uint8 [rows, 8*groups] (offset-form weights) -> uint8 [rows, 8*groups]: each row's
    pattern bytes in the order planes_asm reads them (a row of fewer planes P is the last
    P*groups of them)."""
    rows, cols = u.shape
    groups = cols // 8
    bits = (u.reshape(rows, groups, 8)[:, :, None, :] >> np.arange(7, -1, -1)[None, None, :, None]) & 1
    bytes_ = (bits << np.arange(8)).sum(axis=3).astype(np.uint8)          # [rows, groups, plane]
    out = [bytes_[:, plane_order(p, groups), p] for p in range(PLANES)]
    return np.stack(out, axis=1).reshape(rows, groups * PLANES)


def table_values(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The 256 entries of one group's table and its N (for tests)."""
    n = int(-x[x < 0].sum())
    s = np.arange(256)
    bits = (s[:, None] >> np.arange(8)) & 1
    return n + bits @ x.astype(np.int64), n


def entry_planes(groups: int) -> tuple[int, ...]:
    """The plane counts a row of this many groups may start with (fewer planes need the
    stream's pairs to start on a plane: an even number of groups)."""
    return (8, 7, 6) if groups % 2 == 0 else (8,)


def planes_label(label: str, planes: int) -> str:
    return label if planes == PLANES else f"{label}_{planes}"


def planes_asm(groups: int, label: str) -> str:
    """The row code for `groups` groups (see the module docstring). planes_label(label, P)
    enters a row of the low P planes only (P in entry_planes): the H it needs is set there;
    at `label` (all eight planes) H is the caller's."""
    if not 1 <= groups <= MAX_GROUPS:
        raise ValueError(f"{groups} groups: the tables hold 1..{MAX_GROUPS}")
    lines = [f"{label}:", "LD IY,0", "LD A,0"]       # acc's start, patched by the caller
    inline = 7 in entry_planes(groups)      # the most common entry falls into its first plane
    read = 0
    for p in range(PLANES):
        if p:
            lines += ["ADD IY,IY", "ADC A,A"]             # acc = 2 * acc
            if p == 1 and inline:
                lines += [f"JR {label}_p1", f"{planes_label(label, 7)}:", "LD IY,0", "LD A,0",
                          f"LD H,({TABLES} >> 8) + {2 * groups - 1}"]
            lines.append(f"{label}_p{p}:")
        order = plane_order(p, groups)
        for i, _ in enumerate(order):
            if read % 2 == 0:
                lines.append("POP DE")
            reg = "E" if read % 2 == 0 else "D"
            read += 1
            step = [] if i == len(order) - 1 else ["INC H" if p % 2 == 0 else "DEC H"]
            if p % 2 == 0:
                lines += [f"LD L,{reg}", "LD C,(HL)", "INC H", "LD B,(HL)"] + step
            else:
                lines += [f"LD L,{reg}", "LD B,(HL)", "DEC H", "LD C,(HL)"] + step
            lines += ["ADD IY,BC", "ADC A,0"]
    lines.append(f"{label}_end:")
    lines.append("JP 0")
    for planes in entry_planes(groups)[1:]:
        if planes == 7 and inline:
            continue
        start = PLANES - planes
        lines += [f"{planes_label(label, planes)}:", "LD IY,0", "LD A,0"]
        if start % 2:               # a descending plane starts at the last group's high page
            lines.append(f"LD H,({TABLES} >> 8) + {2 * groups - 1}")
        lines.append(f"JP {label}_p{start}")
    return "".join(line + "\n" if line.endswith(":") else f"        {line}\n" for line in lines)


def _gray_half_asm(offset: int, keep_n: str, store) -> str:
    """HL runs through N + the subset sums of the 4 values at IX+offset in Gray-code order
    (one add or subtract per entry); keep_n is the code that keeps N (in HL), store(e) the
    code that keeps HL as entry e.
    x0 and x1 are held in BC and DE, x2 in SP (nothing is pushed meanwhile: interrupts are
    off), x3 in st_x3."""
    o = offset
    lines = ["LD (st_sp),SP", f"LD L,(IX+{o + 6})", f"LD H,(IX+{o + 7})", "LD (st_x3),HL",
             f"LD L,(IX+{o + 4})", f"LD H,(IX+{o + 5})", "LD SP,HL",
             f"LD C,(IX+{o})", f"LD B,(IX+{o + 1})", f"LD E,(IX+{o + 2})", f"LD D,(IX+{o + 3})",
             "LD HL,0"]                                     # the negative values' sum
    for k, (test, add) in enumerate([("BIT 7,B", ["ADD HL,BC"]), ("BIT 7,D", ["ADD HL,DE"]),
                                     (f"BIT 7,(IX+{o + 5})", ["ADD HL,SP"]),
                                     (f"BIT 7,(IX+{o + 7})", ["LD A,(st_x3)", "ADD A,L", "LD L,A",
                                                               "LD A,(st_x3+1)", "ADC A,H", "LD H,A"])]):
        skip = f"st_pos{o}_{k}"
        lines += [test, f"JR Z,{skip}"] + add + [f"{skip}:"]
    lines += ["XOR A", "SUB L", "LD L,A", "SBC A,A", "SUB H", "LD H,A"]     # N = minus that sum
    lines.append(keep_n)
    lines += store(0)
    gray = [i ^ (i >> 1) for i in range(16)]
    for i in range(1, 16):
        bit = (gray[i] ^ gray[i - 1]).bit_length() - 1
        adding = bool(gray[i] >> bit & 1)
        if bit == 3:                                        # only once, adding
            op = ["LD A,(st_x3)", "ADD A,L", "LD L,A", "LD A,(st_x3+1)", "ADC A,H", "LD H,A"]
        else:
            reg = ("BC", "DE", "SP")[bit]
            op = [f"ADD HL,{reg}"] if adding else ["OR A", f"SBC HL,{reg}"]
        lines += op + store(gray[i])
    lines.append("LD SP,(st_sp)")
    return "".join(line + "\n" if line.endswith(":") else f"        {line}\n" for line in lines)


def build_asm(spare: Spare = None) -> str:
    """st_build and its variables (st_x may take spare RAM: buffers.py)."""
    entry = ("        LD A,0\n        ADD A,C\n        LD (HL),A\n        LD A,0\n        ADC A,B\n"
             "        LD (DE),A\n        INC L\n        INC E\n")
    outer = "".join(f"        LD BC,0\n        CALL st_row\n" for _ in range(16))

    def to_row(e):          # first half table: into st_row's immediates
        return ["LD A,L", f"LD (st_row+{_ROW_ENTRY * e + 1}),A", "LD A,H", f"LD (st_row+{_ROW_ENTRY * e + 5}),A"]

    def to_outer(e):        # second half table: into st_outer's LD BC immediates
        return [f"LD (st_outer+{6 * e + 1}),HL"]

    return f"""
; ---- subset-sum tables (targets/z80/ops/subsets.py) ----
st_build:                               ; A = groups, (st_src) = their values
        LD HL,st_page
        LD (HL),{TABLES} >> 8
st_build_page:                          ; the same from the table at page (st_page)
        LD (st_groups),A
        LD IX,(st_src)
        LD IY,st_n
st_group:
{_gray_half_asm(0, "LD (st_na),HL", to_row)}{_gray_half_asm(8, "LD (st_nb),HL", to_outer)}        LD HL,(st_na)                   ; the group's N
        LD DE,(st_nb)
        ADD HL,DE
        LD (IY+0),L
        LD (IY+1),H
        LD A,(st_page)
        LD H,A
        INC A
        LD D,A
        INC A
        LD (st_page),A
        LD L,0
        LD E,L
        CALL st_outer
        LD BC,16
        ADD IX,BC
        LD BC,{ST_RECORD}
        ADD IY,BC
        LD HL,st_groups
        DEC (HL)
        JP NZ,st_group
        RET

st_outer:                               ; rows n2 = 0..15: st_row with BC = the second half's entry n2
{outer}        RET

st_row:                                 ; 16 entries: HL = low bytes, DE = high bytes, BC = st_hb[n2]
{entry * 16}        RET

{buffers_asm([("st_x", 16 * MAX_GROUPS)], spare)[0]}st_src: DEFW st_x
st_n: DEFS {ST_RECORD * MAX_GROUPS}                 ; per group: N (2 bytes)
st_na: DEFW 0
st_nb: DEFW 0
st_x3: DEFW 0
st_sp: DEFW 0
st_page: DEFB 0
st_groups: DEFB 0
"""
