"""Numeric expressions in pasmo's syntax, evaluated as 16-bit unsigned values.

Supported: decimal, hex (`$FF`, `#FF`, `&FF`, `0xFF`, `0FFh`), binary (`%101`,
`101b`), octal (`17o`, `17q`), character literals (`'A'`, `"A"`), `$` for the
address of the current statement, labels, parentheses and the operators below.

Precedence follows pasmo rather than C (checked against pasmo 0.5.3), lowest
first:

    ?:
    HIGH LOW            (prefix; apply to everything to their right)
    ||
    &&
    OR | XOR
    AND &
    NOT ~ ! + -         (prefix; apply to a whole comparison: -1+2 is -(1+2))
    EQ NE LT LE GT GE = == != < > <= >=
    + -
    * / MOD % SHL SHR << >>

so `1+2 SHR 1` is 2 and `label+1 >> 8` is `label`: write `(label+1) >> 8`.
"""

import re
from dataclasses import dataclass
from typing import Callable

MASK = 0xFFFF
TRUE = 0xFFFF


class ExpressionError(ValueError):
    """The text is not a valid expression."""


class UndefinedSymbol(ExpressionError):
    def __init__(self, name: str):
        super().__init__(f"undefined symbol '{name}'")
        self.name = name


@dataclass(frozen=True)
class Token:
    kind: str  # 'num', 'id', 'op', 'end'
    value: object


_WORD_OPERATORS = {
    "MOD", "SHL", "SHR", "AND", "OR", "XOR", "NOT", "HIGH", "LOW",
    "EQ", "NE", "LT", "LE", "GT", "GE",
}
_SYMBOL_OPERATORS = ("<<", ">>", "<=", ">=", "!=", "==", "&&", "||",
                     "+", "-", "*", "/", "%", "&", "|", "~", "!", "<", ">", "=", "(", ")", "?", ":")
_IDENT = re.compile(r"[A-Za-z_?@.][A-Za-z0-9_?@.$]*")
_DIGITS = re.compile(r"[0-9][0-9A-Za-z$]*")
_HEX = re.compile(r"[0-9A-Fa-f][0-9A-Fa-f$]*")
_ESCAPES = {"n": 10, "r": 13, "t": 9, "a": 7, "\\": 92, '"': 34, "'": 39, "0": 0}


def _parse_number(text: str) -> int:
    """A literal that starts with a decimal digit: 0x.., or a suffix H/B/O/Q/D."""
    lower = text.replace("$", "").lower()
    suffix_bases = {"h": 16, "b": 2, "o": 8, "q": 8, "d": 10}
    try:
        if lower.startswith("0x"):
            return int(lower[2:], 16)
        if lower[-1] in suffix_bases:
            return int(lower[:-1], suffix_bases[lower[-1]])
        return int(lower, 10)
    except ValueError:
        raise ExpressionError(f"bad number '{text}'") from None


def _char_literal(text: str, i: int) -> tuple[int, int]:
    """Parse a one-character string literal at text[i]; return (code, next index)."""
    quote = text[i]
    j = i + 1
    if j >= len(text):
        raise ExpressionError("unterminated character literal")
    if quote == '"' and text[j] == "\\":
        if j + 1 >= len(text):
            raise ExpressionError("unterminated character literal")
        esc = text[j + 1]
        if esc == "x":
            code = int(text[j + 2:j + 4], 16)
            j += 4
        elif esc in _ESCAPES:
            code = _ESCAPES[esc]
            j += 2
        else:
            raise ExpressionError(f"unknown escape '\\{esc}'")
    elif quote == "'" and text.startswith("''", j):
        code = 39
        j += 2
    else:
        code = ord(text[j])
        j += 1
    if j >= len(text) or text[j] != quote:
        raise ExpressionError("a string in an expression must be one character long")
    return code, j + 1


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        operand_expected = not tokens or (tokens[-1].kind == "op" and tokens[-1].value != ")")
        if c.isdigit():
            m = _DIGITS.match(text, i)
            tokens.append(Token("num", _parse_number(m.group())))
            i = m.end()
        elif c == "&" and operand_expected and re.match(r"[hHxXoO]?[0-9A-Fa-f]", text[i + 1:i + 3]):
            # &FF, &HFF, &XFF hex; &O17 octal
            base, j = 16, i + 1
            if text[j] in "hHxXoO":
                base = 8 if text[j] in "oO" else 16
                j += 1
            m = _HEX.match(text, j)
            try:
                tokens.append(Token("num", int(m.group().replace("$", ""), base)))
            except ValueError:
                raise ExpressionError(f"bad number '{text[i:m.end()]}'") from None
            i = m.end()
        elif c in "$#" and operand_expected and _HEX.match(text, i + 1):
            m = _HEX.match(text, i + 1)
            tokens.append(Token("num", int(m.group().replace("$", ""), 16)))
            i = m.end()
        elif c == "%" and operand_expected and text[i + 1:i + 2] in ("0", "1"):
            m = re.compile(r"[01$]+").match(text, i + 1)
            tokens.append(Token("num", int(m.group().replace("$", ""), 2)))
            i = m.end()
        elif c == "$":
            tokens.append(Token("id", "$"))
            i += 1
        elif c in "'\"":
            code, i = _char_literal(text, i)
            tokens.append(Token("num", code))
        elif c == "?" and not operand_expected:
            tokens.append(Token("op", "?"))
            i += 1
        elif _IDENT.match(text, i):
            word = _IDENT.match(text, i).group()
            if word.upper() in _WORD_OPERATORS:
                tokens.append(Token("op", word.upper()))
            else:
                tokens.append(Token("id", word))
            i += len(word)
        else:
            for op in _SYMBOL_OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("op", op))
                    i += len(op)
                    break
            else:
                raise ExpressionError(f"unexpected character '{c}'")
    tokens.append(Token("end", None))
    return tokens


