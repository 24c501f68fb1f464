"""The one exception type for bad input that a command reports as ``error: ...``."""


class InputError(ValueError):
    """Bad input from the user: a missing directory, a corrupt file, a bad option.

    Commands print it as one line starting ``error:`` and exit with status 2.
    """
