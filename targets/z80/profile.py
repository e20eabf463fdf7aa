"""Running compiled Z80 code in skoolkit's C simulators, for the tests and the benchmarks.

`Machine` is a flat 64K of RAM (no ROM, no contention) in which assembled routines are
called as subroutines: the address STOP is pushed as the return address and the simulator
runs until the program counter reaches it. `build_step_machine` lays out a step-form
program (code, constants in the backend's encoding, states, the value arena) and loads it.

`profile_step` times each op of one call of `step` (the codegen marks op i with the label
step_op<i>), also for a position whose output is not wanted, where `step` skips the ops
that only feed the output. `Machine.spectrum48` gives a 48K Spectrum's memory map with the
ROM and the ULA's contention of 0x4000-0x7FFF, for timing a zx48 image as it really runs.
"""
from __future__ import annotations

import numpy as np
from skoolkit import CCMIOSimulator, ROM48, read_bin_file
from skoolkit.csimulator import CSimulator
from skoolkit.simutils import PC, SP, T, from_memory

from soulc.ir.program import Program

from .assembler import assemble

STOP = 0x0008           # a return address nothing else uses (in the ROM on a Spectrum)
STACK_TOP = 0x6000      # flat machine: the stack grows down from here; code and data go above

CATEGORIES = {          # op -> the benchmark's column
    "matvec": "matvec", "scores": "attention", "softmax_lut": "attention", "mix": "attention",
    "rmsnorm": "rmsnorm", "argmax": "argmax",
}


def op_category(opcode: str) -> str:
    return CATEGORIES.get(opcode, "other ops")


class Machine:
    def __init__(self, simulator=None, stack_top: int = STACK_TOP):
        self.sim = simulator or CSimulator(bytearray(65536), {}, {}, None)
        self.stack_top = stack_top

    @classmethod
    def spectrum48(cls, image: bytes, origin: int, stack_top: int, contended: bool = True) -> "Machine":
        """The 48K ROM and `image` at `origin`, timed with (or without) the ULA's contention."""
        memory = bytearray(65536)
        rom = read_bin_file(ROM48)
        memory[:len(rom)] = rom
        memory[origin:origin + len(image)] = image
        simulator_class = CCMIOSimulator if contended else CSimulator
        sim = from_memory(simulator_class, memory, {"SP": stack_top}, {"tstates": 0, "iff": 0, "im": 1})
        return cls(sim, stack_top)

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

    def _enter(self, address: int, reset_clock: bool = True) -> None:
        regs = self.sim.registers
        sp = self.stack_top - 2
        self.memory[sp] = STOP & 0xFF
        self.memory[sp + 1] = STOP >> 8
        regs[SP] = sp
        regs[PC] = address
        if reset_clock:
            regs[T] = 0

    def call(self, address: int, registers: dict[int, int] | None = None) -> int:
        """Runs the subroutine at `address` to its return; the T-states it took."""
        self._enter(address)
        regs = self.sim.registers
        for index, value in (registers or {}).items():
            regs[index] = value
        self.sim.run(address, STOP)
        assert regs[SP] == self.stack_top, f"stack unbalanced: SP=0x{regs[SP]:04X}"
        return regs[T]

    def run_until(self, stop: int) -> None:
        if self.sim.registers[PC] != stop:
            self.sim.run(self.sim.registers[PC], stop)


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


def set_step_inputs(machine: Machine, symbols: dict[str, int], token: int, pos: int, output: bool) -> None:
    machine.memory[symbols["STEP_TOKEN"]] = token
    machine.memory[symbols["STEP_POS"]] = pos
    machine.memory[symbols["STEP_OUTPUT"]] = int(output)


def profile_step(machine: Machine, symbols: dict[str, int], program: Program, output: bool = True,
                 reset_clock: bool = True) -> list[tuple[str, int]]:
    """T-states of each op of one call of `step` (with the inputs already set, see
    set_step_inputs); the ops `step` skips are left out. The prologue counts with the
    first op and the epilogue with the last one run. With reset_clock False the
    simulator's clock runs on from the last call (contention depends on it)."""
    from .codegen import output_only

    skipped = output_only(program) if not output else [False] * len(program.body)
    marks = [symbols[f"step_op{i}"] for i in range(len(program.body) + 1)]
    regs = machine.sim.registers
    machine._enter(symbols["step"], reset_clock)
    start = last = regs[T]
    costs = []
    for i, op in enumerate(program.body):
        if skipped[i]:
            break
        ends_step = i + 1 == len(program.body) or skipped[i + 1]
        machine.run_until(STOP if ends_step else marks[i + 1])
        costs.append((f"{op.opcode} {op.result or op.args[0]}", regs[T] - last))
        last = regs[T]
        if ends_step:
            break
    machine.run_until(STOP)
    if costs:
        name, t = costs[-1]
        costs[-1] = (name, t + regs[T] - last)
    assert sum(t for _, t in costs) == regs[T] - start
    return costs


def run_step(machine: Machine, symbols: dict[str, int], token: int, pos: int, output: bool = True) -> tuple[int, int]:
    """One call of `step`: (A on return, T-states)."""
    set_step_inputs(machine, symbols, token, pos, output)
    t = machine.call(symbols["step"])
    return machine.sim.registers[0], t


def build_step_machine(program: Program, code_start: int = 0x6000):
    """Lays out a step-form program (code, then constants in the backend's encoding, states,
    the shared value arena), assembles `step` and loads everything. Returns (machine,
    symbols, placed program)."""
    from soulc.passes.allocate import arena_offsets

    from . import codegen

    data = codegen.const_bytes(program)
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
        return codegen.step_asm(placed)

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
