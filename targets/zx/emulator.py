"""Run a TAP on an emulated ZX Spectrum the way a user would, and read its screen.

What skoolkit (10.1) gives us, and how it is used here:

* Loading: `skoolkit.tap2sna.main(args)` is tap2sna.py. By default it does a
  *simulated LOAD*: the real ROM runs in skoolkit's Z80 simulator, reading the
  tape through LD-BYTES; with fast-load on (the default) each block is copied
  in when LD-BYTES is called, with `-c fast-load=0` every pulse is read
  (0.2 s instead of 0.01 s for a small tape, thanks to skoolkit's loop
  accelerators). On a 48K it starts from a ready-made state equal to having
  typed LOAD "" and ENTER. With `-c machine=128` it starts the 128K ROM at
  0x00EA (part-way through reset, T-state 3453395), "presses" ENTER when the
  start-up menu appears (its first, highlighted item is "Tape Loader") and
  runs from 0x13BE, where that option begins LOAD "". 128 BASIC then runs the
  autostart loader, and USR pages in ROM 1 (48 BASIC): port 0x7FFD is 16 when
  the program starts. `--start ADDR` stops when PC reaches ADDR (we pass the
  entry from the loader's `RANDOMIZE USR n`). Without it, tap2sna stops at the
  first PC in RAM once the tape has ended, which on a 128K is a 128 BASIC
  paging routine near 0x5B00 rather than the program. The state is written as
  an SZX snapshot (RAM, registers, IFF/IM, T-state within the frame, border,
  0x7FFD, AY registers).
* Running: `skoolkit.snapshot.Snapshot.get(path)` reads the snapshot and
  `skoolkit.simutils.from_snapshot(cls, snapshot, config=...)` builds a
  simulator. `skoolkit.CCMIOSimulator` is the C simulator with memory and I/O
  contention (CMIOSimulator is its pure-Python twin, CSimulator the C one
  without contention). Its `trace(start, stop, max_operations, max_time,
  interrupts, draw, exec_map, keyboard, df, tf)` runs from PC `start` until PC
  == `stop` (-1: never), T-states >= `max_time` (absolute; 0: no limit) or
  `max_operations`, accepting the 50 Hz interrupt when `interrupts` is true,
  and returns (stop_condition, operations) with condition 1 = operations,
  2 = time, 3 = PC. `simulator.registers` is an array: PC is index 24,
  T-states 25 (skoolkit.simutils names them). Frames are 69888 T-states on the
  48K and 70908 on the 128K (`simulator.frame_duration`); the interrupt is
  accepted in the first 32 (48K) / 36 (128K) T-states of a frame.
* Ports: `simulator.set_tracer(obj)` makes the simulator call
  `obj.read_port(registers, port)` for IN and `obj.write_port(registers, port,
  value, offset)` for OUT; `skoolkit.pagingtracer.PagingTracer.write_port`
  does the 128K paging (0x7FFD), border and AY registers. The C simulators
  look the two methods up when `set_tracer` is called, so a listener is added
  through `Spectrum.on_port_write` rather than by replacing the tracer.
  `registers[T]` is the T-state at which the OUT instruction began and
  `offset` the T-states into it at which the port is written.
* Keyboard: `skoolkit.kbtracer.KEYS` maps key names ('a', '1', 'ENTER', 'CS',
  'SS', 'SPACE') to (port, mask) and `TOKENS` maps characters to key
  combinations ('A' -> 'CS+a', '?' -> 'SS+c'). We hold keys for 2 frames and
  release them for 6, so the ROM's own KEYBOARD routine (IM 1 at 0x0038) sees
  each press once and sets LAST_K (23560) and bit 5 of FLAGS (23611). The
  ROM frees a key's slot 5 interrupts after release; fewer than 4 frames up
  loses repeated letters ("aaa" typed as "a"), and it counts those interrupts
  only while interrupts are enabled: a program that computes with them off
  must be given 5 frames at its prompt before the same key is pressed again
  (session.py does). What LAST_K holds depends on
  the mode: a program must set FLAGS bit 3 (L mode) to get letters rather than
  keywords, and E-mode characters (~ | \\ [ ] { } ©) are two presses
  (CAPS+SYMBOL SHIFT, then the key) that only the ROM editor turns into one
  character. Printing with RST 16 stops at "scroll?" after a screenful unless
  SCR-CT (23692) is kept above 1.
* Speed, T-states of Z80 time per second of wall time on the project's 2-core
  machine, with contention (CCMIOSimulator): busy loops 475-615 million
  (135-175 times a real Spectrum; a loop in contended RAM shows higher figures
  because its T-states include the contention delays), ROM printing with
  RST 16 850-980 million, 48K and 128K alike. The pure-Python CMIOSimulator
  fallback manages about 11 million (3 times real time). Decoding the screen
  takes 0.25 ms, so screen predicates are checked every 5 frames and the
  decoding is redone only when the display file has changed.
"""

