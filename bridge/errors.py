"""The root of every error twinbridge raises on purpose.

Each module keeps its own error class (``ConfigError``, ``TagMapError``, ``EngineFault`` ...), named
where it is raised, and each one derives from ``TwinbridgeError``, so that a caller (the command line,
a test, an embedding application) tells "the input or the engine was bad" (``TwinbridgeError``: say
it in one line) from a defect of the code (anything else: a traceback). Bad-input errors also derive
from ``ValueError`` and run-time failures from ``RuntimeError``, as they did before the root existed.
"""

from __future__ import annotations


class TwinbridgeError(Exception):
    """Something twinbridge refused or could not do, with a message that names the file, tag or
    building concerned. The command line prints it in one line and exits with ``exit_code``."""

    exit_code = 2  # bad input (a file, an option, a model): as argparse exits on a bad option
