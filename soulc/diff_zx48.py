"""One program on two machines: the reference interpreter, and the Z80 program on an emulated 48K.

`compile_zx48` runs the pipeline in-process (as `soulc MODEL --target zx48` does) and keeps
what a comparison needs: the placed program, the TAP, the code block and its symbols.
`check_prompts` loads the TAP through the ROM loader, types each prompt on the emulated
keyboard and compares, prompt by prompt, with ir/chat.py's `respond` on the host:
- the echoed line with what the keyboard sent (the Spectrum keeps the first 64 characters),
- the reply text read off the screen,
- the number of reply tokens (beeper blips),
- the token ids in the chat loop's own buffer (`chat_seq`, `chat_len`) with prompt + reply.
`localise` then finds where a Z80 step first differs from the interpreter: it runs `step` in
a bare Z80 simulator (no ROM: the step calls none), position by position, stopping at each
op's label (`step_op<i>`), and compares the op's result in memory with the interpreter's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soulc.ir.chat import Exchange, respond
from soulc.ir.interpreter import Interpreter
from soulc.ir.printer import print_op
from soulc.ir.program import Program
from soulc.passes.pipeline import HOST_PASSES, run_pipeline
from soulc.targets.z80.chatloop import MAX_LINE
from soulc.targets.z80.codegen import pruned_matvecs
from soulc.targets.zx.session import ChatSession, ProtocolError, SpectrumTimeout
from soulc.targets.zx.tap import code_blocks

TYPEABLE = (" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "!@#$%&'()_*?-+=.,;\"<>/:^")     # one key press each, all printable ASCII in L mode
STOP_ADDRESS = 0x0008                       # a return address the step never reaches otherwise
STACK_TOP = 0x5D00                          # below the code, where the Spectrum's stack lies too


@dataclass
class ZX48Program:
    program: Program                # after the whole zx48 pipeline: step form, placed
    tap: bytes
    code: bytes
    origin: int
    symbols: dict[str, int]


def compile_zx48(program: Program) -> ZX48Program:
    """The zx48 compilation of a program, in-process. Raises SoulcError as the CLI would."""
    from soulc.targets import get_target
    target = get_target("zx48")
    placed = run_pipeline(program, HOST_PASSES + target.passes)
    build = target.build(placed)
    symbols = {}
    for line in build.artefacts["sym"].splitlines():
        name, _, address = line.split()
        symbols[name] = int(address, 16)
    [(origin, code)] = code_blocks(build.artefacts["tap"])
    return ZX48Program(placed, build.artefacts["tap"], code, origin, symbols)


def kept_line(text: str) -> str:
    """What the Spectrum's line editor keeps of a typed line: the first MAX_LINE characters."""
    return text[:MAX_LINE]


@dataclass
class Observed:
    """One exchange on the emulated Spectrum."""
    echoed: str                     # the line after `YOU> `, as read off the screen
    text: str | None                # the reply after `ZX> `; None: no reply line
    tokens: int                     # beeper blips
    sequence: list[int] | None      # chat_seq[:chat_len] when there was a reply
    tstates: int = 0


@dataclass
class Mismatch:
    prompt: str
    problems: list[str]
    expected: Exchange | None = None
    observed: Observed | None = None

    def describe(self) -> str:
        lines = [f"prompt {self.prompt!r}:"] + [f"  {p}" for p in self.problems]
        if self.expected is not None:
            e = self.expected
            lines.append(f"  host:     reply {e.reply!r}, prompt ids {e.prompt_ids}, reply ids {e.reply_ids}")
        if self.observed is not None:
            o = self.observed
            lines.append(f"  spectrum: echoed {o.echoed!r}, reply {o.text!r}, {o.tokens} blips, "
                         f"chat_seq {o.sequence}")
        return "\n".join(lines)


def chat_sequence(session: ChatSession, symbols: dict[str, int]) -> list[int]:
    length = session.spectrum.peek(symbols["chat_len"])[0]
    return list(session.spectrum.peek(symbols["chat_seq"], length))


