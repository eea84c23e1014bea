"""`python -m suite` is the same as `fashionbench`."""

import sys
from typing import NoReturn


def _exit(code: object) -> NoReturn:
    """Exit with the command's code, as `fashionbench` does."""
    # A Ctrl-C that passed through an exec() of a string (SciPy's and NumPy's imports run some) leaves a flag CPython
    # reads at exit only under `python -m`: the process would end by SIGINT although the command handled the
    # interrupt and printed its line. An exec() that ends normally clears that flag (CPython 3.10 to 3.13).
    exec("")
    sys.exit(code)


try:
    from suite.cli import main
except SystemExit as stop:  # Ctrl-C while the commands load: suite.cli has printed its one line
    _exit(stop.code)
_exit(main())
