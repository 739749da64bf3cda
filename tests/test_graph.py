import json

import matplotlib.pyplot as plt
import numpy as np

from spike_lib.cli import main
from spike_lib.core.config import Config
from spike_lib.ui.graph import draw_graph, format_tree, module_graph, walk
from spike_lib.numpy_impl.model import SpikeLLM


def tiny_model():
    return SpikeLLM(Config.tiny(vocab_size=20, block_size=8, n_embd=8, n_head=2, d_ff=16))


def find(tree, path):
    return next(n for _, n in walk(tree) if n["path"] == path)


def test_tree_counts_parameters_and_records_shapes_and_rates(rng):
    model = tiny_model()
    tree = module_graph(model, rng.integers(0, 20, (3, 5)))
    assert tree["params"] == model.num_params() and tree["type"] == "SpikeLLM"
    assert tree["params"] == tree["own_params"] + sum(c["params"] for c in tree["children"])
    fc1 = find(tree, "blocks.0.fc1")
    assert fc1["own_params"] == 8 * 16 + 16
    assert fc1["in_shape"] == [4, 3, 5, 8] and fc1["out_shape"] == [4, 3, 5, 16]  # (T, B, L, D)
    assert find(tree, "lm_head")["out_shape"] == [3, 5, 20]
    assert find(tree, "blocks.0.sn_hidden")["spike_rate"] == model.firing_rates()["blocks.0.sn_hidden"]
    assert find(tree, "blocks.0.fc1")["spike_rate"] is None
    assert [c["name"] for c in tree["children"]] == ["tok_emb", "pos_emb", "blocks.0", "ln_f",
                                                     "lm_head"]


def test_the_forward_methods_are_restored(rng):
    model = tiny_model()
    idx = rng.integers(0, 20, (1, 4))
    before = model(idx)
    module_graph(model, idx)
    assert not any("forward" in vars(m) for _, m in model.named_modules())
    np.testing.assert_array_equal(model(idx), before)


def test_without_a_forward_pass_there_are_no_shapes():
    tree = module_graph(tiny_model())
    assert all(n["out_shape"] is None and n["spike_rate"] is None for _, n in walk(tree))


def test_format_and_draw(rng):
    model = tiny_model()
    tree = module_graph(model, rng.integers(0, 20, (1, 4)))
    text = format_tree(tree)
    lines = text.splitlines()
    assert len(lines) == sum(1 for _ in model.named_modules())
    assert lines[0].startswith("SpikeLLM") and "(1, 4) -> (1, 4, 20)" in lines[0]
    assert any(line.startswith("    sn1") and "rate" in line for line in lines)
    assert len(format_tree(tree, max_depth=1).splitlines()) == 1 + 5
    fig = draw_graph(tree, max_depth=1)
    assert len(fig.axes[0].texts) == 1 + 5
    plt.close(fig)


def test_graph_command(capsys, tmp_path):
    out = tmp_path / "g.png"
    assert main(["graph", "--config", "tiny", "--json", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["params"] == SpikeLLM(Config.tiny()).num_params()
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["graph", "--config", "tiny", "--tokens", "0"]) == 2
    assert "--tokens 0 is invalid" in capsys.readouterr().err
