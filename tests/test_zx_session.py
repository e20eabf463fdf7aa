"""ChatSession and `soulc run` against a stand-in soul that follows the chat loop's screen protocol."""
import math
import re

import pytest
from conftest import run_soulc

from soulc.errors import SoulcError
from soulc.run import run_tape
from soulc.targets.z80.assembler import assemble
from soulc.targets.zx.io import spectrum_io_asm
from soulc.targets.zx.session import BLIP_GAP, ChatSession, SpectrumTimeout, _Beeper
from soulc.targets.zx.tap import make_tap

# Replies with the typed line, '#' and '@' dropped (outside its "vocabulary"), REPEATS
# times over; each "token" is up to 3 characters, computed by THINK_LOOPS x 256 DJNZs.
# Nothing left of the line: no ZX> line, as the chat loop does.
STANDIN = """
        ORG 32768
start:  CALL io_init
        LD HL,title
        CALL print_str
prompt: LD HL,you
        CALL print_str
        LD HL,line
        LD B,64
        CALL io_read_line
        CALL io_newline
        LD HL,line
        LD DE,kept
        LD C,0
filter: LD A,(HL)
        INC HL
        OR A
        JR Z,filtered
        CP '#'
        JR Z,filter
        CP '@'
        JR Z,filter
        LD (DE),A
        INC DE
        INC C
        JR filter
filtered:
        LD A,C
        OR A
        JR Z,prompt
        LD (count),A
        LD HL,zx
        CALL print_str
        LD E,REPEATS
        LD C,0                  ; position, for the border
again:  LD HL,kept
        LD A,(count)
        LD B,A                  ; characters left in this repeat
token:  LD A,C
        CALL io_thinking
        CALL think
        LD D,3
tchar:  LD A,(HL)
        INC HL
        CALL io_print_char
        DEC B
        JR Z,repeat
        DEC D
        JR NZ,tchar
        CALL io_token_done
        INC C
        JR token
repeat: CALL io_token_done
        INC C
        DEC E
        JR NZ,again
        CALL io_reply_done
        CALL io_newline
        JP prompt

think:  PUSH BC
        LD C,THINK_LOOPS
think1: LD B,0
think2: DJNZ think2
        DEC C
        JR NZ,think1
        POP BC
        RET

print_str:
        LD A,(HL)
        OR A
        RET Z
        CALL io_print_char
        INC HL
        JR print_str

title:  DEFB "stand-in soul",13,0
you:    DEFB "YOU> ",0
zx:     DEFB "ZX> ",0
count:  DEFB 0
line:   DEFS 65
kept:   DEFS 65
"""

DELETE = "CS+0"


def standin_tap(think_loops=20, repeats=1, source=STANDIN):
    program = assemble(f"THINK_LOOPS EQU {think_loops}\nREPEATS EQU {repeats}\n" + source + spectrum_io_asm())
    return make_tap("standin", [(program.origin, program.code)], entry=program.symbols["start"],
                    clear=program.origin - 1)


def tokens_for(text, repeats=1):
    return repeats * math.ceil(len(text) / 3)


@pytest.fixture(scope="module")
def tap():
    return standin_tap()


@pytest.fixture
def session(tap):
    return ChatSession.load(tap)


@pytest.mark.parametrize("machine", ["48", "128"])
def test_prompt_round_trip(tap, machine):
    session = ChatSession.load(tap, machine)
    assert session.screen()[:2] == ["stand-in soul", "YOU>"]
    reply = session.ask("Hello, World!")
    assert reply.prompt == "Hello, World!"
    assert reply.text == "Hello, World!"
    assert session.screen()[1:4] == ["YOU> Hello, World!", "ZX> Hello, World!", "YOU>"]
    # 5 tokens of ~66,600 T-states thinking, 3 RST 16s and a 24-OUT blip each
    assert reply.tokens == 5
    assert 70_000 < reply.tstates_per_token < 110_000


