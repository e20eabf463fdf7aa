import pytest
from skoolkit import ROM48, read_bin_file

from soulc.targets.z80.assembler import assemble
from soulc.targets.zx.emulator import Spectrum, SpectrumTimeout, decode_screen, key_combinations
from soulc.targets.zx.tap import make_tap

SECOND = 3_500_000  # T-states

ECHO = """\
; Prompt, read a line with the ROM's keyboard interrupt, echo it back.
LAST_K  EQU 23560
CHAN_OPEN EQU 0x1601
        ORG 32768
start:  LD A,2
        CALL CHAN_OPEN      ; print to the upper screen
prompt: LD HL,you
        CALL print
        LD HL,buffer
        LD B,0              ; characters in the buffer
key:    SET 3,(IY+1)        ; FLAGS: L mode, so letters are letters
        RES 5,(IY+1)        ; FLAGS: no new key yet
wait:   HALT                ; the ROM reads the keyboard at each interrupt
        BIT 5,(IY+1)
        JR Z,wait
        LD A,(LAST_K)
        CP 13
        JR Z,line
        CP 32
        JR C,key            ; ignore control keys
        LD C,A
        LD A,B
        CP 30
        JR NC,key           ; buffer full
        LD (HL),C
        INC HL
        INC B
        LD A,C
        PUSH HL
        PUSH BC
        RST 16              ; echo the key
        POP BC
        POP HL
        JR key
line:   LD (HL),0
        LD A,13
        RST 16
        LD HL,buffer
        CALL print
        LD A,13
        RST 16
        JR prompt
print:  LD A,(HL)           ; print the zero-terminated string at HL
        OR A
        RET Z
        PUSH HL
        RST 16
        POP HL
        INC HL
        JR print
you:    DEFB "YOU> ", 0
buffer: DEFS 32
"""


@pytest.fixture(scope="module")
def echo():
    program = assemble(ECHO)
    tap = make_tap("soul", [(program.origin, program.code)], entry=program.symbols["start"],
                   clear=program.origin - 1)
    return tap, program.symbols


def rows(spectrum):
    return [line.rstrip() for line in spectrum.screen_text()]


@pytest.mark.parametrize("machine", ["48", "128"])
def test_typed_line_is_echoed(echo, machine):
    tap, _ = echo
    spectrum = Spectrum.load_tap(tap, machine)
    assert spectrum.pc == 32768  # stopped as RANDOMIZE USR started the program
    prompt = spectrum.wait_for_text(r"^YOU> ", 2 * SECOND)
    spectrum.type_line("hello")
    answer = spectrum.wait_for_text(r"^hello *$", 2 * SECOND)
    screen = rows(spectrum)
    assert screen[prompt] == "YOU> hello"
    assert answer == prompt + 1
    assert screen[answer + 1] == "YOU>"


def test_capitals_and_symbols(echo):
    tap, _ = echo
    spectrum = Spectrum.load_tap(tap)
    spectrum.wait_for_text(r"^YOU> ", 2 * SECOND)
    spectrum.type_line("Hi? Yes! (a+b)*2=c, 1.5<x;")
    spectrum.wait_for_text(r"^Hi\? Yes! \(a\+b\)\*2=c, 1\.5<x; *$", 2 * SECOND)


def test_repeated_keys_are_typed_each_time(echo):
    tap, _ = echo
    spectrum = Spectrum.load_tap(tap)
    spectrum.wait_for_text(r"^YOU> ", 2 * SECOND)
    spectrum.type_line("aaa  bbb")
    spectrum.wait_for_text(r"^aaa  bbb *$", 2 * SECOND)


def test_run_until_pc_and_time_budget(echo):
    tap, symbols = echo
    spectrum = Spectrum.load_tap(tap)
    start = spectrum.tstates
    spectrum.run_until(symbols["wait"], SECOND)
    assert spectrum.pc == symbols["wait"]
    assert spectrum.tstates > start
    with pytest.raises(SpectrumTimeout, match="screen:"):
        spectrum.wait_for_text("never shown", SECOND // 10)
    with pytest.raises(SpectrumTimeout):
        spectrum.run_until(symbols["line"], SECOND // 10)  # no ENTER typed


def test_decode_screen_reads_rom_characters_in_the_interleaved_layout():
    rom = read_bin_file(ROM48, 0x4000)
    display = bytearray(6144)
    text = {0: "Hello, World!", 9: "  x=1?", 23: "£©"}
    for row, line in text.items():
        for column, char in enumerate(line):
            code = {"£": 0x60, "©": 0x7F}.get(char, ord(char))
            glyph = rom[0x3D00 + 8 * (code - 32):0x3D00 + 8 * (code - 31)]
            for k in range(8):
                display[((row & 0x18) << 8) + (k << 8) + ((row & 7) << 5) + column] = glyph[k]
    display[0x1000 + 31] = 0x55  # a cell that is no character (row 16, column 31)
    screen = decode_screen(bytes(display))
    assert len(screen) == 24 and all(len(line) == 32 for line in screen)
    assert {row: screen[row].rstrip() for row in text} == text
    assert screen[16][31] == "\ufffd"


def test_key_combinations_use_shifts():
    assert key_combinations("aA?\n ") == [frozenset({"a"}), frozenset({"CS", "a"}), frozenset({"SS", "c"}),
                                          frozenset({"ENTER"}), frozenset({"SPACE"})]
    with pytest.raises(ValueError):
        key_combinations("é")


def test_loading_every_tape_pulse_without_fast_load(echo):
    tap, _ = echo
    spectrum = Spectrum.load_tap(tap, "48", fast_load=False)
    assert spectrum.pc == 32768
    spectrum.wait_for_text(r"^YOU> ", 2 * SECOND)


def test_pure_python_simulator_fallback(echo, monkeypatch):
    from soulc.targets.zx import emulator

    monkeypatch.setattr(emulator, "CCMIOSimulator", None)  # as when skoolkit's C extension is missing
    tap, _ = echo
    spectrum = Spectrum.load_tap(tap)
    assert type(spectrum.simulator).__name__ == "CMIOSimulator"
    spectrum.wait_for_text(r"^YOU> ", 2 * SECOND)
    spectrum.type_line("Ok!")
    spectrum.wait_for_text(r"^Ok! *$", 2 * SECOND)
