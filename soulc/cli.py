"""The soulc command line.

    soulc MODEL [options]          compile (or, without --target, emit the IR)
    soulc chat MODEL [options]     chat on the host, on the reference interpreter
    soulc run TAPE --prompt TEXT   run a compiled tape in the emulator and print the replies
    soulc train CORPUS -o M.onnx   train a soul on a corpus (needs PyTorch: soulc[train])

Every user-facing failure is one line `soulc: error: ...` on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import SoulcError

COMMANDS = ("chat", "run", "train")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a .onnx model, a seed soul.bin, or a .soul IR text")
    parser.add_argument("--tokenizer", metavar="FILE",
                        help="tokenizer.json (the seed's format); needed for a soul.bin")
    parser.add_argument("--context", type=int, metavar="N",
                        help="context length in tokens (default: the model's position table)")
    parser.add_argument("--numerics", choices=("calibrated", "soulplayer"), default="calibrated",
                        help="softmax table for ONNX input: calibrated from the graph (default) "
                             "or the seed's, for bit-exactness with Soul Player")


def compile_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soulc",
        description="Compile a tiny transformer for an 8-bit home computer.",
        epilog="Other commands: 'soulc chat MODEL' chats on the host; "
               "'soulc run TAPE --prompt TEXT' runs a tape in the emulator; "
               "'soulc train CORPUS -o MODEL.onnx' trains a soul. "
               "Each has its own --help.")
    _model_options(p)
    p.add_argument("--target", metavar="NAME", help="the machine to compile for (see --list-targets); "
                   "without one, soulc emits the IR")
    p.add_argument("--emit", metavar="KIND",
                   help="what to write: ir, or with a target asm, sym, bin, tap (default: the target's container)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: standard output for text)")
    p.add_argument("--print-after", metavar="PASS", action="append", default=[],
                   help="print the IR (without tensor data) after this pass; may repeat")
    p.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    p.add_argument("--memory-map", action="store_true", help="print where everything lies in the target's memory")
    p.add_argument("--list-targets", action="store_true", help="list the targets and exit")
    p.add_argument("--quant-report", action="store_true",
                   help="for an ONNX model: run the float graph (onnxruntime) and the quantised IR on a few "
                        "prompts and report shifts, saturation and next-token agreement, then exit")
    p.add_argument("--corpus", metavar="FILE",
                   help="with --quant-report: also measure over this corpus (<SEP>input<SEP>response<SEP> "
                        "lines): teacher-forced integer = float next token on the responses, and the share "
                        "of inputs whose integer reply is exactly the float one")
    return p


def chat_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soulc chat",
        description="Chat with a model on the host, on soulc's reference interpreter. At a terminal: "
                    "a YOU> prompt. From a pipe or file: one prompt per line in, one reply per line out.")
    _model_options(p)
    return p


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soulc run",
        description="Load a compiled tape through the ROM loader of an emulated Spectrum, type each "
                    "prompt, and print each reply read off the screen with T-states per token.")
    p.add_argument("tape", metavar="TAPE", help="a .tap made by soulc")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt to type; may repeat")
    p.add_argument("--machine", choices=("48", "128"), help="the Spectrum to emulate (default: from the tape)")
    return p


def train_parser() -> argparse.ArgumentParser:
    from .train import DEFAULTS as d
    p = argparse.ArgumentParser(
        prog="soulc train",
        description="Train a soul on a corpus: a BPE tokenizer, then a decoder trained for soulc's "
                    "fixed-point numbers (quantisation-aware), written as one ONNX file that soulc "
                    "compiles as it is. Needs PyTorch (pip install 'soulc[train]').")
    p.add_argument("corpus", metavar="CORPUS", help="one exchange per line: <SEP>input<SEP>response<SEP>")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the ONNX model to write")
    p.add_argument("--vocab", type=int, default=d.vocab, metavar="N", help=f"vocabulary size (default {d.vocab})")
    p.add_argument("--layers", type=int, default=d.layers, metavar="N", help=f"default {d.layers}")
    p.add_argument("--width", type=int, default=d.width, metavar="N", help=f"embedding width (default {d.width})")
    p.add_argument("--heads", type=int, default=d.heads, metavar="N", help=f"attention heads (default {d.heads})")
    p.add_argument("--ffn", type=int, default=d.ffn, metavar="N", help=f"MLP hidden width (default {d.ffn})")
    p.add_argument("--context", type=int, default=d.context, metavar="N",
                   help=f"context in tokens, prompt and reply (default {d.context})")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="passes over the corpus (default: about 5 steps per exchange, 2,000 to 16,500 steps)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="N", help=f"random seed (default {d.seed})")
    p.add_argument("--batch", type=int, default=d.batch, metavar="N", help=f"batch size (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, metavar="RATE", help=f"peak learning rate (default {d.lr})")
    p.add_argument("--eval-every", type=int, metavar="N",
                   help="epochs between evaluations of the integer model (default: 8 evaluations)")
    p.add_argument("--threads", type=int, default=d.threads, metavar="N",
                   help=f"torch threads (default {d.threads}; the result depends on it)")
    p.add_argument("--probe", action="append", metavar="TEXT",
                   help="a prompt whose float and integer replies are shown at each evaluation; may repeat")
    return p


def load(args):
    from soulc.frontends.load import load_model
    from soulc.passes.context import set_context
    program = load_model(args.model, args.tokenizer, numerics=args.numerics, context=args.context)
    if args.context is not None:
        program = set_context(program, args.context)
    return program


def cmd_chat(argv) -> int:
    args = chat_parser().parse_args(argv)
    from soulc.passes.pipeline import HOST_PASSES, run_pipeline
    from .chat import chat
    chat(run_pipeline(load(args), HOST_PASSES))
    return 0


def cmd_run(argv) -> int:
    args = run_parser().parse_args(argv)
    from .run import run_tape
    return run_tape(args.tape, args.prompt, args.machine)


def cmd_train(argv) -> int:
    args = train_parser().parse_args(argv)
    from .train import run_train
    return run_train(args)


def cmd_compile(argv) -> int:
    parser = compile_parser()
    if "--list-targets" in argv:
        from soulc.targets import all_targets
        for target in all_targets():
            print(f"{target.name:8} {target.description}")
        return 0
    args = parser.parse_args(argv)
    if args.quant_report:
        from .quant_report import quant_report
        quant_report(args.model, load(args), args.numerics, sys.stdout, corpus=args.corpus)
        return 0
    if args.corpus:
        raise SoulcError("--corpus goes with --quant-report")
    from .compile import compile_model
    compile_model(load(args), args)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        if command == "chat":
            return cmd_chat(argv[1:])
        if command == "run":
            return cmd_run(argv[1:])
        if command == "train":
            return cmd_train(argv[1:])
        return cmd_compile(argv)
    except SoulcError as e:
        print(f"soulc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:                       # a bug in soulc, not the user's fault
        if os.environ.get("SOULC_DEBUG"):
            raise
        print(f"soulc: internal error: {type(e).__name__}: {e} (set SOULC_DEBUG=1 for a traceback "
              "and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
