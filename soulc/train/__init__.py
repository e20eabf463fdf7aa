"""`soulc train`: a corpus in, one ONNX soul out (see trainer.py).

Only the training modules (qat, export, trainer) import torch; this package's own import, the
corpus reader, the tokenizer trainer and the measurements do not, so compiling never needs it.
"""
from __future__ import annotations

import sys

from soulc.errors import SoulcError

from .options import TrainOptions

DEFAULTS = TrainOptions()


def require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SoulcError("soulc train needs PyTorch: pip install 'soulc[train]'") from None


def options_from_args(args) -> TrainOptions:
    o = TrainOptions(vocab=args.vocab, layers=args.layers, width=args.width, heads=args.heads, ffn=args.ffn,
                     context=args.context, seed=args.seed, batch=args.batch, lr=args.lr, threads=args.threads,
                     epochs=DEFAULTS.epochs if args.epochs is None else args.epochs,
                     eval_every=DEFAULTS.eval_every if args.eval_every is None else args.eval_every,
                     probes=tuple(args.probe) if args.probe else DEFAULTS.probes)
    for name in ("layers", "width", "heads", "ffn", "epochs", "batch", "eval_every", "threads"):
        if getattr(args, name) is not None and getattr(o, name) < 1:
            raise SoulcError(f"--{name.replace('_', '-')} {getattr(o, name)}: must be at least 1")
    if o.width % o.heads:
        raise SoulcError(f"--width {o.width} is not a multiple of --heads {o.heads}")
    if not 4 <= o.context <= 255:
        raise SoulcError(f"--context {o.context}: use 4 to 255 (a prompt takes at least 3 tokens)")
    if o.seed < 0:
        raise SoulcError(f"--seed {o.seed}: use a seed of 0 or more")
    if not 0 < o.lr < 1:
        raise SoulcError(f"--lr {o.lr}: use a learning rate between 0 and 1")
    return o


def run_train(args, out=None) -> int:
    out = out or sys.stderr
    require_torch()
    options = options_from_args(args)
    from .trainer import train
    result = train(args.corpus, args.output, options, out=out)
    f = result.best.figures
    s = result.shape
    out.write(f"kept epoch {result.best.epoch}: integer = float next token at {f.agreement:.1%} of the "
              f"response positions, {f.exact_rate:.1%} of the replies identical; integer accuracy "
              f"{f.int_accuracy:.1%}\n")
    out.write(f"wrote {args.output} ({len(result.onnx):,} bytes; {s.layers} layer{'' if s.layers == 1 else 's'}, width {s.width}, "
              f"{s.heads} heads, FFN {s.ffn}, vocab {s.vocab}, context {s.context}) in "
              f"{result.seconds / 60:.1f} minutes\n")
    out.write(f"next: soulc {args.output} --target zx48 -o soul.tap\n")
    return 0
