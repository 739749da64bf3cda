"""The graph explorer: aggregated firing rates, the expandable HTML tree and its widget."""

import re

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.ui.graph import walk
from spike_lib.ui.graph_widget import GraphExplorer, annotate, label, rate_table, tree_html
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.numpy_impl.model import SpikeLLM


@pytest.fixture
def explorer(rng):
    model = SpikeLLM(Config.tiny(vocab_size=20, block_size=8, n_embd=8, n_head=2, d_ff=16,
                                 n_layer=2))
    return model, GraphExplorer(model, rng.integers(0, 20, (3, 6)))


def node(tree, path):
    return next(n for _, n in walk(tree) if n["path"] == path)


def test_container_rates_are_spikes_over_neuron_steps(explorer):
    model, ex = explorer
    neurons = {name: m.last_spk for name, m in model.named_modules() if isinstance(m, LIF)}
    total = sum(s.sum() for s in neurons.values()) / sum(s.size for s in neurons.values())
    assert ex.tree["rate"] == pytest.approx(total, rel=1e-6)
    assert ex.tree["neuron_steps"] == sum(s.size for s in neurons.values())
    block = [s for name, s in neurons.items() if name.startswith("blocks.1.")]
    assert node(ex.tree, "blocks.1")["rate"] == pytest.approx(
        sum(s.sum() for s in block) / sum(s.size for s in block), rel=1e-6)
    hidden = node(ex.tree, "blocks.0.sn_hidden")
    assert hidden["rate"] == hidden["spike_rate"] == float(neurons["blocks.0.sn_hidden"].mean())
    assert hidden["neuron_steps"] == 4 * 3 * 6 * 16  # (T, B, L, d_ff)
    assert node(ex.tree, "blocks.0.fc1")["rate"] is None  # no neuron inside a Linear
    assert node(ex.tree, "lm_head")["neuron_steps"] == 0


def test_annotate_does_not_change_the_input_tree(explorer):
    _, ex = explorer
    again = annotate(ex.tree)
    assert again["rate"] == ex.tree["rate"] and "_spikes" not in again


def test_html_tree_opens_level_by_level(explorer):
    _, ex = explorer
    n_inner = sum(1 for _, n in walk(ex.tree) if n["children"])
    for depth in (0, 1, 2):
        page = tree_html(ex.tree, open_depth=depth)
        assert page.count("<details") == n_inner
        assert page.count("<details open") == sum(
            1 for d, n in walk(ex.tree) if n["children"] and d < depth)
    rows = re.findall(r"<b>([^<]+)</b>", tree_html(ex.tree))
    assert len(rows) == sum(1 for _ in walk(ex.tree)) and rows[0] == "SpikeLLM"


def test_filter_keeps_matches_and_their_ancestors(explorer):
    _, ex = explorer
    page = ex.html(open_depth=0, match="SN_HIDDEN")
    assert re.findall(r"<b>([^<]+)</b>", page) == ["SpikeLLM", "blocks.0", "sn_hidden",
                                                 "blocks.1", "sn_hidden"]
    assert "no module matches 'nothing'" in ex.html(match="nothing")
    with pytest.raises(ValueError, match="open_depth=-1 is invalid"):
        ex.html(open_depth=-1)


def test_label_shows_shapes_params_and_rate(explorer):
    _, ex = explorer
    text = label(node(ex.tree, "blocks.0.fc1"))
    assert text == "<b>fc1</b> &middot; Linear &middot; 144 params &middot; (4, 3, 6, 8) &rarr; " \
                   "(4, 3, 6, 16)"
    assert "rate 0." in label(node(ex.tree, "blocks.0.sn1"))


def test_rate_table_is_a_static_text_rendering(explorer):
    _, ex = explorer
    lines = rate_table(ex.tree, max_depth=1).splitlines()
    assert [ln.split()[0] for ln in lines] == ["SpikeLLM", "blocks.0", "blocks.1"]
    assert lines[0].endswith(f"rate {ex.tree['rate']:.3f}")


def test_widget_redraws_on_slider_and_filter(explorer):
    _, ex = explorer
    box = ex.widget(open_depth=0)
    view = ex.controls["view"]
    assert box.children[-1] is view and "<details open" not in view.value
    ex.controls["depth"].value = 2
    assert view.value == ex.html(2)
    ex.controls["filter"].value = "ln_f"
    assert re.findall(r"<b>([^<]+)</b>", view.value) == ["SpikeLLM", "ln_f"]


def test_twin_has_no_rates_and_mlx_models_are_refused():
    twin = SpikeLLM(Config.tiny(spiking=False))
    ex = GraphExplorer(twin, np.zeros((1, 4), int))
    assert ex.tree["rate"] is None and "rate" not in ex.html()
    mx_model = pytest.importorskip("spike_lib.mlx_impl.model").SpikeLLM(Config.tiny())
    with pytest.raises(TypeError, match="to_numpy"):
        GraphExplorer(mx_model, np.zeros((1, 4), int))
