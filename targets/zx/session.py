"""Chat with a compiled soul on the emulated Spectrum: type prompts, read the replies off the screen.

The screen protocol (targets/z80/chatloop.py over targets/zx/io.py, which prints
with the ROM's RST 16): a title, then `YOU> ` and the typed line echoed; after
ENTER a new line, `ZX> ` and the reply token by token, wrapping at column 32;
a new line and `YOU> ` again. A prompt that encodes to no tokens prints no
`ZX> ` line. While it thinks the program changes the border, and after each
generated token it blips the beeper: a burst of OUTs to port 0xFE that toggle
bit 4 (24 of them in io.py).

How an exchange is read, whatever the screen has scrolled:
* Where the ROM prints next is in the system variable S_POSN (23688: 33 minus
  the column, 23689: 24 minus the row). The prompt is back when the print
  position is at column 5 of a line that reads `YOU> `.
* Lines are given *virtual* numbers that do not change as the screen scrolls:
  row + the number of scrolls so far. Every scroll of the upper screen goes
  through the ROM's CL-SC-ALL (0x0DFE), so the run stops there to count it,
  and to keep the top line before it is lost if it belongs to the exchange.
  (The upper screen is 22 lines: the ROM scrolls at row 21.)
* The echoed prompt runs from the `YOU> ` line to the row of the print
  position when ENTER is pressed; the reply from the next line up to the line
  of the next `YOU> `. Wrapped lines are joined at full width (32 characters)
  and the end is stripped: trailing spaces of a reply are invisible on the
  screen, so compare replies with `.rstrip()`.

Tokens are counted from the beeper: the simulator reports every OUT (see
Spectrum.on_port_write), each change of bit 4 on an even port is a toggle,
and toggles closer together than BLIP_GAP T-states form one blip.

Time is counted from the T-state at which ENTER goes down (the start of a
frame, the ROM reads it at that frame's interrupt) to the first check that
finds the prompt back. Checks come every POLL_TSTATES, so times are exact to
within that; the running includes memory and I/O contention (CCMIOSimulator).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from soulc.targets.zx.emulator import NEVER, RELEASE_FRAMES, Spectrum, SpectrumTimeout, key_combinations

__all__ = ["ChatSession", "ProtocolError", "Reply", "SpectrumTimeout"]

PROMPT = "YOU> "
REPLY_PREFIX = "ZX> "
S_POSN = 23688
CL_SC_ALL = 0x0DFE        # 48K ROM (ROM 1 on the 128K): scroll the whole screen up a line
ROM1_PAGED = 0x10         # bit 4 of port 0x7FFD on the 128K
COLUMNS = 32
BEEPER_BIT = 0x10
BLIP_GAP = 4_000          # T-states; io.py's toggles are ~520 apart, tokens at least a step apart
POLL_TSTATES = 8_192      # how often to look for the prompt (a frame is 69,888 on the 48K)
SECOND = 3_500_000        # T-states, near enough for budgets
START_BUDGET = 60 * SECOND
REPLY_BUDGET = 3_600 * SECOND


class ProtocolError(RuntimeError):
    """The program broke the screen protocol (e.g. a reply line without `ZX> `)."""


@dataclass(frozen=True)
class Reply:
    prompt: str                 # the prompt as echoed on the screen, after `YOU> `, stripped at the end
    text: str | None            # the reply after `ZX> `, stripped at the end; None: no `ZX> ` line
    tokens: int                 # beeper blips
    tstates: int                # from the ENTER press to the next `YOU> ` (contended)
    blip_tstates: tuple[int, ...] = ()  # when each blip began, T-states after the ENTER press

    @property
    def tstates_per_token(self) -> float | None:
        return self.tstates / self.tokens if self.tokens else None


@dataclass
class _Beeper:
    """Bit-4 toggles of the ULA port, as the simulator reports each OUT."""
    level: int = 0
    toggles: list[int] = field(default_factory=list)

    def write(self, tstates: int, port: int, value: int) -> None:
        if port & 1 == 0 and value & BEEPER_BIT != self.level:
            self.level = value & BEEPER_BIT
            self.toggles.append(tstates)

    def blips_since(self, start: int) -> list[int]:
        """When each blip began (absolute T-states), counting toggles from `start`."""
        blips: list[int] = []
        previous = None
        for t in self.toggles:
            if t < start:
                continue
            if previous is None or t - previous > BLIP_GAP:
                blips.append(t)
            previous = t
        return blips


@dataclass
class _Lines:
    """Screen lines by virtual number (row + scrolls so far), keeping those scrolled off from `first` on."""
    first: int
    scrolls: int = 0
    lost: dict[int, str] = field(default_factory=dict)

    def virtual(self, row: int) -> int:
        return row + self.scrolls

    def scrolling(self, screen: list[str]) -> None:
        """Called just before the screen scrolls up one line."""
        if self.scrolls >= self.first:
            self.lost[self.scrolls] = screen[0]
        self.scrolls += 1

    def text(self, screen: list[str], start: int, end: int) -> str:
        """Lines `start` to `end` (virtual, inclusive) joined, with trailing spaces stripped."""
        lines = []
        for v in range(start, end + 1):
            lines.append(self.lost[v] if v < self.scrolls else screen[v - self.scrolls])
        return "".join(lines).rstrip()


def _after(prefix: str, shown: str) -> str | None:
    """The text after `prefix` on lines whose trailing spaces were stripped; None if it is not there."""
    return shown[len(prefix):] if (shown + " ").startswith(prefix) else None


def _press(keys: str | Iterable[str]) -> frozenset[str]:
    """A press given as 'CS+0' or as key names; see skoolkit.kbtracer.KEYS for the names."""
    return frozenset(keys.split("+") if isinstance(keys, str) else keys)


class ChatSession:
    """A soul's chat loop on an emulated Spectrum, waiting at its `YOU> ` prompt."""

    def __init__(self, spectrum: Spectrum, reply_budget: int = REPLY_BUDGET,
                 poll_tstates: int = POLL_TSTATES):
        self.spectrum = spectrum
        self.reply_budget = reply_budget
        self.poll_tstates = poll_tstates
        self._beeper = _Beeper(level=spectrum.ports.outfe & BEEPER_BIT)
        spectrum.on_port_write(self._beeper.write)

    @classmethod
    def load(cls, tap: bytes | str | Path, machine: str = "48", start_budget: int = START_BUDGET,
             **options) -> "ChatSession":
        """Load a TAP through the ROM and run until the first `YOU> ` prompt."""
        session = cls(Spectrum.load_tap(tap, machine), **options)
        session.wait_for_prompt(start_budget)
        return session

    # the screen --------------------------------------------------------------

    def cursor(self) -> tuple[int, int]:
        """(row, column) where the ROM prints next on the upper screen."""
        column, line = self.spectrum.peek(S_POSN, 2)
        return 24 - line, 33 - column

    def at_prompt(self) -> bool:
        row, column = self.cursor()
        return (column == len(PROMPT) and 0 <= row < 24
                and self.spectrum.screen_text()[row].startswith(PROMPT))

    def screen(self) -> list[str]:
        """The screen's 24 lines, trailing spaces stripped."""
        return [line.rstrip() for line in self.spectrum.screen_text()]

    def wait_for_prompt(self, budget: int) -> None:
        spectrum = self.spectrum
        deadline = spectrum.tstates + budget
        while not self.at_prompt():
            if spectrum.tstates >= deadline:
                raise SpectrumTimeout(f"no {PROMPT!r} prompt within {budget} T-states" + spectrum.screen_dump())
            spectrum.run_to(NEVER, min(deadline, spectrum.tstates + self.poll_tstates))

    # chatting ----------------------------------------------------------------

    def ask(self, prompt: str) -> Reply:
        """Type `prompt` (capitals with CAPS SHIFT, symbols with SYMBOL SHIFT), press ENTER, read the reply."""
        if "\n" in prompt:
            raise ValueError("a prompt is one line")
        return self.ask_raw(key_combinations(prompt))

    def ask_raw(self, presses: Sequence[str | Iterable[str]]) -> Reply:
        """Press each key combination in turn ('a', 'CS+0' for DELETE, {'SS', 'p'}, ...), then ENTER.

        Any combination goes, except ENTER itself before the end. Raises
        SpectrumTimeout if the prompt is not back within the reply budget.
        """
        presses = [_press(p) for p in presses]
        if any("ENTER" in p for p in presses):
            raise ValueError("ENTER ends the line: ask_raw presses it")
        spectrum = self.spectrum
        if not self.at_prompt():
            raise ProtocolError(f"not at a {PROMPT!r} prompt" + spectrum.screen_dump())
        lines = _Lines(first=self.cursor()[0])
        # The ROM frees a released key only after 5 interrupts, and interrupts were off
        # while the last reply was computed: give it those before the next press.
        self._run(lines, spectrum.tstates + RELEASE_FRAMES * spectrum.frame_duration)
        enter = spectrum.schedule_keys(presses + [frozenset({"ENTER"})])[-1]
        self._run(lines, enter)
        prompt_end = lines.virtual(self.cursor()[0])
        deadline = enter + self.reply_budget
        while True:
            self._run(lines, min(deadline, spectrum.tstates + self.poll_tstates))
            if self.at_prompt() and lines.virtual(self.cursor()[0]) > prompt_end:
                break
            if spectrum.tstates >= deadline:
                raise SpectrumTimeout(f"the {PROMPT!r} prompt did not come back within {self.reply_budget} "
                                      "T-states of ENTER" + spectrum.screen_dump())
        tstates = spectrum.tstates - enter
        next_prompt = lines.virtual(self.cursor()[0])
        screen = spectrum.screen_text()
        echoed = _after(PROMPT, lines.text(screen, lines.first, prompt_end))
        if echoed is None:
            raise ProtocolError(f"the prompt line does not start with {PROMPT!r}" + spectrum.screen_dump())
        text = None
        if next_prompt > prompt_end + 1:
            text = _after(REPLY_PREFIX, lines.text(screen, prompt_end + 1, next_prompt - 1))
            if text is None:
                raise ProtocolError(f"the reply does not start with {REPLY_PREFIX!r}" + spectrum.screen_dump())
        blips = self._beeper.blips_since(enter)
        self._beeper.toggles.clear()
        return Reply(prompt=echoed, text=text, tokens=len(blips), tstates=tstates,
                     blip_tstates=tuple(t - enter for t in blips))

    def _run(self, lines: _Lines, until: int) -> None:
        """Run to T-state `until`, counting the scrolls of the screen on the way."""
        spectrum = self.spectrum
        while spectrum.run_to(CL_SC_ALL, until):
            if spectrum.machine == "48" or spectrum.ports.out7ffd & ROM1_PAGED:
                lines.scrolling(spectrum.screen_text())
