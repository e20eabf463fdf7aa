"""ZX Spectrum targets: the machines, ROM I/O, TAP container and the emulator harness."""
from soulc.targets import register

from .zx48 import ZX48_TARGET
from .zx128 import ZX128_TARGET

register(ZX48_TARGET)
register(ZX128_TARGET)
