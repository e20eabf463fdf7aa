"""The chat loop in Z80 assembly, shared by every Z80 machine.

It implements ir/chat.py's rules exactly: encoding (lowercasing through the character
map, dropping unknown characters, the merges in order), prompt framing and cutting,
greedy generation through the compiled `step`, stop tokens and the reply limit.

The machine supplies the I/O as subroutines (the Spectrum's are in targets/zx/io.py):
  io_init                  once, at start
  io_print_char  A=char    print one character; keeps BC, DE, HL
  io_newline               start a new line
  io_read_line   HL=buffer, B=most characters: read an edited line, echoed, 0-terminated
  io_thinking    A=position  before each position is computed (the Spectrum flashes the border)
  io_token_done            after each reply token is printed (the Spectrum blips)
  io_reply_done            after the reply
The compiled model supplies `step`: it reads the token and position from STEP_TOKEN and
STEP_POS, and when STEP_OUTPUT is non-zero returns the next token in A.
"""
from __future__ import annotations

from soulc.errors import SoulcError
from soulc.ir.chat import max_prompt_text
from soulc.ir.program import Program

from .buffers import Spare, buffers_asm

MAX_LINE = 64       # characters a typed line may hold
STEP_SYMBOLS = ("step", "STEP_TOKEN", "STEP_POS", "STEP_OUTPUT")    # what the compiled model defines


def _defb(values) -> str:
    values = list(values)
    lines = [values[i:i + 16] for i in range(0, len(values), 16)]
    return "\n".join("        DEFB " + ",".join(str(v) for v in line) for line in lines)


def _string(text: str) -> str:
    return ",".join(str(ord(ch)) for ch in text)


FIRST_CHAR, LAST_CHAR = 32, 126      # what io_read_line lets into a line


def char_map(program: Program) -> tuple[list[int], int]:
    """Character code -> token id for the codes a line may hold (FIRST_CHAR..LAST_CHAR), lower
    case folded in; and the id that marks 'no token'."""
    tok = program.tokenizer
    chars = tok.char_ids
    none = next((i for i in range(len(tok.tokens)) if i not in chars.values()), None)
    if none is None:
        raise SoulcError("the tokenizer has only single-character tokens; the Z80 chat loop needs one "
                         "other id (a special token) to mark characters outside the vocabulary")
    table = []
    for code in range(FIRST_CHAR, LAST_CHAR + 1):
        ch = chr(code)
        if tok.lowercase:
            ch = ch.lower()
        table.append(chars.get(ch, none))
    return table, none


MAX_TOKEN_TEXT = 255    # the chat loop keeps a token's length in one byte


def _printable(text: str) -> str:
    if len(text) > MAX_TOKEN_TEXT:
        raise SoulcError(f"a token of {len(text)} characters ({text[:12]!r}...): the Z80 chat loop prints "
                         f"tokens of at most {MAX_TOKEN_TEXT}")
    for ch in text:
        if not 32 <= ord(ch) < 127:
            raise SoulcError(f"token {text!r} has a character the Spectrum cannot print: {ch!r}")
    return text


def chat_buffers(program: Program) -> list[tuple[str, int]]:
    """The chat loop's run-time buffers: the typed line, its token ids, the framed prompt."""
    return [("chat_line", MAX_LINE + 1), ("chat_ids", MAX_LINE), ("chat_seq", program.settings.context)]