import contextlib
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from skoolkit import CCMIOSimulator, ROM48, read_bin_file, tap2sna
from skoolkit.cmiosimulator import CMIOSimulator
from skoolkit.kbtracer import KEYS, TOKENS
from skoolkit.pagingtracer import PagingTracer
from skoolkit.simutils import PC, T, from_snapshot
from skoolkit.snapshot import Snapshot

from soulc.targets.zx import tap as tapfile

MACHINES = ("48", "128")
HOLD_FRAMES = 2      # a key is down for this many interrupts...
RELEASE_FRAMES = 6   # ...then up for more than the ROM's 5-interrupt debounce
CHECK_EVERY_FRAMES = 5
NEVER = -1

CHARSET_ADDRESS = 0x3D00  # in the 48K ROM: 96 characters from space, 8 bytes each
UNKNOWN_CHAR = "\ufffd"
_SPECTRUM_CHARS = {0x60: "£", 0x7F: "©"}


class SpectrumTimeout(TimeoutError):
    """The emulated machine did not get where it was asked to within its T-state budget."""


# Keyboard ---------------------------------------------------------------------

def _half_row(port: int) -> int:
    """0-7 for the address line (A8-A15) that selects a half-row of keys."""
    return ((port >> 8) ^ 0xFF).bit_length() - 1


def key_combinations(text: str) -> list[frozenset[str]]:
    """The key presses that type `text`: each a set of skoolkit key names held together."""
    presses = []
    for char in text:
        if char == "\n":
            tokens = "ENTER"
        elif char == " ":
            tokens = "SPACE"
        elif char in TOKENS:
            tokens = TOKENS[char]
        else:
            raise ValueError(f"no Spectrum key for {char!r}")
        for combination in tokens.split():  # e.g. 'CS+SS SS+a' is two presses
            presses.append(frozenset(combination.split("+")))
    return presses


@dataclass
class _KeyPress:
    keys: frozenset[str]
    start: int  # T-states
    end: int


@dataclass
class Keyboard:
    """Keys held down over spans of T-states, read through port 0xFE."""
    presses: list[_KeyPress] = field(default_factory=list)
    last_release: int = 0  # T-states: when the latest press scheduled so far ends

    def hold(self, keys: frozenset[str], start: int, end: int) -> None:
        self.presses.append(_KeyPress(keys, start, end))
        self.last_release = max(self.last_release, end)

    def rows(self, tstates: int) -> list[int]:
        """Bits set for the keys down now, per half-row (bit 0 = outermost key)."""
        self.presses = [p for p in self.presses if p.end > tstates]
        rows = [0] * 8
        for press in self.presses:
            if press.start <= tstates:
                for key in press.keys:
                    port, mask = KEYS[key]
                    rows[_half_row(port)] |= mask ^ 0xFF
        return rows

    def read(self, port: int, tstates: int) -> int:
        selected = (port >> 8) ^ 0xFF
        down = 0x40  # EAR input low, as skoolkit's trace.py has it
        for row, keys in enumerate(self.rows(tstates)):
            if selected & (1 << row):
                down |= keys
        return down ^ 0xFF


