"""Hostile typing on the emulated 48K: the seed soul keeps chatting, and stays exact.

One Spectrum runs the whole module, so every line below is typed after all the ones before
it. After each line the program must be back at `YOU> `, its reply must be exactly the host's
reply (text, beeper tokens, token ids in chat_seq) for the characters the Spectrum accepted,
and a normal prompt must still get the seed's recorded reply.

What the Spectrum accepted is derived from the screen: the echoed line after `YOU> `, with the
Spectrum's pound sign (character 0x60 in its font) read as '`', the ASCII code the key gives.
Trailing spaces do not show on a screen, so the echo is checked against the chat loop's line
buffer (`chat_line`, 0-terminated), which has them.
"""
import pytest

from soulc.diff_zx48 import chat_sequence, compile_zx48
from soulc.ir.chat import respond
from soulc.targets.z80.chatloop import MAX_LINE
from soulc.targets.zx.emulator import key_combinations
from soulc.targets.zx.session import ChatSession

DELETE = "CS+0"
KEYS = list("1234567890") + ["SPACE"] + list("abcdefghijklmnopqrstuvwxyz")  # every key but ENTER, CS, SS


@pytest.fixture(scope="module")
def seed_zx(seed_program):
    return seed_program, compile_zx48(seed_program)


@pytest.fixture(scope="module")
def session(seed_zx):
    _, zx = seed_zx
    return ChatSession.load(zx.tap, "48")


def accepted_line(session, zx) -> str:
    raw = session.spectrum.peek(zx.symbols["chat_line"], MAX_LINE + 1)
    return raw[: raw.index(0)].decode("ascii")


def host_input(echoed: str) -> str:
    return echoed.replace("£", "`")


def exchange(seed_zx, session, presses):
    """Types the presses and ENTER; checks the reply against the host's for what was accepted."""
    program, zx = seed_zx
    reply = session.ask_raw(presses)
    assert session.at_prompt()
    line = accepted_line(session, zx)
    assert len(line) <= MAX_LINE
    assert host_input(reply.prompt) == line.rstrip()
    host = respond(program, line)
    if host.reply is None:
        assert reply.text is None and reply.tokens == 0
    else:
        assert reply.text == host.reply.rstrip()
        assert reply.tokens == len(host.reply_ids)
        assert chat_sequence(session, zx.symbols) == host.prompt_ids + host.reply_ids
    return reply, line


def still_exact(seed, seed_zx, session, entry=0):
    _, zx = seed_zx
    expected = seed.replies[entry]
    reply = session.ask(expected["prompt"])
    assert reply.text == expected["reply"].rstrip()
    assert reply.tokens == len(expected["reply_ids"])
    assert chat_sequence(session, zx.symbols) == expected["prompt_ids"] + expected["reply_ids"]


def test_empty_lines(seed, seed_zx, session):
    for _ in range(3):
        reply, line = exchange(seed_zx, session, [])
        assert line == "" and reply.text is None
    still_exact(seed, seed_zx, session)


def test_lines_with_nothing_in_the_vocabulary(seed, seed_zx, session):
    reply, line = exchange(seed_zx, session, key_combinations("1234567890#$%&()*+/<=>@^_"))
    assert reply.text is None and line == "1234567890#$%&()*+/<=>@^_"
    still_exact(seed, seed_zx, session, 1)


def test_a_line_of_spaces_is_answered(seed, seed_zx, session):
    reply, line = exchange(seed_zx, session, ["SPACE"] * 5)
    assert line == "     " and reply.prompt == "" and reply.text is not None
    still_exact(seed, seed_zx, session)


def test_a_line_past_the_64_character_limit(seed, seed_zx, session):
    typed = ("the quick brown fox jumps over the lazy dog " * 3)[:100]
    reply, line = exchange(seed_zx, session, key_combinations(typed))
    assert line == typed[:MAX_LINE] and reply.prompt == typed[:MAX_LINE].rstrip()
    still_exact(seed, seed_zx, session, 2)


def test_delete_at_the_limit_then_more_keys(seed, seed_zx, session):
    presses = ["a"] * (MAX_LINE + 5) + [DELETE, "b", "c", DELETE, DELETE, "d", "e", "f"]
    _, line = exchange(seed_zx, session, presses)
    assert line == "a" * (MAX_LINE - 2) + "de"
    still_exact(seed, seed_zx, session)


def test_delete_past_the_start(seed, seed_zx, session):
    _, line = exchange(seed_zx, session, [DELETE] * 10 + list("hi"))
    assert line == "hi"
    _, line = exchange(seed_zx, session, list("ab") + [DELETE] * 6 + list("hey") + [DELETE] * 3 + [DELETE])
    assert line == ""
    _, line = exchange(seed_zx, session, list("ab") + [DELETE] * 6 + list("you"))
    assert line == "you"
    still_exact(seed, seed_zx, session, 3)


@pytest.mark.parametrize("shifts, expected", [
    ((), "1234567890 abcdefghijklmnopqrstuvwxyz"),
    (("CS",), " ABCDEFGHIJKLMNOPQRSTUVWXYZ"),            # CS+digits: editing keys (CS+0 deletes nothing)
    (("SS",), "!@#$%&'()_ *?^-+=.,;\"<>/`:"),            # SS+letters that are keywords give nothing
    (("CS", "SS"), ""),                                    # extended mode: nothing
], ids=["plain", "caps-shift", "symbol-shift", "both-shifts"])
def test_every_key(seed, seed_zx, session, shifts, expected):
    presses = [frozenset({*shifts, key}) for key in KEYS]
    reply, line = exchange(seed_zx, session, presses)
    assert line == expected
    if "`" in expected:
        assert "£" in reply.prompt           # the Spectrum's font shows 0x60 as a pound sign
    still_exact(seed, seed_zx, session, 4)


def test_shift_keys_alone_and_extended_mode_pairs_add_nothing(seed, seed_zx, session):
    presses = ["h", "CS", "SS", "CS+SS", "SS+a", "i", "CS+SS", "SS+d", "CS+1", "CS+9", "SS"]
    _, line = exchange(seed_zx, session, presses)
    assert line == "hi"
    still_exact(seed, seed_zx, session)


def test_capitals_get_the_lower_case_reply(seed, seed_zx, session):
    expected = seed.replies[0]
    reply, line = exchange(seed_zx, session, key_combinations(expected["prompt"].upper()))
    assert line == expected["prompt"].upper()
    assert reply.text == expected["reply"].rstrip()


def test_symbols_in_a_sentence(seed, seed_zx, session):
    typed = "Hi!! How are you? I'm; fine: a-b, c.d \"q\" (x) <y> 1+1=2 / ^_^"
    assert len(typed) <= MAX_LINE
    _, line = exchange(seed_zx, session, key_combinations(typed))
    assert line == typed
    still_exact(seed, seed_zx, session, 1)


def test_mashing_keys(seed, seed_zx, session):
    """A long run of key combinations, DELETEs among them, over several wrapped lines."""
    import numpy as np
    rng = np.random.default_rng(64)
    combos = [frozenset({key}) for key in KEYS] + [frozenset({"CS", key}) for key in KEYS] + \
             [frozenset({"SS", key}) for key in KEYS] + [frozenset({"CS", "SS"}), frozenset({"CS", "0"})] * 8
    for _ in range(3):
        presses = [combos[i] for i in rng.integers(0, len(combos), 120)]
        exchange(seed_zx, session, presses)
    still_exact(seed, seed_zx, session)
