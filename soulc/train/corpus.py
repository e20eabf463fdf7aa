"""Reading a training corpus in the seed's format: one exchange per line, `<SEP>input<SEP>response<SEP>`.

Blank lines and lines starting with `#` are skipped, so a corpus can carry comments. The text
is kept as written; the tokenizer lowercases it (the chat rules do).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soulc.errors import SoulcError

SEP = "<SEP>"


@dataclass(frozen=True)
class Exchange:
    prompt: str
    response: str


def parse_corpus(text: str, where: str = "corpus") -> list[Exchange]:
    exchanges = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().split(SEP)
        if len(parts) != 4 or parts[0] or parts[3]:
            raise SoulcError(f"{where}:{number}: not an exchange in the form <SEP>input<SEP>response<SEP>: "
                             f"{line[:60]!r}")
        prompt, response = parts[1], parts[2]
        if not prompt.strip() or not response.strip():
            raise SoulcError(f"{where}:{number}: the input or the response is empty")
        exchanges.append(Exchange(prompt, response))
    if not exchanges:
        raise SoulcError(f"{where}: no exchanges in the corpus (lines like <SEP>hello<SEP>hi there!<SEP>)")
    return exchanges


def read_corpus(path: str | Path) -> list[Exchange]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SoulcError(f"{path}: cannot read the corpus: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise SoulcError(f"{path}: the corpus is not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_corpus(text, str(path))


def unique_prompts(exchanges: list[Exchange]) -> list[str]:
    """The distinct inputs in corpus order."""
    return list(dict.fromkeys(e.prompt for e in exchanges))
