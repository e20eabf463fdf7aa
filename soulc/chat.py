"""`soulc chat`: the host chat, on the reference interpreter.

At a terminal it looks like the seed: a `YOU> ` prompt, the reply streamed token by token.
With standard input from a file or pipe it reads one prompt per line and writes exactly one
line per prompt (the reply, or an empty line where a prompt gets none), and nothing else.
"""
from __future__ import annotations

import sys

from soulc.ir.chat import decode, encode, frame_prompt, generate, respond
from soulc.ir.interpreter import Interpreter
from soulc.ir.program import Program


def chat_scripted(program: Program, lines, out) -> None:
    interpreter = Interpreter(program)
    for line in lines:
        exchange = respond(program, line.rstrip("\r\n"), interpreter)
        out.write((exchange.reply or "") + "\n")
        out.flush()


def chat_interactive(program: Program) -> None:
    interpreter = Interpreter(program)
    tok = program.tokenizer
    print("soulc chat: type a line and press Enter; Ctrl-D ends.")
    while True:
        try:
            line = input("YOU> ")
        except EOFError:
            print()
            return
        prompt = frame_prompt(program, encode(tok, line))
        if prompt is None:
            continue
        sys.stdout.write("SOUL> ")
        generate(program, prompt, interpreter,
                 on_token=lambda t: (sys.stdout.write(decode(tok, [t])), sys.stdout.flush()))
        sys.stdout.write("\n")


def chat(program: Program) -> None:
    if sys.stdin.isatty():
        chat_interactive(program)
    else:
        chat_scripted(program, sys.stdin, sys.stdout)
