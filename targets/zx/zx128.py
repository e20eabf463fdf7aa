"""The zx128 target: a ZX Spectrum 128K (or +2), Z80 code, weights paged in from memory banks.

Always-visible memory runs from CODE_START to 0xBFFF: the cold code (chat loop, ROM I/O, the
bank loader) from CODE_START in bank 5 (contended), the hot step code from 0x8000 in bank 2
(uncontended). The bank_split pass places the values, tables and as much else as fits there,
and the rest in banks 0, 4, 6, 1, 3, 7 at 0xC000, inserting the `bank` ops that page them in.

The tape: the BASIC loader loads the main block (always-visible memory) and calls the bank
loader (bank_loader.py), which loads each bank's headerless block and starts the chat. The
screen protocol is zx48's. `--emit asm`/`bin` give the main block; the banks' data are the
tape's headerless blocks.
"""
from __future__ import annotations

from functools import partial

from soulc.errors import SoulcError
from soulc.ir.program import Program
from soulc.passes.allocate import Region
from soulc.passes.bank_split import BankedMachine, bank_split
from soulc.passes.schedule import output_last
from soulc.targets.target import Build, Target
from soulc.targets.z80.assembler import assemble
from soulc.targets.z80.image import Layout, build_image, code_sizes, const_sizes, data_asm, row_bytes

from .bank_loader import loader_asm
from .io import spectrum_io_asm
from .machine import BANK_WINDOW, CODE_START, ZX128, MachineMap, data_regions
from .memory_map import memory_map
from .tap import make_tap
from .zx48 import REPLY_PREFIX, title

TAP_NAME = "soul128"


def _io_asm(blocks: list[tuple[int, int]]) -> str:
    return spectrum_io_asm() + loader_asm(blocks, len(ZX128.banks))


def visible_regions(program: Program, machine: MachineMap = ZX128) -> list[Region]:
    """Always-visible memory free after the program's code, uncontended first."""
    cold, hot = code_sizes(program, _io_asm([]), title(program), REPLY_PREFIX)
    cold_end = machine.contended[0] + cold
    hot_end = machine.uncontended[0] + hot
    if cold_end > machine.contended[1] or hot_end > machine.uncontended[1]:
        raise SoulcError(f"the code does not fit {machine.name}: {cold} bytes of chat loop and "
                         f"{hot} bytes of model code")
    return data_regions(machine, cold_end, hot_end)


ZX128_BANKS = BankedMachine(name=ZX128.name, visible=visible_regions, banks=ZX128.banks,
                            const_sizes=const_sizes, window=BANK_WINDOW, row_bytes=row_bytes)
bank_split_zx128 = partial(bank_split, machine=ZX128_BANKS)


def bank_block(program: Program, bank: int) -> bytes:
    """The bytes of one bank from 0xC000 to the end of its last constant (states need none)."""
    text = data_asm(program, bank)
    if not text.strip():
        return b""
    code = assemble(text)
    return bytes(code.origin - BANK_WINDOW[0]) + code.code


def build_zx128(program: Program) -> Build:
    banks = sorted(set(program.banks.values()))
    blocks = {bank: bank_block(program, bank) for bank in banks}
    loaded = [(bank, len(data)) for bank, data in blocks.items() if data]
    image = build_image(program, Layout(ZX128.contended[0], ZX128.uncontended[0]), _io_asm(loaded),
                        title(program), REPLY_PREFIX)
    code = image.assembled
    if code.origin != CODE_START or code.end > BANK_WINDOW[0]:
        raise AssertionError(f"the main block spans 0x{code.origin:04X}-0x{code.end:04X}")
    tap = make_tap(TAP_NAME, [(code.origin, code.code)], entry=code.symbols["load_banks"],
                   clear=CODE_START - 1, headerless=[blocks[bank] for bank, _ in loaded])
    symbols = "".join(f"{name} EQU 0x{address:04X}\n"
                      for name, address in sorted(code.symbols.items(), key=lambda kv: (kv[1], kv[0])))
    return Build(
        artefacts={"asm": image.asm, "sym": symbols, "bin": code.code, "tap": tap},
        memory_map=memory_map(program, ZX128, code.symbols, const_sizes(program)),
        default_emit="tap",
    )


ZX128_TARGET = Target(
    name="zx128",
    description="ZX Spectrum 128K: Z80 at 3.55 MHz, weights in paged memory banks, TAP for Tape Loader",
    passes=[("schedule", output_last), ("bank_split", bank_split_zx128)],
    build=build_zx128,
    emits=("asm", "sym", "bin", "tap"),
)