def compare(prompt: str, host: Exchange, seen: Observed) -> list[str]:
    """What differs between the host's exchange and the Spectrum's (empty when they agree)."""
    problems = []
    if seen.echoed != kept_line(prompt).rstrip():
        problems.append(f"echo {seen.echoed!r}, typed {kept_line(prompt)!r}")
    if host.reply is None:
        if seen.text is not None:
            problems.append(f"the host gives no reply, the Spectrum {seen.text!r}")
        return problems
    if seen.text != host.reply.rstrip():
        problems.append(f"reply text {seen.text!r}, the host's {host.reply.rstrip()!r}")
    if seen.tokens != len(host.reply_ids):
        problems.append(f"{seen.tokens} tokens (blips), the host's {len(host.reply_ids)}")
    if seen.sequence != host.prompt_ids + host.reply_ids:
        problems.append(f"chat_seq {seen.sequence}, the host's {host.prompt_ids + host.reply_ids}")
    return problems


@dataclass
class Check:
    """The outcome of typing prompts on the Spectrum: the exchanges that differ, and how many
    exchanges and reply tokens were compared."""
    mismatches: list[Mismatch] = field(default_factory=list)
    exchanges: int = 0
    tokens: int = 0
    sequences: list[list[int]] = field(default_factory=list)   # the host's prompt + reply ids


def check_prompts(zx: ZX48Program, prompts: list[str], host_program: Program | None = None,
                  session: ChatSession | None = None) -> Check:
    """Types every prompt on a freshly loaded Spectrum (or `session`) and compares each exchange.

    The host side is `host_program` (e.g. the seq form the compiler started from), or else
    the compiled program itself. A timeout or a broken screen ends the run with one mismatch.
    """
    host_program = host_program or zx.program
    interpreter = Interpreter(host_program)
    check = Check()
    try:
        session = session or ChatSession.load(zx.tap, "48")
    except (SpectrumTimeout, ProtocolError) as e:
        check.mismatches.append(Mismatch("", [f"the program did not reach its prompt: {str(e).splitlines()[0]}"]))
        return check
    for prompt in prompts:
        host = respond(host_program, kept_line(prompt), interpreter)
        try:
            reply = session.ask(prompt)
        except (SpectrumTimeout, ProtocolError) as e:
            check.mismatches.append(Mismatch(prompt, [f"{type(e).__name__}: {str(e).splitlines()[0]}"], host))
            break
        sequence = chat_sequence(session, zx.symbols) if reply.text is not None else None
        seen = Observed(reply.prompt, reply.text, reply.tokens, sequence, reply.tstates)
        problems = compare(prompt, host, seen)
        check.exchanges += 1
        if host.prompt_ids is not None:
            check.tokens += len(host.reply_ids)
            check.sequences.append(host.prompt_ids + host.reply_ids)
        if problems:
            check.mismatches.append(Mismatch(prompt, problems, host, seen))
    return check


def spectrum_prompt(rng: np.random.Generator, tokenizer_chars: str = "") -> str:
    """A random line to type: mostly the vocabulary's characters, some capitals, digits and
    symbols; mostly short, so that the reply has room in the context; now and then empty,
    only characters outside the vocabulary, or longer than the 64 the Spectrum keeps."""
    kind = rng.random()
    if kind < 0.05:
        return ""
    if kind < 0.10:
        return "".join(rng.choice(list("0123456789#$%&()*+/<=>@^_"), size=int(rng.integers(1, 6))))
    if kind < 0.20:
        length = int(rng.integers(66, 80))
    elif kind < 0.65:
        length = int(rng.integers(1, 7))
    else:
        length = int(rng.integers(7, 30))
    own = [c for c in tokenizer_chars if c in TYPEABLE] or list("abc ")
    pool = own * 4 + [c.upper() for c in own if c.isalpha()] + list(TYPEABLE)
    return "".join(rng.choice(pool, size=length))


# Localising a difference in one step ---------------------------------------------------

