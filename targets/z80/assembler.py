"""A Z80 assembler for pasmo-style source: labels, directives and expressions
are resolved here, each instruction is encoded by skoolkit's assembler.

Source syntax (a subset of what pasmo accepts):
    label:  LD A,(IX+offset)   ; comment
    name    EQU expression
            ORG expression
            DEFB/DB/DEFM 1, 'text', "text\\n", expr   DEFW/DW expr, ...
            DEFS/DS count[, fill]                    END
Labels are case-sensitive; mnemonics, registers and directives are not. A label
at the start of a line may omit its colon. Expressions: see expressions.py.

Instruction sizes do not depend on operand values, so addresses are found by
assembling repeatedly (forward references get a placeholder) until every
symbol keeps its value; a last strict pass then reports undefined symbols.
"""

import re
from dataclasses import dataclass, field

from skoolkit.z80 import Assembler as SkoolkitAssembler

from soulc.errors import SoulcError
from soulc.targets.z80.expressions import ExpressionError, UndefinedSymbol, evaluate

MAX_PASSES = 10

_REGISTER_OPERANDS = frozenset("""
    A B C D E H L I R AF AF' BC DE HL SP IX IY IXH IXL IYH IYL
    NZ Z NC PO PE P M (HL) (BC) (DE) (SP) (C) (IX) (IY)
""".split())
_INDEXED = re.compile(r"\(\s*(I[XY])\s*([+-])(.*)\)\s*$", re.IGNORECASE)
_LABEL = re.compile(r"\s*([A-Za-z_?@.][A-Za-z0-9_?@.$]*)\s*:")
_LEADING_WORD = re.compile(r"([A-Za-z_?@.][A-Za-z0-9_?@.$]*)")
_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"")
_RELATIVE_JUMPS = ("JR", "DJNZ")

_DIRECTIVES = {
    "ORG": "ORG", "EQU": "EQU", "END": "END",
    "DEFB": "DEFB", "DB": "DEFB", "DEFM": "DEFB",
    "DEFW": "DEFW", "DW": "DEFW",
    "DEFS": "DEFS", "DS": "DEFS",
}
_UNSUPPORTED = {"IF", "ELSE", "ENDIF", "MACRO", "ENDM", "REPT", "IRP", "INCLUDE", "INCBIN",
                "DEFL", "PROC", "ENDP", "LOCAL", "PUBLIC", ".ERROR", ".WARNING", ".SHIFT", "EXITM"}

_encoder = SkoolkitAssembler()
_MNEMONICS = frozenset(_encoder.mnemonics)


@dataclass(frozen=True)
class Assembled:
    origin: int
    code: bytes
    symbols: dict[str, int]

    @property
    def end(self) -> int:
        """The address just past the last byte."""
        return self.origin + len(self.code)


@dataclass(frozen=True)
class _Statement:
    line_number: int
    text: str
    label: str | None
    operation: str | None  # upper-case mnemonic or canonical directive name
    operands: list[str]


def assemble(text: str) -> Assembled:
    """Assemble Z80 source text into bytes from the lowest to the highest address written."""
    statements = _parse(text)
    symbols: dict[str, int] = {}
    for _ in range(MAX_PASSES):
        trial = _run_pass(statements, symbols, strict=False)
        if trial.complete and trial.symbols == symbols:
            break
        symbols = trial.symbols
    final = _run_pass(statements, symbols, strict=True)
    if final.symbols != symbols:
        unsettled = sorted(name for name in final.symbols if final.symbols[name] != symbols.get(name))
        raise SoulcError(f"addresses do not settle (ORG or DEFS using later labels?): {', '.join(unsettled)}")
    memory = final.memory
    if not memory:
        return Assembled(final.first_origin or 0, b"", final.symbols)
    origin = min(memory)
    code = bytes(memory.get(a, 0) for a in range(origin, max(memory) + 1))
    return Assembled(origin, code, final.symbols)


def _error(statement: _Statement, message: str) -> SoulcError:
    return SoulcError(f"line {statement.line_number}: {message}: {statement.text.strip()}")


# Parsing lines ------------------------------------------------------------

def _strip_comment(line: str) -> str:
    quote = None
    escaped = False
    for i, c in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\" and quote == '"':
                escaped = True
            elif c == quote:
                quote = None
        elif c in "'\"" and not line[:i].upper().rstrip().endswith("AF"):
            quote = c
        elif c == ";":
            return line[:i]
    return line