def _bool(value: bool) -> int:
    return TRUE if value else 0


_BINARY_LEVELS: list[dict[str, Callable[[int, int], int]]] = [
    # from loosest to tightest; the prefix levels sit between these (see _Parser)
    {"||": lambda a, b: _bool(a or b)},
    {"&&": lambda a, b: _bool(a and b)},
    {"OR": lambda a, b: a | b, "|": lambda a, b: a | b, "XOR": lambda a, b: a ^ b},
    {"AND": lambda a, b: a & b, "&": lambda a, b: a & b},
    # unary prefix operators go here
    {"EQ": lambda a, b: _bool(a == b), "=": lambda a, b: _bool(a == b), "==": lambda a, b: _bool(a == b),
     "NE": lambda a, b: _bool(a != b), "!=": lambda a, b: _bool(a != b),
     "LT": lambda a, b: _bool(a < b), "<": lambda a, b: _bool(a < b),
     "LE": lambda a, b: _bool(a <= b), "<=": lambda a, b: _bool(a <= b),
     "GT": lambda a, b: _bool(a > b), ">": lambda a, b: _bool(a > b),
     "GE": lambda a, b: _bool(a >= b), ">=": lambda a, b: _bool(a >= b)},
    {"+": lambda a, b: a + b, "-": lambda a, b: a - b},
    {"*": lambda a, b: a * b, "/": lambda a, b: _divide(a, b, a // (b or 1)),
     "MOD": lambda a, b: _divide(a, b, a % (b or 1)), "%": lambda a, b: _divide(a, b, a % (b or 1)),
     "SHL": lambda a, b: _shift_left(a, b), "<<": lambda a, b: _shift_left(a, b),
     "SHR": lambda a, b: a >> (b & 31), ">>": lambda a, b: a >> (b & 31)},
]
_UNARY_LEVEL = 4  # index in _BINARY_LEVELS where NOT ~ ! + - apply
_UNARY = {"NOT": lambda a: ~a, "~": lambda a: ~a, "!": lambda a: _bool(not a),
          "+": lambda a: a, "-": lambda a: -a}


def _shift_left(a: int, b: int) -> int:
    # pasmo shifts a 32-bit int, and the CPU takes the count modulo 32
    return (a << (b & 31)) & 0xFFFFFFFF


def _divide(a: int, b: int, result: int) -> int:
    if b == 0:
        raise ExpressionError("division by zero")
    return result


class _Parser:
    def __init__(self, tokens: list[Token], lookup: Callable[[str], int]):
        self.tokens = tokens
        self.pos = 0
        self.lookup = lookup
        self.skipping = 0  # inside the unused side of && || ?: (parsed, not evaluated)

    def skipped(self, parse: Callable[[], int]) -> int:
        self.skipping += 1
        try:
            return parse()
        finally:
            self.skipping -= 1

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def is_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.value in ops

    def expect(self, op: str) -> None:
        if not self.is_op(op):
            raise ExpressionError(f"expected '{op}'")
        self.pos += 1

    def conditional(self) -> int:
        condition = self.high_low()
        if self.is_op("?"):
            self.pos += 1
            if_true = self.conditional() if condition else self.skipped(self.conditional)
            self.expect(":")
            if_false = self.skipped(self.conditional) if condition else self.conditional()
            return if_true if condition else if_false
        return condition

    def high_low(self) -> int:
        if self.is_op("HIGH", "LOW"):
            op = self.take().value
            value = self.high_low()
            return (value >> 8) & 0xFF if op == "HIGH" else value & 0xFF
        return self.binary(0)

    def binary(self, level: int) -> int:
        if level == len(_BINARY_LEVELS):
            return self.primary()
        if level == _UNARY_LEVEL and self.is_op(*_UNARY):
            op = self.take().value
            return _UNARY[op](self.binary(level)) & MASK
        operators = _BINARY_LEVELS[level]
        value = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().value in operators:
            op = self.take().value
            if (op == "&&" and not value) or (op == "||" and value):
                self.skipped(lambda: self.binary(level + 1))  # short-circuit, as pasmo
                value = _bool(value)
                continue
            right = self.binary(level + 1)
            try:
                value = operators[op](value, right) & MASK
            except ExpressionError:
                if not self.skipping:
                    raise
                value = 0
        return value

    def primary(self) -> int:
        token = self.take()
        if token.kind == "num":
            return token.value & MASK
        if token.kind == "id":
            try:
                return self.lookup(token.value) & MASK
            except UndefinedSymbol:
                if not self.skipping:
                    raise
                return 0
        if token.kind == "op" and token.value == "(":
            value = self.conditional()
            self.expect(")")
            return value
        if token.kind == "op" and token.value in ("HIGH", "LOW"):
            # a prefix operator right after a binary one, e.g. 1+HIGH x or 2*-1
            self.pos -= 1
            return self.high_low()
        if token.kind == "op" and token.value in _UNARY:
            self.pos -= 1
            return self.binary(_UNARY_LEVEL)
        raise ExpressionError("expected a value" if token.kind == "end" else f"unexpected '{token.value}'")


def evaluate(text: str, lookup: Callable[[str], int]) -> int:
    """Evaluate `text`; `lookup(name)` gives a symbol's value (or raises UndefinedSymbol).

    The name '$' is looked up for the current address.
    """
    tokens = tokenize(text)
    parser = _Parser(tokens, lookup)
    value = parser.conditional()
    if parser.peek().kind != "end":
        raise ExpressionError(f"unexpected '{parser.peek().value}'")
    return value & MASK