@dataclass
class OpDifference:
    position: int
    index: int                      # the op's index in the step body
    op: str                         # the op as printed
    got: np.ndarray
    want: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)     # the op's value operands (host)
    notes: list[str] = field(default_factory=list)                  # e.g. a matvec's rows that differ

    def describe(self) -> str:
        differ = np.flatnonzero(np.asarray(self.got).reshape(-1) != np.asarray(self.want).reshape(-1))
        where = ", ".join(f"[{i}] Z80 {int(np.asarray(self.got).reshape(-1)[i])} "
                          f"host {int(np.asarray(self.want).reshape(-1)[i])}" for i in differ[:8])
        lines = [f"position {self.position}, op {self.index}: {self.op}",
                 f"  {len(differ)} element(s) differ: {where}{' ...' if len(differ) > 8 else ''}",
                 f"  Z80:  {np.asarray(self.got).tolist()}",
                 f"  host: {np.asarray(self.want).tolist()}"]
        lines += [f"  input {name}: {np.asarray(v).tolist()}" for name, v in self.inputs.items()]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def _matvec_notes(program: Program, op, x: np.ndarray, rows) -> list[str]:
    """For the rows of a matvec that differ: the weights, the bias, the exact sum and the shift."""
    weight = program.consts[op.args[0][1:]]
    bias = program.consts[op.args[2][1:]] if len(op.args) == 3 else None
    shift = weight.shift + op.attrs.get("post", 0)
    notes = []
    for row in rows[:4]:
        w = weight.data[row].astype(np.int64)
        acc = int(w @ np.asarray(x, dtype=np.int64)) + (int(bias.data[row]) if bias is not None else 0)
        notes.append(f"{op.args[0]} row {row}: {w.tolist()}"
                     + (f", bias {int(bias.data[row])}" if bias is not None else "")
                     + f"; sum {acc}, total shift {shift}")
    return notes


def _read_value(memory, address: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    width = {"i16": 2, "i32": 4, "u8": 1}[dtype]
    raw = bytes(memory[address:address + width * size])
    kind = {"i16": "<i2", "i32": "<i4", "u8": "u1"}[dtype]
    return np.frombuffer(raw, kind).astype(np.int64).reshape(shape)


def _unprune(got: np.ndarray, want: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """A pruned matvec's y as the interpreter's where the Z80 rightly skipped: rows outside
    the argmax range are not computed, and a row left at -32768 is right when an earlier row
    of the range is at least as large (it could not have won)."""
    got = got.copy()
    got[:lo], got[hi:] = want[:lo], want[hi:]
    for r in range(lo + 1, hi):
        if got[r] == -32768 and want[r] <= want[lo:r].max():
            got[r] = want[r]
    return got


def localise(zx: ZX48Program, tokens: list[int]) -> OpDifference | None:
    """The first op whose result on the Z80 differs from the interpreter's, running `step` over
    `tokens` position by position. Every op runs at every position (STEP_OUTPUT = 1): the ops
    the chat loop skips while it feeds the prompt have no effect on the caches."""
    from skoolkit.csimulator import CSimulator
    from skoolkit.simutils import PC, SP

    program, symbols = zx.program, zx.symbols
    simulator = CSimulator(bytearray(65536), {}, {}, None)
    memory = simulator.memory
    memory[zx.origin:zx.origin + len(zx.code)] = zx.code
    registers = simulator.registers
    interpreter = Interpreter(program)
    pruned = pruned_matvecs(program)
    for position, token in enumerate(tokens[: program.settings.context]):
        memory[symbols["STEP_TOKEN"]] = token
        memory[symbols["STEP_POS"]] = position
        memory[symbols["STEP_OUTPUT"]] = 1
        memory[STACK_TOP] = STOP_ADDRESS & 0xFF
        memory[STACK_TOP + 1] = STOP_ADDRESS >> 8
        registers[SP] = STACK_TOP
        simulator.run(symbols["step"], symbols["step_op0"])
        want_next = interpreter.next_token(token)
        env = interpreter.values
        for index, op in enumerate(program.body):
            simulator.run(registers[PC], symbols[f"step_op{index + 1}"])
            if op.result is None:
                continue
            if op.type.dtype == "tok":
                got, want = np.array([memory[symbols["STEP_NEXT"]]]), np.array([want_next])
            else:
                got = _read_value(memory, program.memory[f"%{op.result}"], op.type.dtype, op.type.shape)
                want = np.asarray(env[op.result])
                if op.opcode in ("scores", "softmax_lut"):
                    got, want = got[:, : position + 1], want[:, : position + 1]
                if op.result in pruned:
                    got = _unprune(got, want, *program.settings.argmax)
            if not np.array_equal(got, want):
                inputs = {a: env[a[1:]] for a in op.args if a.startswith("%")}
                notes = []
                if op.opcode == "matvec":
                    rows = np.flatnonzero(got != want).tolist()
                    notes = _matvec_notes(program, op, env[op.args[1][1:]], rows)
                return OpDifference(position, index, print_op(op), got, want, inputs, notes)
        if registers[PC] != STOP_ADDRESS:
            simulator.run(registers[PC], STOP_ADDRESS)
    return None
