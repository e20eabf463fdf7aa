"""Test helper: assemble Z80 text, run subroutines in skoolkit's C simulator on a flat 64K RAM.

No ROM: the routines under test are pure computation. A subroutine is run by pushing the
address STOP as its return address and running until the program counter reaches it.
"""
from __future__ import annotations

import numpy as np
from skoolkit.csimulator import CSimulator
from skoolkit.simutils import PC, SP, T

from soulc.targets.z80.assembler import assemble

STOP = 0x0008           # a return address nothing else uses
STACK_TOP = 0x7FF0


class Machine:
    def __init__(self):
        self.sim = CSimulator(bytearray(65536), {}, {}, None)

    @property
    def memory(self) -> bytearray:
        return self.sim.memory

    def assemble_at(self, text: str, origin: int) -> dict[str, int]:
        assembled = assemble(f"        ORG 0x{origin:04X}\n" + text)
        self.load(assembled.origin, assembled.code)
        return assembled.symbols

    def load(self, address: int, data) -> None:
        data = bytes(data)
        self.memory[address:address + len(data)] = data

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.memory[address:address + size])

    def i16(self, address: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read(address, 2 * count), "<i2").astype(np.int64)

    def i32(self, address: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read(address, 4 * count), "<i4").astype(np.int64)

    def u8(self, address: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read(address, count), np.uint8).astype(np.int64)

    def put_i16(self, address: int, values) -> None:
        self.load(address, np.asarray(values, dtype="<i2").tobytes())

    def call(self, address: int, registers: dict[int, int] | None = None) -> int:
        """Runs the subroutine at `address` to its return; the T-states it took."""
        regs = self.sim.registers
        sp = STACK_TOP - 2
        self.memory[sp] = STOP & 0xFF
        self.memory[sp + 1] = STOP >> 8
        regs[SP] = sp
        regs[T] = 0
        for index, value in (registers or {}).items():
            regs[index] = value
        self.sim.run(address, STOP)
        assert regs[SP] == STACK_TOP, f"stack unbalanced: SP=0x{regs[SP]:04X}"
        return regs[T]


def linear_addresses(sizes: dict[str, int], start: int, align: dict[str, int] | None = None) -> dict[str, int]:
    """A simple allocator for tests: one item after another."""
    addresses, cursor = {}, start
    for name, size in sizes.items():
        step = (align or {}).get(name, 1)
        cursor = -(-cursor // step) * step
        addresses[name] = cursor
        cursor += size
    if cursor > 0x10000:
        raise ValueError(f"test layout overflows memory: ends at 0x{cursor:X}")
    return addresses
