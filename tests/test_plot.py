"""Plot helpers on the Agg backend: the expected artists, titles, labels and legends."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from spike_lib.ui.plot import loss_curve, membrane, plot_surrogates, raster, rate_curve


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _labelled(ax):
    return bool(ax.get_title()) and bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def test_raster_one_dot_per_spike(ax):
    spk = np.zeros((10, 4))
    spk[[1, 3, 3, 9], [0, 1, 2, 3]] = 1
    raster(ax, spk)
    (dots,) = ax.collections
    np.testing.assert_array_equal(dots.get_offsets(), [[1, 0], [3, 1], [3, 2], [9, 3]])
    assert _labelled(ax) and ax.get_xlim() == (-0.5, 9.5)


def test_raster_of_one_neuron_and_bad_shape(ax):
    raster(ax, np.array([0, 1, 1, 0]))
    assert len(ax.collections[0].get_offsets()) == 2
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        raster(ax, np.zeros((2, 3, 4)))


def test_membrane_lines_and_legend(ax):
    mem = np.array([0.6, 0.9, 1.05, 0.6])
    membrane(ax, mem, 1.0, spk=np.array([0, 0, 1, 0]))
    trace, thresh, spikes = ax.lines
    np.testing.assert_array_equal(trace.get_ydata(), mem)
    assert list(thresh.get_ydata()) == [1.0, 1.0]
    np.testing.assert_array_equal(spikes.get_xdata(), [2])
    assert len(ax.get_legend().get_texts()) == 3 and _labelled(ax)


def test_membrane_without_spikes_and_bad_shape(ax):
    membrane(ax, np.zeros(5), 0.5)
    assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="mem"):
        membrane(ax, np.zeros((5, 2)), 0.5)


def test_plot_surrogates_four_plus_step():
    fig, (ax_grad, ax_smooth) = plot_surrogates()
    assert len(ax_grad.lines) == 4 and len(ax_smooth.lines) == 5  # + the step H(x)
    peak = {line.get_label(): line.get_ydata().max() for line in ax_grad.lines}
    assert peak["arctan"] == pytest.approx(1.0) and peak["rectangular"] == pytest.approx(1.0)
    assert all(_labelled(a) and a.get_legend() for a in (ax_grad, ax_smooth))
    plt.close(fig)


def test_loss_curve_single_and_several(ax):
    loss_curve(ax, [3.0, 2.0, 1.0])
    assert len(ax.lines) == 1 and ax.get_legend() is None and _labelled(ax)
    ax.cla()
    loss_curve(ax, [3.0, 2.0, 1.5], val=[3.5, 2.5, 2.0], log=True)
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]


def test_rate_curve(ax):
    rate_curve(ax, [0.0, 0.5, 1.0], [0.0, 0.5, 1.0], closed_form=[0.0, 0.5, 1.0])
    assert len(ax.lines) == 2 and len(ax.get_legend().get_texts()) == 2 and _labelled(ax)
