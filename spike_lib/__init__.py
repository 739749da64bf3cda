"""spike_lib: the shared library of the course "Spiking Transformers from Scratch".

Taught in: every chapter; the quick-mode switch is explained in book/how_to_use.md.
"""

import os

__version__ = "0.1.0"

QUICK_ENV = "SPIKE_QUICK"


def quick_mode() -> bool:
    """True when the environment variable SPIKE_QUICK is set to 1/true/yes (as `make test` does)."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{QUICK_ENV}={value!r} is not understood; use 1 (quick) or 0 (full)")


def budget(full, quick):
    """Pick a training length: `quick` in quick mode (tests, CI), `full` otherwise."""
    return quick if quick_mode() else full


__all__ = ["QUICK_ENV", "__version__", "budget", "quick_mode"]
