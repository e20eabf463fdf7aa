"""Benchmark: the seed model on the 48K Spectrum, T-states per generated token.

Run by hand from the checkout (the test suite does not):

    python benchmarks/zx48.py [--seed-dir ../shared/seed] [--markdown]

It compiles the seed (soul.bin + tokenizer.json) for zx48, loads the TAP through the ROM on
the emulated Spectrum, types every prompt of replies.json and checks every reply, twice: with
the ULA's memory contention (what a real 48K does, and what `soulc run` reports) and without.
Time runs from ENTER to the next `YOU> `, so tokenising, printing, scrolling, border and beeper
count. Then it replays the same token sequences through the compiled `step` on the 48K's
memory map (ROM, the image at its address, contention on or off) and times every op, which
splits the total into matvec, attention (scores, softmax, mix), rmsnorm, argmax, the other ops
and the runtime (everything outside `step`). Last, the bytes of code, tables and weights.

The baseline column is the same measurement of the Z80 backend before the speed work
(commit 3d41e68); "now" is the checkout's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from skoolkit.csimulator import CSimulator
from skoolkit.simutils import from_snapshot

from soulc.diff_zx48 import ZX48Program, compile_zx48
from soulc.frontends.soulbin import load_soulbin
from soulc.frontends.tokenizer_json import load_tokenizer
from soulc.targets.z80.codegen import const_bytes
from soulc.targets.z80.profile import Machine, op_category, profile_step, set_step_inputs
from soulc.targets.zx import emulator
from soulc.targets.zx import tap as tapfile
from soulc.targets.zx.machine import CODE_START, CONTENDED_END, TOP
from soulc.targets.zx.session import ChatSession

REPO = Path(__file__).resolve().parents[1]

STEP_STACK = 0x5D80          # below CODE_START, where the chat loop's stack is on the real machine
TABLES = {"soul_sqtab": 512, "soul_gtab": 1024, "mv_tab": 2048}   # page-aligned tables inside the step code: label -> bytes
COLUMNS = ("matvec", "attention", "rmsnorm", "argmax", "other ops", "runtime")

# The same measurement at commit 3d41e68 (before the speed work): T-states over all prompts.
BASELINE = {
    "tokens": 59, "positions": 95,
    "total": {"contended": 410_960_326, "uncontended": 408_742_694},
    "matvec": {"contended": 269_035_390, "uncontended": 268_850_390},
    "attention": {"contended": 91_477_210, "uncontended": 90_333_137},
    "rmsnorm": {"contended": 41_075_696, "uncontended": 40_684_401},
    "argmax": {"contended": 1_412_291, "uncontended": 1_343_845},
    "other ops": {"contended": 6_120_947, "uncontended": 6_031_261},
    "runtime": {"contended": 1_838_792, "uncontended": 1_499_660},
    "bytes": {"chat loop": 1_934, "step code": 5_150, "tables": 1_024, "weights": 22_016,
              "other constants": 5_024, "KV caches": 5_120, "values": 512, "free": 692},
}


class UncontendedSpectrum(emulator.Spectrum):
    """The same 48K with a simulator that charges no contention (skoolkit's CSimulator)."""

    def __init__(self, snapshot, machine):
        super().__init__(snapshot, machine)
        self.simulator = from_snapshot(CSimulator, snapshot, config={"fast_djnz": False, "fast_ldir": False})
        self.ports = emulator._Ports(self.simulator, self.keyboard, snapshot)
        self.simulator.set_tracer(self.ports)


@dataclass
class Measure:
    tokens: int = 0
    positions: int = 0
    total: dict = field(default_factory=dict)      # contended / uncontended -> T-states
    parts: dict = field(default_factory=dict)      # column -> {contended, uncontended}
    bytes: dict = field(default_factory=dict)
    ops: dict = field(default_factory=dict)        # "matvec l0.q" -> uncontended T-states


def compile_seed(seed: Path) -> ZX48Program:
    return compile_zx48(load_soulbin(seed / "soul.bin", load_tokenizer(seed / "tokenizer.json")))


def chat(tap: bytes, replies: list[dict], contended: bool) -> tuple[int, int]:
    """(T-states, tokens) over all prompts, every reply checked against replies.json."""
    cls = emulator.Spectrum if contended else UncontendedSpectrum
    spectrum = cls(emulator.load_snapshot(tap, "48", tapfile.start_address(tap)), "48")
    session = ChatSession(spectrum)
    session.wait_for_prompt(60 * 3_500_000)
    tstates = tokens = 0
    for entry in replies:
        reply = session.ask(entry["prompt"])
        if reply.text != entry["reply"].rstrip() or reply.tokens != len(entry["reply_ids"]):
            raise SystemExit(f"wrong reply to {entry['prompt']!r}: {reply.text!r} ({reply.tokens} tokens)")
        tstates += reply.tstates
        tokens += reply.tokens
    return tstates, tokens


def step_profile(program, image: bytes, symbols: dict, replies: list[dict], contended: bool):
    """Every position of every exchange that the chat loop computes (those after the prompt's
    prefix, whose cache rows are loaded with the program) through `step` on the 48K memory
    map: T-states per op."""
    machine = Machine.spectrum48(image, CODE_START, STEP_STACK, contended)
    per_op: Counter = Counter()
    positions = 0
    for entry in replies:
        sequence = entry["prompt_ids"] + entry["reply_ids"]
        prompt = len(entry["prompt_ids"])
        for pos in range(len(program.settings.prompt_prefix), prompt - 1 + len(entry["reply_ids"])):
            output = pos >= prompt - 1
            set_step_inputs(machine, symbols, sequence[pos], pos, output)
            for name, t in profile_step(machine, symbols, program, output, reset_clock=False):
                per_op[name] += t
            if output and machine.sim.registers[0] != sequence[pos + 1]:
                raise SystemExit(f"step at position {pos} of {entry['prompt']!r} gave {machine.sim.registers[0]}")
            positions += 1
    return per_op, positions


def sizes(program, symbols: dict) -> dict[str, int]:
    encoded = const_bytes(program)
    weights = {op.args[0][1:] for op in program.body if op.opcode == "matvec"}
    weights |= {op.args[2][1:] for op in program.body if op.opcode == "matvec" and len(op.args) == 3}
    tables = sum(size for name, size in TABLES.items() if name in symbols)
    hot = symbols["hot_end"] - CONTENDED_END
    values = [a for n, a in program.memory.items() if n.startswith("%")]
    arena = (max(a + program.value_types()[n[1:]].nbytes for n, a in program.memory.items() if n.startswith("%"))
             - min(values)) if values else 0
    out = {
        "chat loop": symbols["cold_end"] - CODE_START,
        "step code": hot - tables,
        "tables": tables,
        "weights": sum(len(encoded[n]) for n in weights),
        "other constants": sum(len(b) for n, b in encoded.items() if n not in weights),
        "KV caches": sum(s.type.nbytes for s in program.states.values()),
        "values": arena,
    }
    out["free"] = (TOP - CODE_START) - sum(out.values())
    return out


def measure(seed: Path) -> Measure:
    replies = json.loads((seed / "replies.json").read_text())
    zx = compile_seed(seed)
    program, symbols, tap, image = zx.program, zx.symbols, zx.tap, zx.code
    m = Measure(bytes=sizes(program, symbols))
    steps = {}
    for contended in (True, False):
        key = "contended" if contended else "uncontended"
        m.total[key], m.tokens = chat(tap, replies, contended)
        per_op, m.positions = step_profile(program, image, symbols, replies, contended)
        if not contended:
            m.ops = dict(per_op)
        by_column: Counter = Counter()
        for name, t in per_op.items():
            by_column[op_category(name.split()[0])] += t
        steps[key] = sum(per_op.values())
        by_column["runtime"] = m.total[key] - steps[key]
        for column in COLUMNS:
            m.parts.setdefault(column, {})[key] = by_column[column]
    return m


def _per(value: float, count: int) -> str:
    return f"{round(value / count):,}"


def table(m: Measure) -> str:
    b = BASELINE
    rows = ["| | baseline, contended | baseline, uncontended | now, contended | now, uncontended |",
            "|---|---:|---:|---:|---:|"]

    def timing(label, base, now, count_base, count_now):
        cells = [_per(base[k], count_base) for k in ("contended", "uncontended")]
        cells += [_per(now[k], count_now) for k in ("contended", "uncontended")]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    timing("**T-states per generated token**", b["total"], m.total, b["tokens"], m.tokens)
    timing("T-states per computed position", b["total"], m.total, b["positions"], m.positions)
    for column in COLUMNS:
        timing(f"per token: {column}", b[column], m.parts[column], b["tokens"], m.tokens)
    rows.append("")
    rows.append("| bytes | baseline | now |")
    rows.append("|---|---:|---:|")
    for name, now in m.bytes.items():
        rows.append(f"| {name} | {b['bytes'][name]:,} | {now:,} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-dir", type=Path,
                        default=Path(os.environ.get("SOULC_SEED_DIR", REPO.parent / "shared" / "seed")))
    parser.add_argument("--ops", action="store_true", help="also list every op's uncontended T-states per token")
    args = parser.parse_args(argv)
    started = time.time()
    m = measure(args.seed_dir)
    print(f"seed on zx48: {m.tokens} tokens over {m.positions} computed positions "
          f"({len(json.loads((args.seed_dir / 'replies.json').read_text()))} prompts), "
          f"measured in {time.time() - started:.0f} s\n")
    print(table(m))
    if args.ops:
        print("\n| op | T-states per token, uncontended |\n|---|---:|")
        for name, t in sorted(m.ops.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {_per(t, m.tokens)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
