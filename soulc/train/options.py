"""The options of `soulc train` (no torch here: the command line reads the defaults)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

PROBES = ("hello", "how are you?", "who are you?", "i am sad", "tell me a joke")


@dataclass
class TrainOptions:
    vocab: int = 128
    layers: int = 2
    width: int = 32
    heads: int = 4
    ffn: int = 64
    context: int = 32
    epochs: int = 60
    seed: int = 0
    batch: int = 64
    lr: float = 3e-3
    eval_every: int = 5             # epochs between evaluations (and always after the last)
    threads: int = 1
    score_scale: float = 0.25
    consistency: float = 1.0        # weight of the float/integer logit consistency term
    max_reply: int = 0
    probes: tuple[str, ...] = field(default=PROBES)

    def recorded(self) -> dict:
        """What goes into the model's soulc.training metadata."""
        d = asdict(self)
        d.pop("probes")
        return d
