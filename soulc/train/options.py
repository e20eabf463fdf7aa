"""The options of `soulc train` (no torch here: the command line reads the defaults)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

PROBES = ("hello", "how are you?", "who are you?", "i am sad", "tell me a joke")


MIN_STEPS, MAX_STEPS, STEPS_PER_EXCHANGE = 2_000, 16_500, 5
EVALUATIONS = 8


@dataclass
class TrainOptions:
    vocab: int = 128
    layers: int = 2
    width: int = 28                 # with context 32 this fits the 48K Spectrum beside its KV cache
    heads: int = 4
    ffn: int = 64
    context: int = 32
    epochs: int = 0                 # 0: auto_epochs()
    seed: int = 0
    batch: int = 64
    lr: float = 1e-2
    eval_every: int = 0             # epochs between evaluations (and always after the last); 0: auto
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

    def resolved(self, exchanges: int) -> "TrainOptions":
        """The options with the automatic epochs and evaluation interval filled in for a corpus."""
        steps_per_epoch = -(-exchanges // self.batch)
        epochs = self.epochs or auto_epochs(exchanges, steps_per_epoch)
        every = self.eval_every or max(1, -(-epochs // EVALUATIONS))
        return replace(self, epochs=epochs, eval_every=every)


def auto_epochs(exchanges: int, steps_per_epoch: int) -> int:
    """About STEPS_PER_EXCHANGE steps per exchange, between MIN_STEPS and MAX_STEPS steps in all."""
    steps = min(MAX_STEPS, max(MIN_STEPS, STEPS_PER_EXCHANGE * exchanges))
    return max(1, round(steps / steps_per_epoch))
