"""The whole Z80 program as one assembly text, and its machine code.

Layout: the cold part (entry jump, chat loop, machine I/O) at the start of the program's
memory, which on the Spectrum is contended; the hot part (the compiled `step` and its
routines and tables) at the start of fast memory; then every constant at the address the
allocate pass gave it. Values need no bytes in the image (scratch, written before it is read);
states only their rows for the prompt prefix's positions, which the chat loop never computes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from soulc.ir.program import Program

from .assembler import Assembled, assemble
from .buffers import Spare, buffers_asm
from .chatloop import STEP_SYMBOLS, chat_buffers, chat_loop_asm
from .codegen import const_bytes, prefilled_states, row_bounds, step_asm


@dataclass(frozen=True)
class Layout:
    cold_start: int             # entry point: the chat loop and the machine's I/O
    hot_start: int              # the step code, in the fastest memory
    spare: Spare = None         # RAM free at run time that the loader leaves alone (buffers.py)


@dataclass
class Image:
    asm: str
    assembled: Assembled

    @property
    def entry(self) -> int:
        return self.assembled.symbols["entry"]


def label(name: str) -> str:
    """An assembler label for an IR name (@l0.q -> c_l0_q, %l0.q -> v_l0_q)."""
    prefix = "c_" if name.startswith("@") else "v_"
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name[1:])


def cold_asm(program: Program, io_asm: str, title: str, reply_prefix: str, spare: Spare = None) -> str:
    return "entry:\n        JP chat_main\n" + chat_loop_asm(program, title, reply_prefix, spare) + io_asm


def _step_spare(program: Program, spare: Spare) -> Spare:
    """What the chat loop's buffers leave of the spare RAM for the step's."""
    return buffers_asm(chat_buffers(program), spare)[1]


def const_sizes(program: Program) -> dict[str, int]:
    return {name: len(data) for name, data in const_bytes(program).items()}


def row_bytes(program: Program) -> dict[str, int]:
    """The most bytes one row of each 2-D constant takes in the backend's encoding."""
    return row_bounds(program)


def data_asm(program: Program, bank: int | None = None) -> str:
    """Every placed constant, in the backend's encoding, at its address, and the cache rows
    of the prompt prefix's positions (codegen.prefilled_states): those in always-visible
    memory, or with `bank`, those in that memory bank (program.banks)."""
    encoded = {f"@{name}": data for name, data in const_bytes(program).items()}
    encoded.update({f"@{name}": data for name, data in prefilled_states(program).items()})
    lines = []
    for name, address in sorted(program.memory.items(), key=lambda item: item[1]):
        if name not in encoded or program.banks.get(name) != bank:
            continue
        values = np.frombuffer(encoded[name], np.uint8)
        lines.append(f"        ORG 0x{address:04X}\n{label(name)}:")
        lines += [f"        DEFB {','.join(map(str, values[i:i + 32]))}" for i in range(0, len(values), 32)]
    return "\n".join(lines) + "\n"


def image_asm(program: Program, layout: Layout, io_asm: str, title: str, reply_prefix: str) -> str:
    return (f"; soulc: {title}\n"
            f"        ORG 0x{layout.cold_start:04X}\n"
            + cold_asm(program, io_asm, title, reply_prefix, layout.spare)
            + "cold_end:\n"
            + f"        ORG 0x{layout.hot_start:04X}\n"
            + step_asm(program, _step_spare(program, layout.spare))
            + "hot_end:\n"
            + data_asm(program))


def build_image(program: Program, layout: Layout, io_asm: str, title: str, reply_prefix: str) -> Image:
    text = image_asm(program, layout, io_asm, title, reply_prefix)
    return Image(text, assemble(text))


def code_sizes(program: Program, io_asm: str, title: str, reply_prefix: str,
               spare: Spare = None) -> tuple[int, int]:
    """Bytes of the cold and hot code; they do not depend on where the data lies."""
    placed = program.copy()
    placed.memory = _anywhere(program)
    outside = "".join(f"{name} EQU 0\n" for name in STEP_SYMBOLS)
    cold = assemble("        ORG 0x8000\n" + cold_asm(program, io_asm, title, reply_prefix, spare) + outside)
    hot = assemble("        ORG 0x8000\n" + step_asm(placed, _step_spare(program, spare)))
    return len(cold.code), len(hot.code)


def _anywhere(program: Program) -> dict[str, int]:
    names = [f"@{n}" for n in program.consts] + [f"@{n}" for n in program.states]
    names += [f"%{op.result}" for op in program.body if op.result is not None]
    return {name: 0x8000 for name in names}
