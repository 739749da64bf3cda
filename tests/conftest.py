import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # tests never open windows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture
def no_quick(monkeypatch):
    """Run a test in full mode whatever SPIKE_QUICK the suite was started with."""
    monkeypatch.delenv("SPIKE_QUICK", raising=False)
    assert "SPIKE_QUICK" not in os.environ
