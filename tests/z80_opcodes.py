"""Every documented Z80 instruction as bytes, written out as text by skoolkit's
disassembler: a source for round-trip and pasmo comparison tests."""

from skoolkit.traceutils import disassemble

ORIGIN = 0x8000
_OPERANDS = (0x05, 0x12, 0x34)  # filler for offsets/immediates/addresses

# ED xx that are documented (ED 63/6B are the long forms of LD (nn),HL / LD HL,(nn),
# which assemblers never produce).
_ED_DOCUMENTED = (
    [0x40 + 8 * r for r in range(8) if r != 6]          # IN r,(C)
    + [0x41 + 8 * r for r in range(8) if r != 6]        # OUT (C),r
    + [0x42, 0x52, 0x62, 0x72, 0x4A, 0x5A, 0x6A, 0x7A]  # SBC/ADC HL,rr
    + [0x43, 0x53, 0x73, 0x4B, 0x5B, 0x7B]              # LD (nn),rr / LD rr,(nn)
    + [0x44, 0x45, 0x4D, 0x46, 0x56, 0x5E, 0x47, 0x4F, 0x57, 0x5F, 0x67, 0x6F]
    + [0xA0, 0xA1, 0xA2, 0xA3, 0xA8, 0xA9, 0xAA, 0xAB]
    + [0xB0, 0xB1, 0xB2, 0xB3, 0xB8, 0xB9, 0xBA, 0xBB]
)
# DD xx / FD xx that use IX/IY as a whole register or (IX+d)
_INDEX_DOCUMENTED = (
    [0x09, 0x19, 0x29, 0x39, 0x21, 0x22, 0x2A, 0x23, 0x2B, 0x34, 0x35, 0x36]
    + [0x46 + 8 * r for r in range(8) if r != 6]        # LD r,(IX+d)
    + [0x70 + r for r in range(8) if r != 6]            # LD (IX+d),r
    + [0x86 + 8 * op for op in range(8)]                # ADD/ADC/.../CP (IX+d)
    + [0xE1, 0xE3, 0xE5, 0xE9, 0xF9]
)


def documented_instructions() -> list[bytes]:
    codes = [bytes([op]) for op in range(256) if op not in (0xCB, 0xED, 0xDD, 0xFD)]
    codes += [bytes([0xCB, op]) for op in range(256) if not 0x30 <= op <= 0x37]  # no SLL
    codes += [bytes([0xED, op]) for op in _ED_DOCUMENTED]
    for prefix in (0xDD, 0xFD):
        codes += [bytes([prefix, op]) for op in _INDEX_DOCUMENTED]
        codes += [bytes([prefix, 0xCB, 0x05, op]) for op in range(256) if op & 7 == 6 and op != 0x36]
    return codes


def listing() -> tuple[str, bytes]:
    """Assembly source for all documented instructions (ORG included) and its expected bytes."""
    memory = [0] * 0x10000
    lines = [f"        ORG ${ORIGIN:04X}"]
    expected = bytearray()
    for code in documented_instructions():
        address = ORIGIN + len(expected)
        full = bytearray(code)
        # pad with operand bytes (for DDCB the displacement is already in place)
        memory[address:address + 4] = list(full) + list(_OPERANDS[:4 - len(full)])
        text, length = disassemble(memory, address)
        expected += bytes(memory[address:address + length])
        lines.append(f"        {text}")
    return "\n".join(lines) + "\n", bytes(expected)
