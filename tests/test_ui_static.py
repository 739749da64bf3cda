"""Static renderings stored beside live widgets (spike_lib.ui.static): what the book shows."""

import base64

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.ui import config_gui
from spike_lib.ui.dashboard import Dashboard
from spike_lib.ui.graph_widget import GraphExplorer
from spike_lib.ui.static import figure_png, with_static
from spike_lib.ui.widgets import lif_explorer

VIEW = "application/vnd.jupyter.widget-view+json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_with_static_keeps_the_live_view_and_adds_the_rendering():
    box = with_static(w.VBox([w.IntSlider()]), html="<b>3</b>")
    data = box._repr_mimebundle_()
    assert data[VIEW]["model_id"] == box.model_id
    assert data["text/html"] == "<b>3</b>" and data["text/plain"].startswith("VBox(")
    with pytest.raises(ValueError, match="html= or png="):
        with_static(w.VBox())


def test_figure_png_is_a_png_of_the_figure():
    fig = plt.figure(figsize=(4, 2), dpi=50)
    fig.add_artist(plt.Rectangle((0, 0), 1, 1, color="red", transform=fig.transFigure))
    png = base64.b64decode(figure_png(fig))
    plt.close(fig)
    assert png.startswith(PNG_MAGIC)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (210, 110)  # (4 + 2 x 0.1 pad) x (2 + 2 x 0.1) inches at 50 dpi


def test_lif_explorer_stores_its_figure_in_the_widget_output_only_when_static():
    plt.close("all")
    assert "image/png" not in lif_explorer(static=False)._repr_mimebundle_()
    live_figures = len(plt.get_fignums())  # the live view's first drawing
    plt.close("all")
    data = lif_explorer(beta=0.8)._repr_mimebundle_()
    assert VIEW in data and base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
    assert len(plt.get_fignums()) == live_figures  # the static figure is not left to show twice
    plt.close("all")


def test_graph_explorer_widget_carries_the_static_tree(rng):
    model = SpikeLLM(Config.tiny(vocab_size=20, block_size=8, n_embd=8, n_head=2, d_ff=16))
    ex = GraphExplorer(model, rng.integers(0, 20, (2, 6)))
    data = ex.widget(open_depth=2)._repr_mimebundle_()
    assert VIEW in data and data["text/html"] == ex.html(2)


def test_config_form_displays_its_summary_for_the_book(monkeypatch, tmp_path):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    form = config_gui.ConfigForm("tiny", out=str(tmp_path / "run"))
    form.set(n_layer=2)
    form._ipython_display_()
    data = shown[0]._repr_mimebundle_()
    assert VIEW in data and "n_layer" in data["text/html"] and "--config tiny" in data["text/html"]


def test_dashboard_finish_hides_its_output_instead_of_closing_it():
    dash = Dashboard(every=1, live=True)
    out = dash.out
    for step in range(3):
        dash(step, {"loss": 3.0 - step, "lr": 1e-3})
    assert dash.finish() is None
    plt.close("all")
    assert out.comm is not None  # still a live model: a page reload finds it
    assert out.layout.display == "none" and out.outputs == ()


def test_static_png_is_not_blank():
    data = lif_explorer(current=0.5)._repr_mimebundle_()
    png = base64.b64decode(data["image/png"])
    assert len(png) > 5000 and np.frombuffer(png, np.uint8).std() > 10
