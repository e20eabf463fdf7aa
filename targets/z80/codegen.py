"""codegen: a step-form Program whose memory is placed -> the Z80 assembly of `step`.

`step_asm(program)` returns the hot code: the page-aligned tables first (the table G of
runtime_math.py, then when a matvec or scores needs them the subset-sum tables of
ops/subsets.py and matvec's row constants: no padding is needed when the code starts on a
page), the cells STEP_TOKEN, STEP_POS, STEP_OUTPUT (bytes), the `step` subroutine, the op
routines it calls and the shared arithmetic. `step` computes one position:

    in:  STEP_TOKEN = token id, STEP_POS = position (0-based), STEP_OUTPUT = 0 or not
    out: when STEP_OUTPUT != 0, A = the next token id (argmax); otherwise the ops that only
         feed the output (after the last KV-cache store) are skipped and A is undefined.
    It runs with interrupts disabled (the matrix code reads weights with POP) and enables
    them on return; IY and the alternate registers are preserved (the ROM relies on them).

Every op is a CALL to a routine followed by an inline parameter block (see ops/*.py).
Values are int16 little-endian, scores int32 [heads, context], softmax weights u8 [heads,
context], as in the interpreter; states are int16 [context, width], except a key cache read
only by scores ops with heads of 8 values: its rows hold per head the bit planes of the keys
(ops/store.py op_storek, ops/scores.py).

Constants are not emitted here (the image places them), but some are stored in this
backend's own form: `const_bytes(program)` gives the bytes every constant must hold.
A matvec weight becomes the stream of ops/matvec.py (per row a header and the bit planes of
its weights, the bias after them); a bias used only by matvecs needs no bytes of its own;
all else is the tensor's little-endian bytes. The step code names what it uses by EQUs from
program.memory: k_<const>, s_<state>, v_<value> (non-alphanumerics become _).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from soulc.errors import SoulcError
from soulc.ir.program import Op, Program

from .buffers import Spare
from .ops import add, argmax, bank, concat, embed, matvec, mix, relu, rmsnorm, scores, softmax_lut, store, subsets
from .runtime_math import math_asm, sqtable_asm


def label(name: str, program: Program | None = None) -> str:
    """The step code's symbol for a placed name: k_ constants, s_ states, v_ values (distinct
    from the image's own c_ labels for the constants it emits)."""
    if name.startswith("%"):
        prefix = "v_"
    else:
        prefix = "s_" if program is not None and name[1:] in program.states else "k_"
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name[1:])


@dataclass(frozen=True)
class MatvecUse:
    weight: str
    bias: str | None