def test_tokens_are_counted_from_blips(session):
    for text in ["a", "abc", "abcd", "the quick brown fox"]:
        reply = session.ask(text)
        assert reply.text == text
        assert reply.tokens == tokens_for(text)
        assert len(reply.blip_tstates) == reply.tokens
        assert all(b - a > 66_000 for a, b in zip(reply.blip_tstates, reply.blip_tstates[1:]))
        assert reply.blip_tstates[-1] < reply.tstates


def test_toggles_group_into_blips():
    beeper = _Beeper()
    t = 1000
    for blip in range(3):
        for i in range(24):
            beeper.write(t, 0xFE, 7 | (0x10 if i % 2 == 0 else 0))
            t += 520
        beeper.write(t, 0xFE, 2)        # a border change: no toggle
        beeper.write(t, 0x7FFD, 0x10)   # not the ULA
        t += BLIP_GAP + 1
    assert len(beeper.toggles) == 72
    assert beeper.blips_since(1000) == [1000, 1000 + 24 * 520 + BLIP_GAP + 1, 1000 + 2 * (24 * 520 + BLIP_GAP + 1)]
    assert len(beeper.blips_since(2000)) == 3  # a blip's later toggles still start one


def test_empty_prompt_gives_no_reply(session):
    for prompt in ["", "#@#", "@"]:
        reply = session.ask(prompt)
        assert reply.text is None
        assert reply.tokens == 0
        assert reply.tstates < 70_000
    assert session.ask("ok").text == "ok"
    assert session.screen()[1:] == ["YOU>", "YOU> #@#", "YOU> @", "YOU> ok", "ZX> ok", "YOU>"] + [""] * 17


def test_trailing_spaces_are_invisible(session):
    reply = session.ask("ab  ")
    assert (reply.prompt, reply.text, reply.tokens) == ("ab", "ab", 2)


def test_scrolling_over_many_exchanges(session):
    replies = []
    for i in range(16):
        prompt = f"line {i}:" + "z" * (3 * i)  # one to three screen lines each
        reply = session.ask(prompt)
        assert (reply.prompt, reply.text, reply.tokens) == (prompt, prompt, tokens_for(prompt))
        replies.append(reply)
        if i % 4 == 0:
            assert session.ask("").text is None
    screen = session.screen()
    assert screen[21] == "YOU>" and screen[22:] == ["", ""]  # the ROM scrolls at row 21
    assert screen[0] != "stand-in soul"


def test_reply_longer_than_the_screen(tap):
    session = ChatSession.load(standin_tap(think_loops=2, repeats=12))
    prompt = "0123456789" * 6
    reply = session.ask(prompt)
    assert reply.prompt == prompt
    assert reply.text == prompt * 12  # 24 lines: the first ones were kept as they scrolled off
    assert reply.tokens == tokens_for(prompt, repeats=12)
    assert session.screen()[21] == "YOU>"


def test_line_is_bounded_to_64_characters(session):
    reply = session.ask("x" * 70)
    assert reply.prompt == reply.text == "x" * 64


def test_delete(session):
    reply = session.ask_raw(["h", "e", "x", DELETE, "l", "l", "o"])
    assert reply.prompt == reply.text == "hello"
    reply = session.ask_raw([DELETE, DELETE, "o", "k", DELETE, DELETE, DELETE, "n", "o"])
    assert reply.prompt == reply.text == "no"
    assert session.ask_raw(["a", DELETE]).text is None


def test_delete_back_over_a_wrapped_line(session):
    typed = "a" * 27 + "bc"  # "YOU> " and 27 characters fill the first line
    reply = session.ask_raw(list(typed) + [DELETE, DELETE, "d"])
    assert reply.prompt == reply.text == "a" * 27 + "d"


def test_shift_keys(session):
    reply = session.ask_raw([{"CS", "h"}, "i", "SS+p", "CS+SS", "SS+a", "CS+1", "SS+CS"])
    assert reply.prompt == reply.text == 'Hi"'  # extend mode, STOP, EDIT: not characters


