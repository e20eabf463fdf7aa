"""The one error type soulc reports to users: printed as `soulc: error: ...`, exit status 2."""


class SoulcError(Exception):
    """A problem with the user's input (file, model, option) that soulc explains in one line."""