def chat_loop_asm(program: Program, title: str, reply_prefix: str, spare: Spare = None) -> str:
    """spare: RAM free at run time that the chat loop's buffers may take (see buffers.py)."""
    s, tok = program.settings, program.tokenizer
    table, none = char_map(program)
    max_text = max_prompt_text(program)
    strings = []
    for i, text in enumerate(tok.tokens):
        shown = "" if i in tok.special else _printable(text)
        strings.append(f"chat_tok{i}: DEFB {len(shown)}" + (f",{_string(shown)}" if shown else ""))
    merges = [v for triple in tok.merges for v in triple]
    stop_check = (
        "        LD HL,chat_stops\n"
        f"        LD B,{len(s.stop)}\n"
        "chat_stop_scan:\n"
        "        CP (HL)\n"
        "        RET Z\n"
        "        INC HL\n"
        "        DJNZ chat_stop_scan\n"
        "        RET                     ; NZ from the last compare"
        if s.stop else
        "        LD C,A\n        OR 1                    ; NZ: nothing stops\n        LD A,C\n        RET")
    max_reply_check = (
        f"        LD A,(chat_replied)\n        CP {s.max_reply}\n        JR NC,chat_done"
        if s.max_reply else "")
    return f"""
; ---- chat loop (targets/z80/chatloop.py) ----
chat_main:
        CALL io_init
        LD HL,chat_title
        CALL chat_print_str
chat_prompt:
        LD HL,chat_you
        CALL chat_print_str
        LD HL,chat_line
        LD B,{MAX_LINE}
        CALL io_read_line
        CALL io_newline
        CALL chat_encode
        LD A,(chat_count)
        OR A
        JR Z,chat_prompt                ; nothing in the vocabulary: no reply
        CP {max_text + 1}
        JR C,chat_fits
        LD A,{max_text}                 ; cut the text so that one reply token fits
        LD (chat_count),A
chat_fits:
        LD DE,chat_seq
{_copy("chat_prefix", len(s.prompt_prefix))}
        LD HL,chat_ids
        LD A,(chat_count)
        LD C,A
        LD B,0
        LDIR
{_copy("chat_suffix", len(s.prompt_suffix))}
        EX DE,HL
        LD DE,chat_seq
        OR A
        SBC HL,DE
        LD A,L
        LD (chat_len),A
        LD HL,chat_zx
        CALL chat_print_str
        LD A,{len(s.prompt_prefix)}
        LD (chat_pos),A                 ; the prefix's positions are in the caches already
        XOR A
        LD (chat_replied),A
chat_prefill:                           ; every prompt position but the last feeds the caches
        LD A,(chat_len)
        DEC A
        LD B,A
        LD A,(chat_pos)
        CP B
        JR NC,chat_generate
        XOR A
        CALL chat_step
        LD HL,chat_pos
        INC (HL)
        JR chat_prefill
chat_generate:
        LD A,1
        CALL chat_step
        CALL chat_is_stop
        JR Z,chat_done
        LD C,A
        LD A,(chat_len)
        LD E,A
        LD D,0
        LD HL,chat_seq
        ADD HL,DE
        LD (HL),C
        INC A
        LD (chat_len),A
        DEC A
        LD (chat_pos),A
        LD A,C
        CALL chat_print_token
        CALL io_token_done
        LD HL,chat_replied
        INC (HL)
        LD A,(chat_len)
        CP {s.context}
        JR NC,chat_done
{max_reply_check}
        JR chat_generate
chat_done:
        CALL io_reply_done
        CALL io_newline
        JP chat_prompt

chat_step:                              ; A = 1 when the next token is wanted
        LD (STEP_OUTPUT),A
        LD A,(chat_pos)
        LD (STEP_POS),A
        LD E,A
        LD D,0
        LD HL,chat_seq
        ADD HL,DE
        LD A,(HL)
        LD (STEP_TOKEN),A
        LD A,(chat_pos)
        CALL io_thinking
        JP step

chat_is_stop:                           ; Z when A is a stop token; keeps A
{stop_check}

chat_print_token:                       ; A = token id: its string is the A-th one from chat_tok0
        LD HL,chat_tok0
        OR A
        JR Z,chat_print_token_found
        LD B,A
        LD D,0
chat_print_token_skip:
        LD E,(HL)
        ADD HL,DE
        INC HL
        DJNZ chat_print_token_skip
chat_print_token_found:
        LD B,(HL)
        LD A,B
        OR A
        RET Z
chat_print_token_char:
        INC HL
        LD A,(HL)
        CALL io_print_char
        DJNZ chat_print_token_char
        RET

chat_print_str:                         ; HL = 0-terminated string
        LD A,(HL)
        OR A
        RET Z
        CALL io_print_char
        INC HL
        JR chat_print_str

chat_encode:                            ; chat_line -> chat_ids, chat_count
        LD HL,chat_line
        LD DE,chat_ids
        LD C,0
chat_encode_char:
        LD A,(HL)
        OR A
        JR Z,chat_encode_merges
        INC HL
        PUSH HL
        LD HL,chat_charmap-{FIRST_CHAR}
        ADD A,L
        LD L,A
        ADC A,H
        SUB L
        LD H,A
        LD A,(HL)
        POP HL
        CP {none}
        JR Z,chat_encode_char           ; not in the vocabulary: dropped
        LD (DE),A
        INC DE
        INC C
        JR chat_encode_char
chat_encode_merges:
        LD A,C
        LD (chat_count),A
        LD HL,chat_merges
        LD BC,{len(tok.merges)}
chat_merge_next:
        LD A,B
        OR C
        RET Z
        PUSH BC
        LD A,(HL)
        LD (chat_left),A
        INC HL
        LD A,(HL)
        LD (chat_right),A
        INC HL
        LD A,(HL)
        LD (chat_merged),A
        INC HL
        PUSH HL
        CALL chat_merge_pass
        POP HL
        POP BC
        DEC BC
        JR chat_merge_next

chat_merge_pass:                        ; one left-to-right pass, in place
        LD A,(chat_count)
        CP 2
        RET C
        LD B,A
        LD HL,chat_ids
        LD D,H
        LD E,L
chat_merge_loop:
        LD A,(HL)
        INC HL
        LD C,A
        DEC B
        JR Z,chat_merge_copy            ; the last id has no right neighbour
        LD A,(chat_left)
        CP C
        JR NZ,chat_merge_copy
        LD A,(chat_right)
        CP (HL)
        JR NZ,chat_merge_copy
        INC HL
        DEC B
        LD A,(chat_merged)
        LD (DE),A
        INC DE
        LD A,B
        OR A
        JR NZ,chat_merge_loop
        JR chat_merge_end
chat_merge_copy:
        LD A,C
        LD (DE),A
        INC DE
        LD A,B
        OR A
        JR NZ,chat_merge_loop
chat_merge_end:
        EX DE,HL
        LD DE,chat_ids
        OR A
        SBC HL,DE
        LD A,L
        LD (chat_count),A
        RET

; ---- chat data ----
chat_title:   DEFB {_string(title)},13,0
chat_you:     DEFB {_string("YOU> ")},0
chat_zx:      DEFB {_string(reply_prefix)},0
chat_stops:   DEFB {",".join(map(str, s.stop)) or "0"}
chat_prefix:  DEFB {",".join(map(str, s.prompt_prefix)) or "0"}
chat_suffix:  DEFB {",".join(map(str, s.prompt_suffix)) or "0"}
chat_charmap:
{_defb(table)}
chat_merges:
{_defb(merges) if merges else ""}
{chr(10).join(strings)}
chat_count:   DEFB 0
chat_len:     DEFB 0
chat_pos:     DEFB 0
chat_replied: DEFB 0
chat_left:    DEFB 0
chat_right:   DEFB 0
chat_merged:  DEFB 0
{buffers_asm(chat_buffers(program), spare)[0]}"""


def _copy(label: str, count: int) -> str:
    if not count:
        return ""
    return f"        LD HL,{label}\n        LD BC,{count}\n        LDIR"