def test_ask_raw_refuses_enter(session):
    with pytest.raises(ValueError):
        session.ask_raw(["a", "ENTER", "b"])


def test_timeout_shows_the_screen(tap):
    session = ChatSession.load(tap, reply_budget=100_000)
    with pytest.raises(SpectrumTimeout, match=r"(?s)did not come back.*screen:.*\|ZX> abc$"):
        session.ask("abcdefghijkl")


def test_run_tape_output(tap, tmp_path, capsys):
    path = tmp_path / "standin.tap"
    path.write_bytes(tap)
    assert run_tape(str(path), ["hi there", "#"], None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["YOU> hi there", "ZX> hi there", lines[2]]
    assert re.fullmatch(r"3 tokens, \d+ T-states/token \(contended\)", lines[2])
    assert lines[3:5] == ["YOU> #", "(no reply: nothing in the prompt is in the vocabulary)"]
    assert re.fullmatch(r"0 tokens, \d+ T-states \(contended\)", lines[5])
    assert re.fullmatch(r"mean: \d+ T-states/token over 3 tokens \(contended\)", lines[6])
    assert len(lines) == 7


def test_soulc_run_command(tap, tmp_path):
    path = tmp_path / "standin.tap"
    path.write_bytes(tap)
    result = run_soulc("run", path, "--prompt", "Hello!", "--prompt", "", "--prompt", "bye", "--machine", "128")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0:2] == ["YOU> Hello!", "ZX> Hello!"]
    assert re.fullmatch(r"2 tokens, \d+ T-states/token \(contended\)", lines[2])
    assert lines[3:6] == ["YOU> ", "(no reply: nothing in the prompt is in the vocabulary)", lines[5]]
    assert lines[6:8] == ["YOU> bye", "ZX> bye"]
    assert re.fullmatch(r"1 token, \d+ T-states/token \(contended\)", lines[8])
    per_token = [int(re.match(r"\d+ tokens?, (\d+)", lines[i]).group(1)) for i in (2, 8)]
    mean = int(re.fullmatch(r"mean: (\d+) T-states/token over 3 tokens \(contended\)", lines[9]).group(1))
    assert min(per_token) <= mean <= max(per_token)


NEVER_PROMPTS = """
        ORG 32768
start:  CALL io_init
        LD A,'?'
        CALL io_print_char
spin:   JR spin
"""


@pytest.mark.parametrize("content, message", [
    (None, "cannot read .*missing.tap"),
    (b"not a tape at all", "bad TAP file"),
    (b"", "no BASIC loader"),
    ("never", r"never showed the 'YOU> ' prompt .*ends with '\?'"),
])
def test_soulc_run_bad_input(tmp_path, content, message):
    path = tmp_path / "missing.tap"
    if content == "never":
        content = standin_tap(source=NEVER_PROMPTS)
    if content is not None:
        path.write_bytes(content)
    result = run_soulc("run", path, "--prompt", "hi")
    assert result.returncode == 2
    assert re.fullmatch(f"soulc: error: .*{message}.*\n", result.stderr)
    assert result.stdout == ""


def test_run_tape_refuses_untypable_prompts(tap, tmp_path):
    path = tmp_path / "standin.tap"
    path.write_bytes(tap)
    with pytest.raises(SoulcError, match="cannot type 'é'"):
        run_tape(str(path), ["café"], "48")
    with pytest.raises(SoulcError, match="at least one --prompt"):
        run_tape(str(path), [], "48")


def test_pure_python_simulator_fallback(tap, monkeypatch):
    from soulc.targets.zx import emulator

    monkeypatch.setattr(emulator, "CCMIOSimulator", None)  # as when skoolkit's C extension is missing
    session = ChatSession.load(tap)
    assert type(session.spectrum.simulator).__name__ == "CMIOSimulator"
    reply = session.ask("hey")
    assert (reply.text, reply.tokens) == ("hey", 1)