def _split_operands(text: str) -> list[str]:
    """Split at commas that are outside quotes and parentheses."""
    operands, current, depth, quote = [], "", 0, None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"' and i + 1 < len(text):
                current += text[i:i + 2]
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"" and not current.strip().upper() == "AF":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            operands.append(current.strip())
            current = ""
            i += 1
            continue
        current += c
        i += 1
    if current.strip() or operands:
        operands.append(current.strip())
    return operands


def _parse_line(line_number: int, text: str) -> _Statement:
    body = _strip_comment(text).rstrip()
    label = None
    m = _LABEL.match(body)
    if m:
        label, body = m.group(1), body[m.end():]
    elif body and not body[0].isspace():
        # a label without a colon, unless the word is an instruction or directive
        word = _LEADING_WORD.match(body)
        if word and word.group(1).upper() not in _MNEMONICS | set(_DIRECTIVES) | _UNSUPPORTED:
            label, body = word.group(1), body[word.end():]
    body = body.strip()
    if not body:
        return _Statement(line_number, text, label, None, [])
    parts = body.split(None, 1)
    word = parts[0].upper()
    rest = parts[1] if len(parts) > 1 else ""
    if label is None and len(parts) > 1 and rest.split(None, 1)[0].upper() == "EQU":
        # 'name EQU value' indented
        label, word, rest = parts[0], "EQU", rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
    statement = _Statement(line_number, text, label, None, [])
    if word in _UNSUPPORTED:
        raise _error(statement, f"unsupported directive {word}")
    if word in _DIRECTIVES:
        operation = _DIRECTIVES[word]
    elif word in _MNEMONICS:
        operation = word
    else:
        raise _error(statement, f"unknown instruction '{parts[0]}'")
    return _Statement(line_number, text, label, operation, _split_operands(rest))


def _parse(text: str) -> list[_Statement]:
    statements = []
    for number, line in enumerate(text.splitlines(), start=1):
        statement = _parse_line(number, line)
        if statement.operation == "END":
            statements.append(statement)
            break
        statements.append(statement)
    return statements


# Passes ---------------------------------------------------------------------

@dataclass
class _Pass:
    previous: dict[str, int]
    strict: bool
    symbols: dict[str, int] = field(default_factory=dict)
    memory: dict[int, int] = field(default_factory=dict)
    address: int = 0
    first_origin: int | None = None
    complete: bool = True  # False if any placeholder value was used


def _run_pass(statements: list[_Statement], previous: dict[str, int], strict: bool) -> _Pass:
    state = _Pass(previous, strict)
    for statement in statements:
        _assemble_statement(state, statement)
    return state


def _define(state: _Pass, statement: _Statement, name: str, value: int) -> None:
    if name in state.symbols:
        raise _error(statement, f"label '{name}' defined twice")
    state.symbols[name] = value


def _value(state: _Pass, statement: _Statement, expression: str, placeholder: int = 0) -> int:
    """Evaluate an expression; before the strict pass an unknown symbol gives `placeholder`."""
    def lookup(name: str) -> int:
        if name == "$":
            return state.address
        if name in state.symbols:
            return state.symbols[name]
        if name in state.previous:
            return state.previous[name]
        raise UndefinedSymbol(name)

    try:
        return evaluate(expression, lookup)
    except UndefinedSymbol as e:
        if state.strict:
            raise _error(statement, str(e)) from None
        state.complete = False
        return placeholder
    except ExpressionError as e:
        raise _error(statement, f"{e} in '{expression}'") from None


def _emit(state: _Pass, statement: _Statement, data) -> None:
    for byte in data:
        if state.address > 0xFFFF:
            raise _error(statement, "code goes past address 65535")
        state.memory[state.address] = byte & 0xFF
        state.address += 1


def _assemble_statement(state: _Pass, statement: _Statement) -> None:
    operation, operands = statement.operation, statement.operands
    if operation == "EQU":
        if statement.label is None:
            raise _error(statement, "EQU needs a label")
        if len(operands) != 1:
            raise _error(statement, "EQU takes one value")
        _define(state, statement, statement.label, _value(state, statement, operands[0]))
        return
    if statement.label is not None:
        _define(state, statement, statement.label, state.address)
    if operation is None or operation == "END":
        return
    if operation == "ORG":
        if len(operands) != 1:
            raise _error(statement, "ORG takes one address")
        state.address = _value(state, statement, operands[0])
        if state.first_origin is None:
            state.first_origin = state.address
    elif operation == "DEFB":
        _emit(state, statement, _defb(state, statement))
    elif operation == "DEFW":
        if not operands:
            raise _error(statement, "DEFW needs a value")
        words = [_value(state, statement, operand) for operand in operands]  # '$' is the statement's start
        _emit(state, statement, [byte for word in words for byte in (word & 0xFF, word >> 8)])
    elif operation == "DEFS":
        if len(operands) not in (1, 2):
            raise _error(statement, "DEFS takes a size and an optional fill byte")
        size = _value(state, statement, operands[0])
        fill = _value(state, statement, operands[1]) if len(operands) == 2 else 0
        _emit(state, statement, [fill] * size)
    else:
        _emit(state, statement, _instruction(state, statement))


