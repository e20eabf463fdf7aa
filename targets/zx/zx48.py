"""The zx48 target: a 48K ZX Spectrum, Z80 code, a TAP that loads with LOAD "".

The program's memory runs from CODE_START (below it: the BASIC loader and the stack) to
0xFFFF. The cold code (chat loop, ROM I/O) goes first, in contended memory; the hot step
code at 0x8000; the allocate pass then places values, KV caches and weights, hottest first,
in what is left of uncontended memory and then of contended memory.
"""
from __future__ import annotations

from soulc.errors import SoulcError
from soulc.ir.program import Program
from soulc.passes.allocate import allocate
from soulc.passes.schedule import output_last
from soulc.targets.target import Build, Target
from soulc.targets.z80.image import Layout, build_image, code_sizes, const_sizes, label

from .io import spectrum_io_asm
from .machine import CODE_START, ZX48, MachineMap, data_regions
from .memory_map import memory_map
from .tap import make_tap

REPLY_PREFIX = "ZX> "
TAP_NAME = "soul"


def title(program: Program) -> str:
    weights = sum(c.type.size for c in program.consts.values() if c.type.dtype == "i8")
    return f"soulc: a {weights:,}-weight soul"[:32]


def _code_ends(program: Program, machine: MachineMap) -> tuple[int, int]:
    cold, hot = code_sizes(program, spectrum_io_asm(), title(program), REPLY_PREFIX, machine.spare)
    cold_end = machine.contended[0] + cold
    hot_end = machine.uncontended[0] + hot
    if cold_end > machine.contended[1] or hot_end > machine.uncontended[1]:
        raise SoulcError(f"the code does not fit {machine.name}: {cold} bytes of chat loop and "
                         f"{hot} bytes of model code")
    return cold_end, hot_end


def allocate_zx48(program: Program) -> Program:
    cold_end, hot_end = _code_ends(program, ZX48)
    return allocate(program, data_regions(ZX48, cold_end, hot_end), ZX48.name,
                    const_sizes=const_sizes(program))


def build_zx48(program: Program) -> Build:
    image = build_image(program, Layout(ZX48.contended[0], ZX48.uncontended[0], ZX48.spare), spectrum_io_asm(),
                        title(program), REPLY_PREFIX)
    code = image.assembled
    if code.origin != CODE_START:
        raise AssertionError(f"the image starts at 0x{code.origin:04X}, not 0x{CODE_START:04X}")
    tap = make_tap(TAP_NAME, [(code.origin, code.code)], entry=image.entry, clear=CODE_START - 1)
    symbols = "".join(f"{name} EQU 0x{address:04X}\n"
                      for name, address in sorted(code.symbols.items(), key=lambda kv: (kv[1], kv[0])))
    return Build(
        artefacts={"asm": image.asm, "sym": symbols, "bin": code.code, "tap": tap},
        memory_map=memory_map(program, ZX48, code.symbols, const_sizes(program)),
        default_emit="tap",
    )


ZX48_TARGET = Target(
    name="zx48",
    description="ZX Spectrum 48K: Z80 at 3.5 MHz, TAP for LOAD \"\"",
    passes=[("schedule", output_last), ("allocate", allocate_zx48)],
    build=build_zx48,
    emits=("asm", "sym", "bin", "tap"),
)

__all__ = ["ZX48_TARGET", "label"]
