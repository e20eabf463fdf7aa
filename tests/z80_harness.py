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
STACK_TOP = 0x6000      # the stack grows down from here; code and data go above it


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


def profile_step(machine: Machine, symbols: dict[str, int], program) -> list[tuple[str, int]]:
    """T-states of each op of one call of `step` (labels step_op<i> mark the ops)."""
    regs = machine.sim.registers
    sp = STACK_TOP - 2
    machine.memory[sp] = STOP & 0xFF
    machine.memory[sp + 1] = STOP >> 8
    regs[SP] = sp
    regs[T] = 0
    regs[PC] = symbols["step"]
    marks = [symbols[f"step_op{i}"] for i in range(len(program.body) + 1)]
    costs, last = [], 0
    for i, op in enumerate(program.body):
        if regs[PC] == STOP:
            break
        if regs[PC] != marks[i + 1]:
            machine.sim.run(regs[PC], marks[i + 1])
        costs.append((f"{op.opcode} {op.result or op.args[0]}", regs[T] - last))
        last = regs[T]
        if regs[PC] != marks[i + 1]:
            break
    return costs


def build_step_machine(program, unroll: int | None = None, code_start: int = 0x6000):
    """Lays out a step-form program (code, then constants in the backend's encoding, states,
    the shared value arena), assembles `step` and loads everything. Returns (machine,
    symbols, placed program)."""
    from soulc.passes.allocate import arena_offsets
    from soulc.targets.z80 import codegen

    kwargs = {} if unroll is None else {"unroll": unroll}
    data = codegen.const_bytes(program, **kwargs)
    offsets, arena = arena_offsets(program, lambda name: 1)

    def layout(start):
        memory, cursor = {}, start
        for name, blob in data.items():
            if blob:
                memory[f"@{name}"] = cursor
                cursor += len(blob)
        for name, state in program.states.items():
            memory[f"@{name}"] = cursor
            cursor += state.type.nbytes
        for name, offset in offsets.items():
            memory[f"%{name}"] = cursor + offset
        return memory, cursor + arena

    def source(placed):
        return codegen.step_asm(placed, **kwargs)

    placed = program.copy()
    placed.memory, _ = layout(code_start)
    code_end = assemble(f"        ORG 0x{code_start:04X}\n" + source(placed)).end
    placed.memory, end = layout(code_end)
    if end > 0x10000:
        raise ValueError(f"the program needs memory up to 0x{end:X}")
    machine = Machine()
    symbols = machine.assemble_at(source(placed), code_start)
    for name, blob in data.items():
        if blob:
            machine.load(placed.memory[f"@{name}"], blob)
    return machine, symbols, placed


def run_step(machine: Machine, symbols: dict[str, int], token: int, pos: int, output: bool = True) -> tuple[int, int]:
    """One call of `step`: (A on return, T-states)."""
    machine.memory[symbols["STEP_TOKEN"]] = token
    machine.memory[symbols["STEP_POS"]] = pos
    machine.memory[symbols["STEP_OUTPUT"]] = int(output)
    t = machine.call(symbols["step"])
    return machine.sim.registers[0], t
