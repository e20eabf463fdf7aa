"""The chat loop every target implements: encoding, prompt framing, generation, decoding.

The rules, defined once here and followed by every target:
- Encoding lowercases the text (when the tokenizer says so), maps each character to its
  single-character token and drops characters that have none, then applies the merges in
  their listed order, each as one left-to-right, non-overlapping pass over the ids.
- A line whose encoding is empty (an empty line, or only characters outside the
  vocabulary) gets no reply at all.
- The prompt is prefix + encoded text + suffix. When that leaves no room for a reply token
  the encoded text is cut to its first `context - 1 - len(prefix) - len(suffix)` tokens.
- Generation is greedy: each predicted token is appended until the sequence fills the
  context, a stop token comes (not printed), or max_reply tokens were produced.
- The reply text is the concatenated strings of the reply tokens, special tokens skipped.
Each prompt starts a fresh sequence: replies do not see earlier exchanges.
"""
from __future__ import annotations

from dataclasses import dataclass

from .interpreter import Interpreter
from .program import Program, Tokenizer


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    if tokenizer.lowercase:
        text = text.lower()
    chars = tokenizer.char_ids
    ids = [chars[ch] for ch in text if ch in chars]
    for left, right, merged in tokenizer.merges:
        ids = apply_merge(ids, left, right, merged)
    return ids


def apply_merge(ids: list[int], left: int, right: int, merged: int) -> list[int]:
    """One left-to-right, non-overlapping pass of one merge over the ids."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == left and ids[i + 1] == right:
            out.append(merged)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    return "".join(tokenizer.tokens[i] for i in ids if i not in tokenizer.special)


def max_prompt_text(program: Program) -> int:
    s = program.settings
    return s.context - 1 - len(s.prompt_prefix) - len(s.prompt_suffix)


def frame_prompt(program: Program, text_ids: list[int]) -> list[int] | None:
    """The prompt token sequence for encoded text, or None when there is nothing to answer."""
    if not text_ids:
        return None
    s = program.settings
    return [*s.prompt_prefix, *text_ids[: max_prompt_text(program)], *s.prompt_suffix]


def generate(program: Program, prompt: list[int], interpreter: Interpreter | None = None,
             on_token=None) -> list[int]:
    """Greedy reply tokens for a framed prompt; `on_token(id)` is called as each one is chosen."""
    it = interpreter or Interpreter(program)
    it.reset()
    s = program.settings
    for token in prompt[:-1]:
        it.feed(token)
    reply: list[int] = []
    token = it.next_token(prompt[-1])
    while token not in s.stop:
        reply.append(token)
        if on_token:
            on_token(token)
        if len(prompt) + len(reply) >= s.context or (s.max_reply and len(reply) >= s.max_reply):
            break
        token = it.next_token(token)
    return reply


@dataclass
class Exchange:
    prompt: str
    prompt_ids: list[int] | None
    reply_ids: list[int] | None
    reply: str | None           # None: the line gets no reply


def respond(program: Program, text: str, interpreter: Interpreter | None = None) -> Exchange:
    prompt = frame_prompt(program, encode(program.tokenizer, text))
    if prompt is None:
        return Exchange(text, None, None, None)
    reply_ids = generate(program, prompt, interpreter)
    return Exchange(text, prompt, reply_ids, decode(program.tokenizer, reply_ids))
