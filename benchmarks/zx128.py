"""T-states per generated token on the Spectrum 128K, for the seed and an 88K-parameter model.

Run by hand from the checkout (needs torch for the big model's export, ../shared/seed):

    python benchmarks/zx128.py

Each model is compiled for zx128, loaded through the 128K ROM in the emulator, and asked
prompts: the seed's replies.json prompts (its replies are checked), and a few for the big
model (random weights: its replies are gibberish, checked against `soulc chat`). For each
model the table gives the tokens generated, the T-states per token from ENTER to the next
`YOU> ` divided by the tokens (what `soulc run` prints: it includes reading the prompt), and
the median time between two tokens' beeper blips (one generated position, prompt excluded).
All contended (CCMIOSimulator), at 3.5469 MHz a second is 3,546,900 T-states.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "seed"
BIG = dict(layers=4, width=48, heads=4, ffn=96, vocab=128, context=24)
BIG_PROMPTS = ["hello", "Who are you?", "what is the meaning of life", "tell me a story"]
HZ = 3_546_900


def soulc(*args: str, input: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "soulc", *args], cwd=REPO, input=input,
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr)
    return result.stdout


def export_big(path: Path) -> Path:
    import torch
    from soulc.model import SoulConfig, SoulModel, export_onnx
    torch.manual_seed(128)
    return export_onnx(SoulModel(SoulConfig(**BIG)), path, tokenizer=SEED / "tokenizer.json", dynamo=False)


def measure(tap: Path, prompts: list[str], expected: list[str]) -> dict:
    from soulc.targets.zx.session import ChatSession
    session = ChatSession.load(tap, "128")
    tokens = tstates = 0
    gaps = []
    for prompt, want in zip(prompts, expected):
        reply = session.ask(prompt)
        if (reply.text or "") != want.rstrip():
            sys.exit(f"{tap.name}: {prompt!r} got {reply.text!r}, soulc chat says {want!r}")
        tokens += reply.tokens
        tstates += reply.tstates if reply.tokens else 0
        gaps += [b - a for a, b in zip(reply.blip_tstates, reply.blip_tstates[1:])]
    return {"tokens": tokens, "per_token": tstates / tokens, "step": statistics.median(gaps)}


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        replies = json.loads((SEED / "replies.json").read_text())
        seed_tap = work / "seed.tap"
        soulc(str(SEED / "soul.bin"), "--tokenizer", str(SEED / "tokenizer.json"), "--target", "zx128",
              "-o", str(seed_tap))
        big = export_big(work / "big.onnx")
        big_tap = work / "big.tap"
        print(soulc(str(big), "--target", "zx128", "-o", str(big_tap), "--memory-map"))
        host = soulc("chat", str(big), input="".join(p + "\n" for p in BIG_PROMPTS)).split("\n")
        rows = [("seed (25K weights)", measure(seed_tap, [r["prompt"] for r in replies],
                                               [r["reply"] for r in replies])),
                ("big (88K weights)", measure(big_tap, BIG_PROMPTS, host))]
    print(f"{'zx128':20} {'tokens':>6} {'T-states/token':>15} {'per step':>12} {'seconds/token':>14}")
    for name, m in rows:
        print(f"{name:20} {m['tokens']:6} {m['per_token']:15,.0f} {m['step']:12,.0f} {m['step'] / HZ:14.2f}")


if __name__ == "__main__":
    main()
