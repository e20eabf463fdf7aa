"""`soulc run TAPE --prompt TEXT ...`: chat with a compiled tape on an emulated Spectrum.

For each prompt it prints the prompt as the Spectrum echoed it, the reply read
off the screen (trailing spaces are invisible there) and the generated tokens
(beeper blips) with T-states per token, contended, from the ENTER press to the
next `YOU> ` prompt; then the mean over all tokens.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence, TextIO

from .errors import SoulcError

SECONDS = 3_500_000  # T-states in a Spectrum second, for messages


def detect_machine(tap: bytes) -> str:
    """The Spectrum a tape is for: the 128K if its program loads memory banks itself (headerless
    blocks after its code, as zx128 writes), else the 48K."""
    from soulc.targets.zx import tap as tapfile
    return "128" if tapfile.loads_banks(tap) else "48"


def _check_typable(prompts: Sequence[str]) -> None:
    from soulc.targets.zx.emulator import key_combinations
    for prompt in prompts:
        if "\n" in prompt or "\r" in prompt:
            raise SoulcError(f"a prompt is one line: {prompt!r}")
        for char in prompt:
            try:
                key_combinations(char)
            except ValueError:
                raise SoulcError(f"cannot type {char!r} on a Spectrum keyboard (prompt {prompt!r})") from None


def _tokens(count: int) -> str:
    return f"{count} token" + ("" if count == 1 else "s")


def _last_words(screen: list[str]) -> str:
    """The last non-blank screen line, to put in a one-line message."""
    shown = [line for line in screen if line.strip()]
    return f"; the screen ends with {shown[-1].strip()!r}" if shown else "; the screen is blank"


def _start(path: str, machine: str | None):
    from soulc.targets.zx import tap as tapfile
    from soulc.targets.zx.emulator import Spectrum, SpectrumTimeout
    from soulc.targets.zx.session import START_BUDGET, ChatSession

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SoulcError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        tapfile.read_tap(data)
    except SoulcError as e:
        raise SoulcError(f"{path}: {e}") from None
    entry = tapfile.start_address(data)
    if entry is None:
        raise SoulcError(f"{path}: not a soulc tape: no BASIC loader with RANDOMIZE USR")
    machine = machine or detect_machine(data)
    try:
        spectrum = Spectrum.load_tap(data, machine, start=entry)
    except (SpectrumTimeout, RuntimeError) as e:
        raise SoulcError(f"{path}: the {machine}K Spectrum did not load the tape and start it "
                         f"({str(e).splitlines()[0]})") from None
    session = ChatSession(spectrum)
    try:
        session.wait_for_prompt(START_BUDGET)
    except SpectrumTimeout:
        raise SoulcError(f"{path}: the program never showed the 'YOU> ' prompt within "
                         f"{START_BUDGET // SECONDS} s of Spectrum time" + _last_words(session.screen())) from None
    return session


def run_tape(path: str, prompts: Sequence[str], machine: str | None = None, out: TextIO | None = None) -> int:
    from soulc.targets.zx.emulator import SpectrumTimeout
    from soulc.targets.zx.session import ProtocolError

    out = out or sys.stdout
    if not prompts:
        raise SoulcError("soulc run needs at least one --prompt TEXT")
    _check_typable(prompts)
    session = _start(path, machine)
    tokens = tstates = 0
    for number, prompt in enumerate(prompts, 1):
        try:
            reply = session.ask(prompt)
        except SpectrumTimeout:
            raise SoulcError(f"prompt {number}: the 'YOU> ' prompt did not come back within "
                             f"{session.reply_budget // SECONDS} s of Spectrum time"
                             + _last_words(session.screen())) from None
        except ProtocolError as e:
            raise SoulcError(f"prompt {number}: {str(e).splitlines()[0]}" + _last_words(session.screen())) from None
        print(f"YOU> {reply.prompt}", file=out)
        print("(no reply: nothing in the prompt is in the vocabulary)" if reply.text is None
              else f"ZX> {reply.text}", file=out)
        if reply.tokens:
            print(f"{_tokens(reply.tokens)}, {round(reply.tstates_per_token)} T-states/token (contended)", file=out)
        else:
            print(f"0 tokens, {reply.tstates} T-states (contended)", file=out)
        out.flush()
        tokens += reply.tokens
        tstates += reply.tstates if reply.tokens else 0
    if tokens:
        print(f"mean: {round(tstates / tokens)} T-states/token over {_tokens(tokens)} (contended)", file=out)
    else:
        print("mean: no tokens generated", file=out)
    return 0