def key_states(program: Program) -> dict[str, int]:
    """States read only by scores ops that can run on the matvec loop -> their heads.
    Those are written by op_storek, in the order op_scores reads (see ops/scores.py)."""
    readers: dict[str, list[Op]] = {}
    for op in program.body:
        for arg in op.args:
            if arg.startswith("@") and arg[1:] in program.states and op.opcode != "store":
                readers.setdefault(arg[1:], []).append(op)
    keys = {}
    for name, ops in readers.items():
        width = program.states[name].type.shape[1]
        heads = {op.attrs.get("heads") for op in ops}
        if all(op.opcode == "scores" for op in ops) and len(heads) == 1:
            (h,) = heads
            if scores.fast(width // h):
                keys[name] = h
    # one op_scores routine serves one head width
    widths = {program.states[n].type.shape[1] // h for n, h in keys.items()}
    if len(widths) > 1:
        first = min(widths)
        keys = {n: h for n, h in keys.items() if program.states[n].type.shape[1] // h == first}
    return keys


def prefilled_states(program: Program) -> dict[str, bytes]:
    """Every prompt starts with the same prefix tokens, so the cache rows of those positions
    are the same in every chat: computed here by the interpreter (the ground truth), in the
    backend's layout, they are loaded with the program and the chat loop starts at the first
    position after the prefix. State -> the bytes of its first len(prefix) rows."""
    from soulc.ir.interpreter import Interpreter

    prefix = list(program.settings.prompt_prefix)
    if not prefix or not program.states:
        return {}
    interpreter = Interpreter(program)
    for token in prefix:
        interpreter.feed(token)
    keys = key_states(program)
    out = {}
    for name, rows in interpreter.states.items():
        done = np.asarray(rows[: len(prefix)])
        out[name] = (store.key_rows(done, keys[name]) if name in keys
                     else done.astype("<i2").tobytes())
    return out


def pruned_matvecs(program: Program) -> set[str]:
    """The matvecs read only by argmax whose rows may stop early (ops/matvec.py can_prune):
    they compute just the argmax range, and a row that cannot win leaves -32768."""
    out = set()
    for op in program.body:
        if op.opcode != "matvec":
            continue
        readers = [o.opcode for o in program.body if f"%{op.result}" in o.args]
        weight = program.consts[op.args[0][1:]]
        bias = program.consts[op.args[2][1:]].data if len(op.args) == 3 else None
        shift = weight.shift + op.attrs.get("post", 0)
        wide = not matvec.fits_24_bits(np.asarray(weight.data), bias)
        if readers == ["argmax"] and matvec.can_prune(weight.type.shape[1], shift, bias is not None, wide):
            out.add(op.result)
    return out


def matvec_uses(program: Program) -> dict[str, MatvecUse]:
    """Weight const -> how matvecs use it; one bias per weight (the stream holds it)."""
    uses: dict[str, MatvecUse] = {}
    for op in program.body:
        if op.opcode != "matvec":
            continue
        weight = op.args[0][1:]
        bias = op.args[2][1:] if len(op.args) == 3 else None
        use = MatvecUse(weight, bias)
        if uses.get(weight, use) != use:
            raise SoulcError(f"@{weight} is used by matvecs with different biases; the Z80 backend "
                             "folds one bias into the weights")
        uses[weight] = use
    return uses


def const_bytes(program: Program) -> dict[str, bytes]:
    """The bytes each constant occupies in memory for this backend (empty: not needed)."""
    uses = matvec_uses(program)
    biases = {u.bias for u in uses.values() if u.bias}
    other_reads = {a[1:] for op in program.body if op.opcode != "matvec" for a in op.args if a.startswith("@")}
    out = {}
    for name, const in program.consts.items():
        if name in uses:
            bias = uses[name].bias
            out[name] = matvec.encode_weights(const.data, None if bias is None else program.consts[bias].data)
        elif name in biases and name not in other_reads:
            out[name] = b""
        else:
            data = const.data
            out[name] = data.astype(data.dtype.newbyteorder("<")).tobytes()
    return out


def row_bounds(program: Program) -> dict[str, int]:
    """For each 2-D constant, the most bytes one of its rows takes in const_bytes: a matvec's
    rows differ in length (ops/matvec.py), others take their share."""
    uses = matvec_uses(program)
    out = {}
    for name, const in program.consts.items():
        if len(const.type.shape) != 2:
            continue
        rows, cols = const.type.shape
        if name in uses:
            out[name] = matvec.max_row_bytes(cols, uses[name].bias is not None)
        else:
            out[name] = const.type.nbytes // rows
    return out


def output_only(program: Program) -> list[bool]:
    """For each op: does only the output (argmax) need it, not any KV-cache store?"""
    needed: set[str] = set()
    for op in reversed(program.body):
        if op.opcode == "store" or (op.result is not None and op.result in needed):
            needed.update(a[1:] for a in op.args if a.startswith("%"))
    last_store = max((i for i, op in enumerate(program.body) if op.opcode == "store"), default=-1)
    return [i > last_store and op.opcode != "store" and (op.result is None or op.result not in needed)
            for i, op in enumerate(program.body)]


class _Routines:
    """Collects the op routines a program needs, generated once each."""

    def __init__(self, program: Program, spare: Spare = None):
        self.program = program
        self.spare = spare
        self.used: set[str] = set()
        self.embeds: dict[tuple, int] = {}
        self.softmaxes: dict[tuple, int] = {}
        self.matvec_shifts: set[int] = set()
        self.prune_shifts: set[int] = set()         # shifts of the matvecs that prune (mv_f24p_)
        self.rmsnorm_shifts: set[int] = set()
        self.matvec_shapes: list[tuple[int, int]] = []     # (rows, cols) of every matvec
        self.matvec_weights: list = []                     # and its weight
        self.row_variants: set[int] = set()                # groups per chunk the row code meets
        self.last_matvec: tuple[str, int] | None = None    # (x, cols) of the latest op_matvec call
        self.key_states = key_states(program)
        self.pruned = pruned_matvecs(program)
        self.scores_per_head = 0

    def call(self, op: Op) -> str:
        p, code, a = self.program, op.opcode, op.args
        types = {**p.value_types(), **{f"{n}": c.type for n, c in p.consts.items()}}

        def typ(arg):
            name = arg[1:]
            if arg.startswith("@"):
                return p.consts[name].type if name in p.consts else p.states[name].type
            return types[name]

        ref = [label(x, p) for x in a]
        out = label("%" + op.result) if op.result is not None else None
        self.used.add(code)
        if code == "embed":
            te, pe = p.consts[a[0][1:]], p.consts[a[1][1:]]
            key = (te.type.shape[1], te.shift, pe.shift)
            index = self.embeds.setdefault(key, len(self.embeds))
            return embed.call_asm(index, ref[0], ref[1], out)
        if code == "rmsnorm":
            gain = p.consts[a[1][1:]]
            self.rmsnorm_shifts.add(gain.shift)
            return rmsnorm.call_asm(ref[0], ref[1], out, typ(a[0]).shape[0], gain.shift)
        if code == "matvec":
            weight = p.consts[a[0][1:]]
            bias = p.consts[a[2][1:]].data if len(a) == 3 else None
            rows, cols = weight.type.shape
            shift = weight.shift + op.attrs.get("post", 0)
            self.matvec_shifts.add(shift)
            self.matvec_shapes.append((rows, cols))
            self.matvec_weights.append(weight.data)
            self.row_variants |= set(matvec.chunk_groups(cols))
            same_x = self.last_matvec == (a[1], cols)
            self.last_matvec = (a[1], cols)
            wide = not matvec.fits_24_bits(np.asarray(weight.data), bias)
            if op.result in self.pruned:
                lo, hi = p.settings.argmax          # only these rows: others must not set the bar
                self.prune_shifts.add(shift)
                start = matvec.row_offset(np.asarray(weight.data), lo)
                return matvec.call_asm(f"{ref[0]}+{start}", ref[1], f"{out}+{2 * lo}", hi - lo, cols, shift,
                                       False, same_x, wide, prune=True)
            return matvec.call_asm(ref[0], ref[1], out, rows, cols, shift, bias is not None, same_x, wide)
        if code == "relu":
            return relu.call_asm(ref[0], out, typ(a[0]).shape[0])
        if code == "add":
            return add.call_asm(ref[0], ref[1], out, typ(a[0]).shape[0])
        if code == "store":
            width = typ(a[0]).shape[1]
            if a[0][1:] in self.key_states:
                self.used.add("storek")
                heads = self.key_states[a[0][1:]]
                return store.keys_call_asm(ref[0], ref[1], 2 * width, heads, width // heads)
            return store.call_asm(ref[0], ref[1], 2 * width)
        if code == "scores":
            width = typ(a[0]).shape[0]
            heads = op.attrs["heads"]
            use_fast = a[1][1:] in self.key_states
            if use_fast:
                self.scores_per_head = width // heads
                self.row_variants.add(1)
                self.last_matvec = None         # the subset-sum tables now hold this query
            else:
                self.used.add("scores_mul")
            return scores.call_asm(ref[0], ref[1], out, heads, width // heads, 2 * width, p.settings.context,
                                   use_fast)
        if code == "softmax_lut":
            key = (op.attrs["shift"], typ(a[0]).shape[1])
            index = self.softmaxes.setdefault(key, len(self.softmaxes))
            heads = typ(a[0]).shape[0]
            return softmax_lut.call_asm(index, ref[0], ref[1], out, heads, typ(a[1]).shape[0])
        if code == "mix":
            heads = op.attrs["heads"]
            width = typ(a[1]).shape[1]
            return mix.call_asm(ref[0], ref[1], out, heads, width // heads, 2 * width, p.settings.context)
        if code == "bank":                      # inline, see ops/bank.py
            return bank.call_asm(op.attrs["n"])
        if code == "concat":                    # inline, see ops/concat.py
            return concat.call_asm(ref[0], ref[1], out, typ(a[0]).shape[0], typ(a[1]).shape[0])
        if code == "argmax":
            lo, hi = p.settings.argmax
            return argmax.call_asm(ref[0], lo, hi) + "        LD (STEP_NEXT),A\n"
        raise SoulcError(f"the Z80 backend has no code for op {code}")

    def uses_tables(self) -> bool:
        return "matvec" in self.used or bool(self.scores_per_head)

    def helpers(self) -> set[str]:
        needed = set()
        modules = {"matvec": matvec, "mix": mix, "rmsnorm": rmsnorm, "embed": embed}
        for code, module in modules.items():
            if code in self.used or (code == "matvec" and self.scores_per_head):
                needed |= module.NEEDS
        if "scores_mul" in self.used:
            needed |= scores.NEEDS_FALLBACK
        return needed

    def routines(self) -> str:
        text = []
        if self.uses_tables():
            text.append(matvec.kernel_asm(self.matvec_shifts, self.row_variants,
                                          matvec.park_rows(self.matvec_shapes), self.prune_shifts,
                                          matvec.k_range(self.matvec_weights)))
            text += [subsets.planes_asm(g, matvec.row_label(g)) for g in sorted(self.row_variants)]
            text.append(subsets.build_asm(self.spare))
        if self.scores_per_head:
            text.append(scores.routine_asm())
        if "scores_mul" in self.used:
            text.append(scores.fallback_routine_asm())
        if "storek" in self.used:
            text.append(store.keys_routine_asm())
        for key, index in self.embeds.items():
            text.append(embed.routine_asm(index, *key))
        for (shift, context), index in self.softmaxes.items():
            text.append(softmax_lut.routine_asm(index, shift, context))
        simple = {"rmsnorm": rmsnorm, "relu": relu, "add": add, "store": store, "mix": mix, "argmax": argmax}
        for code, module in simple.items():
            if code in self.used:
                text.append(module.routine_asm(self.uses_tables()) if code == "mix" else module.routine_asm())
        if "rmsnorm" in self.used:
            text.append(rmsnorm.finishers_asm(self.rmsnorm_shifts))
        return "".join(text)


def _symbols(program: Program) -> str:
    """EQUs for every placed constant, state and value the step reads or writes."""
    return "".join(f"{label(name, program)} EQU 0x{address:04X}\n"
                   for name, address in sorted(program.memory.items()))


def step_asm(program: Program, spare: Spare = None) -> str:
    """spare: RAM free at run time that the routines' buffers may take (see buffers.py)."""
    if program.form != "step":
        raise SoulcError("the Z80 backend compiles the step form (run the kv_cache pass first)")
    missing = [n for n in [f"@{c}" for c in program.states] + [f"%{op.result}" for op in program.body
                                                               if op.result is not None]
               if n not in program.memory]
    if missing:
        raise SoulcError(f"no address for {', '.join(missing[:5])}: run the allocate pass first")
    routines = _Routines(program, spare)
    skips = output_only(program)
    body = []
    skipping = False
    for index, (op, only_output) in enumerate(zip(program.body, skips)):
        if only_output and not skipping:
            body.append("        LD A,(STEP_OUTPUT)\n        OR A\n        JP Z,step_done\n")
            skipping = True
        body.append(f"step_op{index}:\n        ; {op.opcode} {', '.join(op.args)}" + (f" -> %{op.result}" if op.result else "") + "\n")
        body.append(routines.call(op))
    calls = "".join(body)
    tables = subsets.tables_asm() + matvec.ktab_asm(bool(routines.prune_shifts)) if routines.uses_tables() else ""
    # the page-aligned tables first: the hot code starts on a page on the Spectrum, so their
    # alignment costs nothing
    squares = sqtable_asm() if "rmsnorm" in routines.used else ""
    return (f"; ---- step (targets/z80/codegen.py) ----\n{_symbols(program)}" + squares + tables +
            "STEP_TOKEN: DEFB 0\nSTEP_POS: DEFB 0\nSTEP_OUTPUT: DEFB 0\nSTEP_NEXT: DEFB 0\n"
            "step:\n"
            "        DI\n"
            "        PUSH IY\n"
            "        EXX\n        PUSH BC\n        PUSH DE\n        PUSH HL\n        EXX\n"
            "        EX AF,AF'\n        PUSH AF\n        EX AF,AF'\n"
            + calls +
            f"step_op{len(program.body)}:\n"
            "step_done:\n"
            "        EX AF,AF'\n        POP AF\n        EX AF,AF'\n"
            "        EXX\n        POP HL\n        POP DE\n        POP BC\n        EXX\n"
            "        POP IY\n"
            "        LD A,(STEP_NEXT)\n"
            "        EI\n"
            "        RET\n"
            + routines.routines() + math_asm(routines.helpers()))


def unused_for_data(program: Program) -> set[str]:
    """Constants this backend never reads (biases folded into their matvec's weights)."""
    return {name for name, data in const_bytes(program).items() if not data}


__all__ = ["step_asm", "const_bytes", "label", "output_only", "unused_for_data"]
