"""TAP files: the byte stream of ROM-format tape blocks that Spectrum emulators load.

Each TAP block is a 2-byte little-endian length, then the block as the ROM
saves it: a flag byte (0 for a header, 255 for data), the payload, and an XOR
checksum of flag and payload. A header's payload is 17 bytes: type (0 program,
3 code), a 10-character name, the data length and two parameters (program:
autostart line and program length; code: load address and 32768).

`make_tap` writes a BASIC loader, `10 CLEAR c: LOAD ""CODE: ...: RANDOMIZE USR e`,
followed by one header + data pair per code block, loaded in order, and then
any headerless data blocks that the program loads itself (a 128K soul's memory
banks, see bank_loader.py). Reading uses skoolkit's tape parser and checks
what it finds.

Where a soul's chat starts: its first code block begins with the chat loop's
entry. A 48K tape's USR calls it; a tape with headerless blocks calls its
bank loader, which jumps there when the banks are loaded (`start_address`).
"""

from dataclasses import dataclass
from typing import Sequence

from skoolkit.tape import parse_tap

from soulc.errors import SoulcError

PROGRAM = 0
CODE = 3
HEADERLESS = -1  # a data block with no header before it: loaded by the program, not by LOAD
HEADER_FLAG = 0x00
DATA_FLAG = 0xFF
LOADER_LINE = 10
LOWEST_CLEAR = 24000  # comfortably above the loader program and BASIC's work space
CODE_PARAM2 = 32768

# BASIC tokens and characters used in the loader
_CLEAR, _LOAD, _CODE, _RANDOMIZE, _USR = 0xFD, 0xEF, 0xAF, 0xF9, 0xC0
_QUOTE, _COLON, _ENTER, _NUMBER = 0x22, 0x3A, 0x0D, 0x0E


@dataclass(frozen=True)
class TapeFile:
    """A header block and the data block after it, as LOAD sees them."""
    kind: int  # PROGRAM or CODE (1 and 2 are arrays)
    name: str
    param1: int  # program: autostart line (>= 32768: none); code: load address
    param2: int  # program: length without variables; code: 32768
    data: bytes

    @property
    def address(self) -> int:
        return self.param1


