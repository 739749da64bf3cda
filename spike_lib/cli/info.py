"""`python -m spike_lib info`: what this machine offers the course (versions, BLAS, quick mode).

Taught in: book/how_to_use.md
"""

import platform
import sys

import numpy as np

import spike_lib
from spike_lib.core import blas


def numpy_blas() -> str:
    """Name of the BLAS numpy was built against (for example 'scipy-openblas')."""
    try:
        config = np.show_config(mode="dicts")
        return config["Build Dependencies"]["blas"]["name"]
    except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
        return "unknown"


def collect() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "spike_lib": spike_lib.__version__,
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "quick_mode": spike_lib.quick_mode(),
    }
    try:
        import mlx.core as mx

        info["mlx"] = mx.__version__
        info["mlx_device"] = str(mx.default_device())
        info["mlx_fast_blas"] = not blas.needs_fix()
    except ImportError:
        info["mlx"] = "not installed"
    return info


def add_arguments(parser) -> None:
    pass


def run(args) -> dict:
    return collect()


if __name__ == "__main__":
    print(collect(), file=sys.stdout)
