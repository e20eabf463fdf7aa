"""The compile driver: model -> pass pipeline -> target build -> the artefact asked for."""
from __future__ import annotations

import sys

from soulc.ir.printer import print_program
from soulc.passes.pipeline import HOST_PASSES, run_pipeline

from .errors import SoulcError
from .output import write_atomically


def compile_model(program, args) -> None:
    from soulc.targets import get_target
    target = get_target(args.target) if args.target else None
    passes = HOST_PASSES + (target.passes if target else [])
    names = [name for name, _ in passes]
    for name in args.print_after:
        if name not in names:
            raise SoulcError(f"--print-after {name}: no such pass; the pipeline is: {', '.join(names)}")

    def after(name, prog):
        if args.print_after_all or name in args.print_after:
            sys.stdout.write(f"# IR after {name}\n{print_program(prog, with_data=False)}\n")

    program = run_pipeline(program, passes, after)
    if target is None:
        if args.memory_map:
            raise SoulcError("--memory-map needs a --target")
        emit = args.emit or "ir"
        if emit != "ir":
            raise SoulcError(f"--emit {emit} needs a --target (see soulc --list-targets)")
        data = print_program(program)
    else:
        build = target.build(program)
        if args.memory_map:
            sys.stdout.write(build.memory_map)
        emit = args.emit or build.default_emit
        if emit == "ir":
            data = print_program(program)
        elif emit in build.artefacts:
            data = build.artefacts[emit]
        else:
            kinds = ", ".join(["ir", *build.artefacts])
            raise SoulcError(f"--emit {emit}: {target.name} emits {kinds}")
    if args.output:
        write_atomically(args.output, data)
    elif args.emit or not (args.memory_map or args.print_after or args.print_after_all):
        if isinstance(data, bytes):
            raise SoulcError(f"--emit {emit} is binary: write it with -o FILE")
        sys.stdout.write(data)