def checksum(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def tap_block(flag: int, payload: bytes) -> bytes:
    block = bytes([flag]) + payload
    block += bytes([checksum(block)])
    return len(block).to_bytes(2, "little") + block


def header(kind: int, name: str, length: int, param1: int, param2: int) -> bytes:
    if not name.isascii() or not name.isprintable():
        raise SoulcError(f"tape name must be printable ASCII: {name!r}")
    payload = (bytes([kind]) + name[:10].ljust(10).encode("ascii")
               + length.to_bytes(2, "little") + param1.to_bytes(2, "little") + param2.to_bytes(2, "little"))
    return tap_block(HEADER_FLAG, payload)


def basic_number(value: int) -> bytes:
    """A number as BASIC stores it in a line: its digits, then 0x0E and the 5-byte small-integer form."""
    if not 0 <= value <= 65535:
        raise SoulcError(f"number out of range for the BASIC loader: {value}")
    return str(value).encode("ascii") + bytes([_NUMBER, 0, 0, value & 0xFF, value >> 8, 0])


def basic_line(number: int, body: bytes) -> bytes:
    body += bytes([_ENTER])
    return number.to_bytes(2, "big") + len(body).to_bytes(2, "little") + body


def loader_program(clear: int, entry: int, code_blocks: int) -> bytes:
    """`10 CLEAR clear: LOAD ""CODE (once per block): RANDOMIZE USR entry`."""
    body = bytes([_CLEAR]) + basic_number(clear)
    for _ in range(code_blocks):
        body += bytes([_COLON, _LOAD, _QUOTE, _QUOTE, _CODE])
    body += bytes([_COLON, _RANDOMIZE, _USR]) + basic_number(entry)
    return basic_line(LOADER_LINE, body)


def make_tap(name: str, blocks: Sequence[tuple[int, bytes]], entry: int, clear: int,
             headerless: Sequence[bytes] = ()) -> bytes:
    """A TAP that auto-runs a BASIC loader, loads each (address, data) block, then calls `entry`.

    `clear` is the CLEAR address (new RAMTOP): the machine stack sits just below
    it, so every block must load above it. The `headerless` data blocks follow,
    for the program to load.
    """
    if not blocks:
        raise SoulcError("a tape needs at least one code block")
    if not LOWEST_CLEAR <= clear < 65535:
        raise SoulcError(f"CLEAR address {clear} outside {LOWEST_CLEAR}..65534")
    if not 0x4000 <= entry <= 0xFFFF:
        raise SoulcError(f"entry address {entry} is not in RAM")
    spans = sorted((address, address + len(data)) for address, data in blocks)
    for (start, end), (next_start, _) in zip(spans, spans[1:]):
        if end > next_start:
            raise SoulcError(f"code blocks overlap at {next_start}")
    for start, end in spans:
        if start <= clear:
            raise SoulcError(f"code block at {start} is not above CLEAR {clear}")
        if end > 0x10000 or end == start:
            raise SoulcError(f"code block at {start} is empty or runs past 65535")
    program = loader_program(clear, entry, len(blocks))
    tape = header(PROGRAM, name, len(program), LOADER_LINE, len(program)) + tap_block(DATA_FLAG, program)
    for address, data in blocks:
        tape += header(CODE, name, len(data), address, CODE_PARAM2) + tap_block(DATA_FLAG, bytes(data))
    for data in headerless:
        if not 0 < len(data) <= 0xFFFF:
            raise SoulcError(f"a headerless block of {len(data)} bytes")
        tape += tap_block(DATA_FLAG, bytes(data))
    return tape


def read_blocks(tap: bytes) -> list[tuple[int, bytes]]:
    """The raw blocks of a TAP as (flag, payload), checksums verified."""
    tape = parse_tap(bytearray(tap))
    if tape.warnings:
        raise SoulcError(f"bad TAP file: {'; '.join(tape.warnings)}")
    blocks = []
    for block in tape.blocks:
        data = bytes(block.data)
        if len(data) < 2:
            raise SoulcError(f"TAP block {block.number} is too short")
        if checksum(data) != 0:
            raise SoulcError(f"TAP block {block.number} has a bad checksum")
        blocks.append((data[0], data[1:-1]))
    return blocks


def read_tap(tap: bytes) -> list[TapeFile]:
    """The files on a TAP (each header paired with the data block after it); a data block
    where a header would be, after the first file, is a HEADERLESS file (no name, parameters 0)."""
    files = []
    blocks = read_blocks(tap)
    i = 0
    while i < len(blocks):
        flag, payload = blocks[i]
        if flag == DATA_FLAG and files:
            files.append(TapeFile(HEADERLESS, "", 0, 0, payload))
            i += 1
            continue
        if flag != HEADER_FLAG or len(payload) != 17:
            raise SoulcError(f"TAP block {i + 1} is not a header")
        if i + 1 >= len(blocks) or blocks[i + 1][0] != DATA_FLAG:
            raise SoulcError(f"TAP header {i + 1} has no data block after it")
        data = blocks[i + 1][1]
        length = int.from_bytes(payload[11:13], "little")
        if length != len(data):
            raise SoulcError(f"TAP header {i + 1} says {length} bytes, data block has {len(data)}")
        files.append(TapeFile(
            kind=payload[0],
            name=payload[1:11].decode("latin-1").rstrip(),
            param1=int.from_bytes(payload[13:15], "little"),
            param2=int.from_bytes(payload[15:17], "little"),
            data=data,
        ))
        i += 2
    return files


def code_blocks(tap: bytes) -> list[tuple[int, bytes]]:
    """The (address, data) of every CODE file on a TAP, in tape order."""
    return [(f.address, f.data) for f in read_tap(tap) if f.kind == CODE]


def usr_address(program: bytes) -> int | None:
    """The address after the first USR in a BASIC program (None if there is none).

    Reads the 5-byte number BASIC keeps after the digits, so it works for
    `USR 32768` but not `USR VAL "32768"`.
    """
    i = 0
    while i + 4 <= len(program):
        length = int.from_bytes(program[i + 2:i + 4], "little")
        line = program[i + 4:i + 4 + length]
        j = 0
        while j < len(line):
            if line[j] == _NUMBER:
                j += 6  # skip the hidden number
                continue
            if line[j] == _QUOTE:
                j = line.find(_QUOTE, j + 1) + 1 or len(line)
                continue
            if line[j] == _USR:
                k = line.find(_NUMBER, j)
                if k < 0 or k + 5 >= len(line) or line[k + 1:k + 3] != b"\x00\x00":
                    return None
                return line[k + 3] | line[k + 4] << 8
            j += 1
        i += 4 + length
    return None


def start_address(tap: bytes) -> int | None:
    """Where a soul's chat starts (see the module docstring): None if the tape has no BASIC
    loader with a USR."""
    files = read_tap(tap)
    programs = [f for f in files if f.kind == PROGRAM]
    usr = usr_address(programs[0].data) if programs else None
    if usr is None or not any(f.kind == HEADERLESS for f in files):
        return usr
    return next((f.address for f in files if f.kind == CODE), None)


def loads_banks(tap: bytes) -> bool:
    """Does the tape's program load headerless blocks itself (a 128K soul's memory banks)?"""
    return any(f.kind == HEADERLESS for f in read_tap(tap))
