import pytest
from skoolkit.basic import BasicLister

from soulc.errors import SoulcError
from soulc.targets.zx.tap import (CODE, PROGRAM, code_blocks, make_tap, read_blocks, read_tap,
                                  tap_block, usr_address)

PROG_START = 23755


def list_basic(program: bytes) -> str:
    """The program as skoolkit's BASIC lister prints it from a 48K memory image."""
    memory = [0] * 65536
    memory[PROG_START:PROG_START + len(program)] = program
    variables = PROG_START + len(program)
    memory[23635:23637] = PROG_START.to_bytes(2, "little")  # PROG
    memory[23627:23629] = variables.to_bytes(2, "little")  # VARS
    memory[variables] = 0x80  # end of variables
    return BasicLister().list_basic(memory).strip()


def test_tap_has_loader_then_code_files():
    tap = make_tap("soul", [(32768, b"\x3e\x02\xc9"), (40000, b"\x01\x02")], entry=32768, clear=32767)
    files = read_tap(tap)
    assert [(f.kind, f.name) for f in files] == [(PROGRAM, "soul"), (CODE, "soul"), (CODE, "soul")]
    loader = files[0]
    assert loader.param1 == 10  # autostart line
    assert loader.param2 == len(loader.data)
    assert list_basic(loader.data) == '10 CLEAR 32767: LOAD ""CODE : LOAD ""CODE : RANDOMIZE USR 32768'
    assert usr_address(loader.data) == 32768
    assert code_blocks(tap) == [(32768, b"\x3e\x02\xc9"), (40000, b"\x01\x02")]
    assert files[1].param2 == 32768


def test_blocks_have_flags_and_checksums():
    tap = make_tap("x", [(30000, bytes(range(256)))], entry=30000, clear=29999)
    blocks = read_blocks(tap)
    assert [flag for flag, _ in blocks] == [0x00, 0xFF, 0x00, 0xFF]
    assert blocks[3][1] == bytes(range(256))
    # a raw block: length, flag, payload, xor of flag and payload
    assert tap_block(0xFF, b"\x01\x02") == bytes([4, 0, 0xFF, 1, 2, 0xFF ^ 1 ^ 2])


def test_corrupt_tap_is_rejected():
    tap = bytearray(make_tap("x", [(30000, b"abc")], entry=30000, clear=29999))
    tap[-2] ^= 1
    with pytest.raises(SoulcError, match="bad checksum"):
        read_tap(bytes(tap))
    with pytest.raises(SoulcError, match="bad TAP"):
        read_tap(bytes(tap[:-1]))


@pytest.mark.parametrize("blocks, entry, clear, message", [
    ([], 32768, 32767, "at least one"),
    ([(32768, b"a")], 32768, 40000, "not above CLEAR"),
    ([(32768, b"ab"), (32769, b"c")], 32768, 32767, "overlap"),
    ([(65535, b"ab")], 65535, 32767, "past 65535"),
    ([(32768, b"a")], 100, 32767, "not in RAM"),
    ([(32768, b"a")], 32768, 100, "CLEAR address"),
])
def test_bad_layouts_are_rejected(blocks, entry, clear, message):
    with pytest.raises(SoulcError, match=message):
        make_tap("x", blocks, entry, clear)


def test_usr_address_ignores_strings_and_missing_usr():
    line = b'\x00\x0a\x06\x00\xef"\xc0"\xaf\x0d'  # 10 LOAD "<USR>"CODE
    assert usr_address(line) is None