PortListener = Callable[[int, int, int], None]  # (T-state of the write, port, value)


class _Ports(PagingTracer):
    """What the simulator calls for IN and OUT: keyboard, AY, 128K paging and listeners on OUT."""

    def __init__(self, simulator, keyboard: Keyboard, snapshot):
        self.simulator = simulator
        self.keyboard = keyboard
        self.border = snapshot.border
        self.outfe = snapshot.outfe
        self.out7ffd = snapshot.out7ffd
        self.outfffd = snapshot.outfffd
        self.ay = list(snapshot.ay)
        self.listeners: list[PortListener] = []

    def write_port(self, registers, port, value, offset):
        super().write_port(registers, port, value, offset)
        for listener in self.listeners:
            listener(registers[T] + offset, port, value)

    def read_port(self, registers, port):
        if port & 0xC002 == 0xC000 and self.outfffd < 16:
            return self.ay[self.outfffd]
        if port & 1 == 0:
            return self.keyboard.read(port, registers[T])
        return 0xFF


# Screen -------------------------------------------------------------------------

def _charset() -> dict[bytes, str]:
    rom = read_bin_file(ROM48, 0x4000)
    glyphs = {}
    for code in range(32, 128):
        bitmap = bytes(rom[CHARSET_ADDRESS + 8 * (code - 32):CHARSET_ADDRESS + 8 * (code - 31)])
        char = _SPECTRUM_CHARS.get(code, chr(code))
        glyphs.setdefault(bitmap, char)
        glyphs.setdefault(bytes(b ^ 0xFF for b in bitmap), char)  # INVERSE 1, cursors
    return glyphs


_GLYPHS = _charset()


def decode_screen(display: bytes) -> list[str]:
    """The 24 lines of 32 characters on a display file (bitmap part, 6144 bytes).

    The Spectrum's bitmap is interleaved: pixel line k of character row r
    (0-23) starts at ((r & 0x18) << 8) + (k << 8) + ((r & 7) << 5). Cells that
    match no ROM character (in either video) read as U+FFFD. Every line is 32
    characters long: blank cells are spaces.
    """
    lines = []
    for row in range(24):
        base = ((row & 0x18) << 8) + ((row & 7) << 5)
        pixel_lines = [display[base + (k << 8):base + (k << 8) + 32] for k in range(8)]
        cells = (bytes(column) for column in zip(*pixel_lines))
        lines.append("".join(_GLYPHS.get(cell, UNKNOWN_CHAR) for cell in cells))
    return lines


# The machine --------------------------------------------------------------------

