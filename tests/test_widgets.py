"""The LIF explorer: the pure function behind the figure, and the widget's construction."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from spike_lib.ui.widgets import draw_lif_explorer, lif_explorer, lif_explorer_data


def test_data_beta_one_rate_is_x_over_threshold():
    d = lif_explorer_data(beta=1.0, threshold=1.0, current=0.3, num_steps=50)
    assert d["spk"].sum() == 14  # ceil(50 * 0.3 / 1) - 1
    assert d["rate"] == pytest.approx(0.28)
    assert d["mem"].shape == d["spk"].shape == (50,)
    assert d["currents"].shape == d["rates"].shape == (81,)
    assert d["rates"][0] == 0.0 and d["rates"][-1] == 1.0  # x = 2 threshold fires every step


def test_data_leaky_neuron_has_a_rheobase():
    d = lif_explorer_data(beta=0.5, threshold=1.0, current=0.5, num_steps=40, reset="zero")
    assert d["spk"].sum() == 0  # u tends to x / (1 - beta) = 1.0, never above
    above = d["currents"] > 0.5 + 1e-9
    assert np.all(d["rates"][~above] == 0) and np.all(d["rates"][above] > 0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"beta": 2.0}, "beta"),
        ({"current": -1.0}, "current"),
        ({"num_steps": 0}, "num_steps"),
        ({"threshold": 0.0}, "threshold"),
    ],
)
def test_data_bad_input(kwargs, field):
    with pytest.raises(ValueError, match=field):
        lif_explorer_data(**kwargs)


def test_draw_two_panels():
    fig = draw_lif_explorer(lif_explorer_data(current=0.4))
    ax_mem, ax_rate = fig.axes
    assert len(ax_mem.lines) == 3 and len(ax_rate.lines) == 2
    assert ax_mem.get_title() and ax_rate.get_xlabel()
    plt.close(fig)


def test_explorer_builds_controls_without_static_figure():
    ui = lif_explorer(beta=0.7, static=False)
    sliders = [c for box in ui.children[:2] for c in box.children]
    assert [s.description for s in sliders] == [
        "beta",
        "threshold",
        "input x",
        "num_steps",
        "reset",
    ]
    assert sliders[0].value == 0.7
    plt.close("all")
