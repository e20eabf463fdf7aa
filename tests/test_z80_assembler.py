import shutil
import subprocess

import pytest

from soulc.errors import SoulcError
from soulc.targets.z80.assembler import assemble
from soulc.targets.z80.expressions import evaluate
from z80_opcodes import listing

PASMO = shutil.which("pasmo")
needs_pasmo = pytest.mark.skipif(PASMO is None, reason="pasmo is not installed (apt-get install pasmo)")

PRINT_LOOP = """\
; prints a message with the ROM
LAST_K  EQU 23560
CHAN_OPEN EQU $1601
offset  EQU 2+1             ; pasmo needs index offsets defined before use
        ORG 0x8000
start:  LD A,2
        CALL CHAN_OPEN
        LD HL,message
loop    LD A,(HL)          ; label without a colon
        OR A
        JR Z,done
        RST 16
        INC HL
        JR loop
done:   LD IX,table
        LD A,(IX+2)
        LD (IX-1),A
        LD B,(IX)
        LD A,(IX+offset)
        JP (IX)
        LD A,low message
        LD A,HIGH message
        LD BC,message & 0xFF
        LD DE,message >> 8
        LD HL,(table+2)
        LD A,(LAST_K)
        CP 'a'
        CP ','
        EX AF,AF'
        DJNZ done
        RET
message: DEFB "Hi, there\\n", 'it''s', 0
table:  DEFW start, table+2, $
        DEFS 3, 0xAA
        DS 2
        DB 300, -1
        LD A,300
later   EQU $
size    EQU later-start
"""

EXPRESSIONS = """\
        ORG 40000
        DEFW -1+2, 1+2 SHR 1, 3 & 1 + 1, HIGH 1234h + 100h, NOT 0 + 1, 7 MOD 4 * 2
        DEFW %1010, 1010b, 17o, 17q, #1F, $1F, &1F, 0x1F, 99d, 'A'+1
        DEFB 10/3, 1 SHL 4, 2 EQ 2, ~0, 2 > 1, 1 ? 5 : 6
        LD A,-1
        LD A,(IX-3+1)
"""


def pasmo_bytes(source: str, tmp_path) -> bytes:
    asm = tmp_path / "prog.asm"
    out = tmp_path / "prog.bin"
    asm.write_text(source)
    done = subprocess.run([PASMO, "--bin", str(asm), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_known_encodings():
    result = assemble("  ORG 32768\nstart: LD A,2\n CALL 0x1601\n JR start\n RET\n")
    assert result.origin == 32768
    assert result.code == bytes([0x3E, 0x02, 0xCD, 0x01, 0x16, 0x18, 0xF9, 0xC9])
    assert result.symbols == {"start": 32768}
    assert result.end == 32776


def test_index_registers_and_bit_operations():
    code = assemble(" LD A,(IX+5)\n LD (IY-2),7\n BIT 5,(IY+1)\n RES 3,(IY+1)\n JP (IY)\n").code
    assert code == bytes([0xDD, 0x7E, 0x05, 0xFD, 0x36, 0xFE, 0x07,
                          0xFD, 0xCB, 0x01, 0x6E, 0xFD, 0xCB, 0x01, 0x9E, 0xFD, 0xE9])


def test_forward_references_and_equ_chains():
    result = assemble(" ORG 100\n LD HL,x\n JP end\nx EQU y+1\ny EQU end-100\nend: RET\n")
    assert result.symbols == {"x": 7, "y": 6, "end": 106}
    assert result.code == bytes([0x21, 7, 0, 0xC3, 106, 0, 0xC9])


def test_all_documented_instructions_round_trip():
    source, expected = listing()
    assert assemble(source).code == expected


def test_expression_precedence_matches_pasmo_rules():
    def lookup(name):
        return {"$": 0x8000, "label": 0x8015}[name]

    assert evaluate("-1+2", lookup) == 0xFFFD
    assert evaluate("label+1 >> 8", lookup) == 0x8015
    assert evaluate("(label+1) >> 8", lookup) == 0x80
    assert evaluate("low label", lookup) == 0x15
    assert evaluate("high(label)+1", lookup) == 0x80
    assert evaluate("$+3", lookup) == 0x8003


def test_no_org_starts_at_zero_and_gaps_are_filled():
    result = assemble(" NOP\n ORG 4\n HALT\n")
    assert result.origin == 0
    assert result.code == bytes([0, 0, 0, 0, 0x76])


@pytest.mark.parametrize("source, message", [
    (" JP nowhere\n", "line 1: undefined symbol 'nowhere'"),
    ("\n LD A,(HL\n", "line 2"),
    (" FROB A\n", "unknown instruction 'FROB'"),
    (" ORG 0\n JR 500\n", "line 2: relative jump out of range"),
    ("a: NOP\na: NOP\n", "label 'a' defined twice"),
    (" LD A,(IX+300)\n", "index offset out of range"),
    (" LD B,(HL),1\n", "invalid instruction"),
    (" IF 1\n", "unsupported directive IF"),
    ("x EQU\n", "EQU takes one value"),
])
def test_errors_name_the_line(source, message):
    with pytest.raises(SoulcError) as error:
        assemble(source)
    assert message in str(error.value)


def test_case_sensitive_labels():
    with pytest.raises(SoulcError, match="undefined symbol 'foo'"):
        assemble("Foo: NOP\n JP foo\n")


@needs_pasmo
@pytest.mark.parametrize("source", [PRINT_LOOP, EXPRESSIONS], ids=["print_loop", "expressions"])
def test_same_bytes_as_pasmo(source, tmp_path):
    assert assemble(source).code == pasmo_bytes(source, tmp_path)


@needs_pasmo
def test_all_documented_instructions_same_as_pasmo(tmp_path):
    source, _ = listing()
    assert assemble(source).code == pasmo_bytes(source, tmp_path)


def _random_expression(rng, depth: int) -> str:
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice([str(rng.randint(1, 300)), "$", "lab", "'A'", "0FFh", "%101", "#7F"])
    if roll < 0.45:  # pasmo only accepts prefix operators at the start of a (sub)expression
        return f"({rng.choice(['-', '+', 'NOT', '~', '!', 'HIGH', 'LOW'])} {_random_expression(rng, depth - 1)})"
    if roll < 0.55:
        return f"({_random_expression(rng, depth - 1)})"
    operator = rng.choice(["+", "-", "*", "/", "MOD", "%", "SHL", "SHR", "<<", ">>", "AND", "&", "OR", "|",
                           "XOR", "EQ", "NE", "LT", "GT", "<", ">", "<=", ">=", "=", "!=", "&&", "||"])
    return f"{_random_expression(rng, depth - 1)} {operator} {_random_expression(rng, depth - 1)}"


@needs_pasmo
def test_random_expressions_evaluate_as_in_pasmo(tmp_path):
    import random

    rng = random.Random(2024)
    expressions = []
    while len(expressions) < 300:
        expression = _random_expression(rng, 4)
        try:
            assemble(f" ORG 30000\nlab: NOP\n DEFW {expression}\n")
        except SoulcError:  # division by zero: pasmo rejects it too
            continue
        expressions.append(expression)
    source = " ORG 30000\nlab: NOP\n" + "".join(f" DEFW {e}\n" for e in expressions)
    mine, theirs = assemble(source).code, pasmo_bytes(source, tmp_path)
    differences = [e for i, e in enumerate(expressions) if mine[1 + 2 * i:3 + 2 * i] != theirs[1 + 2 * i:3 + 2 * i]]
    assert differences == []