def _string_bytes(statement: _Statement, literal: str) -> list[int]:
    quote, body = literal[0], literal[1:-1]
    if quote == "'":
        return [ord(c) for c in body.replace("''", "'")]
    data, i = [], 0
    escapes = {"n": 10, "r": 13, "t": 9, "a": 7, "\\": 92, '"': 34, "'": 39}
    while i < len(body):
        c = body[i]
        if c != "\\":
            data.append(ord(c))
            i += 1
            continue
        esc = body[i + 1:i + 2]
        if esc == "x":
            data.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif esc in escapes:
            data.append(escapes[esc])
            i += 2
        elif esc.isdigit():
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group()
            data.append(int(digits, 8))
            i += 1 + len(digits)
        else:
            raise _error(statement, f"unknown escape '\\{esc}'")
    return data


def _defb(state: _Pass, statement: _Statement) -> list[int]:
    if not statement.operands:
        raise _error(statement, "DEFB needs a value")
    data = []
    for operand in statement.operands:
        if _STRING.fullmatch(operand):
            data.extend(_string_bytes(statement, operand))
        else:
            data.append(_value(state, statement, operand) & 0xFF)
    if any(b > 0xFF for b in data):
        raise _error(statement, "character outside 0-255 in string")
    return data


def _signed(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _operand_text(state: _Pass, statement: _Statement, operand: str) -> str | int:
    """An operand for skoolkit: a register name kept as text, or an evaluated value.

    Returns the text to use, with numbers written in decimal; values that may
    need truncating to a byte are returned as ints so the caller can retry.
    """
    compact = re.sub(r"\s+", "", operand).upper()
    if compact in _REGISTER_OPERANDS:
        if compact in ("(IX)", "(IY)") and statement.operation != "JP":
            return f"{compact[:3]}+0)"
        return compact
    indexed = _INDEXED.match(operand)
    if indexed:
        register, sign, expression = indexed.group(1).upper(), indexed.group(2), indexed.group(3)
        if not state.strict:
            return f"({register}+0)"
        offset = _value(state, statement, expression)
        if offset > (255 if sign == "+" else 256):
            raise _error(statement, "index offset out of range")
        offset = offset if sign == "+" else -offset
        return f"({register}{'+' if offset >= 0 else '-'}{abs(offset) & 0xFF})"
    indirect = compact.startswith("(") and _closing_paren(compact) == len(compact) - 1
    if not state.strict:
        # Only the size matters before the last pass, and every instruction
        # form accepts 0 (or its own address for JR/DJNZ) as a value.
        placeholder = state.address if statement.operation in _RELATIVE_JUMPS else 0
        return f"({placeholder})" if indirect else placeholder
    if indirect:
        return f"({_value(state, statement, operand.strip()[1:-1])})"
    return _signed(_value(state, statement, operand))


def _closing_paren(text: str) -> int:
    depth = 0
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _instruction(state: _Pass, statement: _Statement) -> tuple[int, ...]:
    operands = [_operand_text(state, statement, op) for op in statement.operands]
    line = statement.operation
    if operands:
        line += " " + ",".join(str(op) for op in operands)
    code = _encoder.assemble(line, state.address)
    if not code and statement.operation not in _RELATIVE_JUMPS and any(isinstance(op, int) for op in operands):
        # pasmo truncates an out-of-range byte operand (LD A,300 is LD A,44)
        truncated = [op & 0xFF if isinstance(op, int) else op for op in operands]
        code = _encoder.assemble(statement.operation + " " + ",".join(str(op) for op in truncated), state.address)
    if not code:
        if statement.operation in _RELATIVE_JUMPS:
            raise _error(statement, "relative jump out of range or invalid operand")
        raise _error(statement, "invalid instruction or operands")
    return tuple(code)