def load_snapshot(tap: bytes, machine: str, start: int | None, fast_load: bool = True) -> Snapshot:
    """LOAD the tape with the ROM (tap2sna.py's simulated LOAD) up to PC == `start`.

    With `fast_load` off, the ROM's LD-BYTES reads every pulse of the tape's
    signal instead of having each block copied in when it is called.
    """
    if machine not in MACHINES:
        raise ValueError(f"machine must be one of {MACHINES}, not {machine!r}")
    with tempfile.TemporaryDirectory(prefix="soulc-zx-") as work:
        tap_path, szx_path = Path(work, "program.tap"), Path(work, "loaded.szx")
        tap_path.write_bytes(tap)
        # Spectrum seconds: the ROM loads about 170 bytes a second, a 128K soul's tape takes minutes
        timeout = max(600, 120 + len(tap) // 150)
        args = ["-c", f"machine={machine}", "-c", f"timeout={timeout}", "-c", f"fast-load={int(fast_load)}"]
        if start is not None:
            args += ["--start", str(start)]
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            tap2sna.main(args + [str(tap_path), str(szx_path)])
        if not szx_path.exists():
            raise RuntimeError(f"tap2sna.py wrote no snapshot:\n{log.getvalue()}")
        snapshot = Snapshot.get(str(szx_path))
    if start is not None and snapshot.pc != start:
        raise SpectrumTimeout(f"the tape did not reach address {start}:\n{log.getvalue()}")
    return snapshot


class Spectrum:
    """A 48K or 128K Spectrum with a program loaded from tape, driven by keys."""

    def __init__(self, snapshot: Snapshot, machine: str):
        self.machine = machine
        self.keyboard = Keyboard()
        simulator_class = CCMIOSimulator or CMIOSimulator
        self.simulator = from_snapshot(simulator_class, snapshot, config={"fast_djnz": False, "fast_ldir": False})
        self.ports = _Ports(self.simulator, self.keyboard, snapshot)
        self.simulator.set_tracer(self.ports)
        self._screen_cache: tuple[bytes, list[str]] = (b"", [])

    @classmethod
    def load_tap(cls, tap: bytes | str | Path, machine: str = "48", start: int | None = None,
                 fast_load: bool = True) -> "Spectrum":
        """Load a TAP through the ROM loader and stop as the program starts.

        `start` defaults to where a soul's chat starts (tap.start_address): the
        address in the tape's BASIC `RANDOMIZE USR n`, or for a tape whose program
        loads further blocks itself (a 128K soul's banks), its first code block.
        tap2sna's simulated LOAD runs on until then, feeding those blocks to the
        program's own calls of LD-BYTES as it does to the ROM's.
        """
        data = tap if isinstance(tap, bytes) else Path(tap).read_bytes()
        if start is None:
            start = tapfile.start_address(data)
        return cls(load_snapshot(data, machine, start, fast_load), machine)

    # state -------------------------------------------------------------------

    @property
    def tstates(self) -> int:
        return self.simulator.registers[T]

    @property
    def pc(self) -> int:
        return self.simulator.registers[PC]

    @property
    def frame_duration(self) -> int:
        return self.simulator.frame_duration

    def on_port_write(self, listener: PortListener) -> None:
        """Call `listener(tstates, port, value)` at every OUT from now on."""
        self.ports.listeners.append(listener)

    def peek(self, address: int, length: int = 1) -> bytes:
        memory = self.simulator.memory
        return bytes(memory[(address + i) & 0xFFFF] for i in range(length))

    def peek_word(self, address: int) -> int:
        return int.from_bytes(self.peek(address, 2), "little")

    def display_file(self) -> bytes:
        memory = self.simulator.memory
        if hasattr(memory, "banks"):  # 128K: bank 5, or bank 7 when the shadow screen is on
            bank = 7 if self.ports.out7ffd & 0x08 else 5
            return bytes(memory.banks[bank][:6144])
        return bytes(memory[0x4000:0x5800])

    def screen_text(self) -> list[str]:
        """The 24 lines of text on the screen, 32 characters each (rstrip() to compare)."""
        display = self.display_file()
        if display != self._screen_cache[0]:
            self._screen_cache = (display, decode_screen(display))
        return list(self._screen_cache[1])

    # running -----------------------------------------------------------------

    def run_to(self, stop: int, until: int) -> bool:
        """Run until PC == `stop` (NEVER: no address) or T-states >= `until`; True if PC got there.

        At least one instruction runs when T-states < `until`, so this can be
        called again from the address it stopped at.
        """
        simulator = self.simulator
        if until <= self.tstates:
            return False
        if hasattr(simulator, "trace"):
            condition, _ = simulator.trace(self.pc, stop, 0, until, 1, None, None, None, None, None)
            return condition == 3
        return _python_trace(simulator, stop, until)

    def run(self, tstates: int) -> None:
        """Run for this many T-states."""
        self.run_to(NEVER, self.tstates + tstates)

    def run_frames(self, frames: int) -> None:
        self.run(frames * self.frame_duration)

    def run_until(self, stop: int | Callable[["Spectrum"], bool], max_tstates: int,
                  check_every_frames: int = CHECK_EVERY_FRAMES) -> None:
        """Run until PC == `stop` (an address) or `stop(self)` is true.

        A predicate is checked every `check_every_frames` frames. Raises
        SpectrumTimeout if that has not happened within `max_tstates`.
        """
        deadline = self.tstates + max_tstates
        if isinstance(stop, int):
            if not self.run_to(stop, deadline):
                raise SpectrumTimeout(f"PC did not reach {stop} in {max_tstates} T-states (PC={self.pc})"
                                      + self.screen_dump())
            return
        step = check_every_frames * self.frame_duration
        while not stop(self):
            if self.tstates >= deadline:
                raise SpectrumTimeout(f"condition not met in {max_tstates} T-states (PC={self.pc})"
                                      + self.screen_dump())
            self.run_to(NEVER, min(deadline, self._frame_start(self.tstates) + step))

    def wait_for_text(self, pattern: str | re.Pattern, max_tstates: int) -> int:
        """Run until a screen line matches `pattern` (a regex, searched in each line).

        Lines are 32 characters wide, so match a whole line with ` *$` at the
        end. Returns the number of the first matching line, e.g.
        `wait_for_text(r"^YOU> ", 10 * 3_500_000)`.
        """
        regex = re.compile(pattern)
        found: list[int] = []

        def shown(spectrum: "Spectrum") -> bool:
            found[:] = [i for i, line in enumerate(spectrum.screen_text()) if regex.search(line)]
            return bool(found)

        self.run_until(shown, max_tstates)
        return found[0]

    # keyboard ----------------------------------------------------------------

    def _frame_start(self, tstates: int) -> int:
        return tstates - tstates % self.frame_duration

    def schedule_keys(self, presses: list[frozenset[str]], hold_frames: int = HOLD_FRAMES,
                      release_frames: int = RELEASE_FRAMES) -> list[int]:
        """Arrange for each set of keys to be pressed in turn, without running.

        Returns the T-state at which each press begins; the last is released
        `hold_frames + release_frames` frames after its start.
        """
        frame = self.frame_duration
        # Start at a frame boundary so each press spans exactly `hold_frames` interrupts,
        # and `release_frames` after the last press so that the ROM sees a repeated key.
        start = max(self._frame_start(self.tstates) + frame,
                    self._frame_start(self.keyboard.last_release + release_frames * frame + frame - 1))
        starts = []
        for keys in presses:
            self.keyboard.hold(keys, start, start + hold_frames * frame)
            starts.append(start)
            start += (hold_frames + release_frames) * frame
        return starts

    def type_keys(self, presses: list[frozenset[str]], hold_frames: int = HOLD_FRAMES,
                  release_frames: int = RELEASE_FRAMES) -> None:
        """Press each set of keys in turn (held, then released) and run until done."""
        starts = self.schedule_keys(presses, hold_frames, release_frames)
        if starts:
            self.run_to(NEVER, starts[-1] + (hold_frames + release_frames) * self.frame_duration)

    def type_text(self, text: str) -> None:
        """Type `text` on the keyboard ('\\n' is ENTER; capitals use CAPS SHIFT, symbols SYMBOL SHIFT)."""
        self.type_keys(key_combinations(text))

    def type_line(self, text: str) -> None:
        """Type `text` and press ENTER."""
        self.type_text(text + "\n")

    def screen_dump(self) -> str:
        """The screen's non-blank part as text for an error message (starts with a new line)."""
        lines = [line.rstrip() for line in self.screen_text()]
        while lines and not lines[-1]:
            lines.pop()
        return "\nscreen:\n" + "\n".join(f"|{line}" for line in lines)


def _python_trace(simulator, stop: int, until: int) -> bool:
    """The run loop for skoolkit's pure-Python simulators (no `trace` method)."""
    registers, memory, opcodes = simulator.registers, simulator.memory, simulator.opcodes
    frame, int_active = simulator.frame_duration, simulator.int_active
    pc = registers[PC]
    while True:
        opcodes[memory[pc]]()
        tstates = registers[T]
        if registers[26] and tstates % frame < int_active:  # 26: IFF
            simulator.accept_interrupt(registers, memory, pc)
        pc = registers[PC]
        if pc == stop:
            return True
        if tstates >= until:
            return False
