"""The dashboard's data (what it would draw), its figure, and its use as a run-loop callback."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from spike_lib.train import runs
from spike_lib.ui.dashboard import Dashboard, in_notebook
from spike_lib.ui.runplot import block_rates, draw_runs, run_series

RECORDS = [
    {"step": 1, "loss": 4.0, "lr": 0.001, "grad_norm": 2.0, "tokens_per_s": 100.0},
    {"step": 2, "loss": 3.0, "lr": 0.002, "grad_norm": 1.5, "tokens_per_s": 110.0,
     "val_loss": 3.5, "val_bpc": 5.0,
     "firing_rates": {"blocks.0.sn1": 0.2, "blocks.0.sn2": 0.4, "blocks.0.attn.kv": 0.9,
                      "blocks.0.attn.out_in": 0.8, "blocks.1.sn1": 0.1}},
    {"step": 3, "loss": 2.5, "lr": 0.0015, "grad_norm": 1.0, "tokens_per_s": 120.0,
     "val_loss": 3.0, "val_bpc": 4.25, "firing_rates": {"blocks.1.sn1": 0.3}},
    {"event": "note"},  # records without a step are not drawn
]


def test_block_rates_average_neurons_and_skip_derived_rates():
    got = block_rates(RECORDS[1]["firing_rates"])
    assert got == {"blocks.0": pytest.approx(0.3), "blocks.1": pytest.approx(0.1)}
    assert list(block_rates({f"blocks.{i}.sn1": 0.5 for i in (10, 2, 0)})) == [
        "blocks.0", "blocks.2", "blocks.10"]  # numeric order, not text order


def test_run_series_is_what_the_figure_shows():
    s = run_series(RECORDS)
    assert s["step"] == [1, 2, 3] and s["loss"] == [4.0, 3.0, 2.5]
    assert s["lr"] == [0.001, 0.002, 0.0015]
    assert s["val_step"] == [2, 3] and s["val_bpc"] == [5.0, 4.25]
    assert s["rates"]["blocks.0"][0] == pytest.approx(0.3) and math.isnan(s["rates"]["blocks.0"][1])
    assert s["rates"]["blocks.1"] == pytest.approx([0.1, 0.3])


def test_figure_has_four_labelled_panels_with_one_line_per_run_and_block():
    fig = draw_runs({"a": run_series(RECORDS), "b": run_series(RECORDS[:2])})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["Training loss", "Validation", "Learning rate",
                                               "Firing rate per block"]
    assert all(ax.get_xlabel() == "step (updates)" and ax.get_ylabel() for ax in axes)
    assert [len(ax.lines) for ax in axes] == [2, 2, 2, 4]
    np.testing.assert_array_equal(axes[1].lines[0].get_ydata(), [5.0, 4.25])
    plt.close(fig)


def test_dashboard_as_run_callback_collects_the_log(tmp_path):
    from spike_lib.data.corpus import load_corpus

    val = load_corpus("val")
    dash = Dashboard("tiny", every=2, live=False)
    runs.train_run(tmp_path / "r", callback=dash, train_docs=val[:20], val_docs=val[20:22],
                   steps=4, eval_every=2, batch_size=2, val_tokens=64, warmup=1)
    assert dash.records == runs.read_log(tmp_path / "r")
    assert dash.data()["val_step"] == [2, 4]
    fig = dash.finish()
    assert len(fig.axes[0].lines[0].get_xdata()) == 4
    plt.close(fig)


def test_dashboard_as_numpy_train_callback_numbers_steps_from_1(rng):
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.numpy_impl.train import train

    model = SpikeLLM(Config.tiny(vocab_size=20, block_size=8))
    dash = Dashboard(live=False)
    hist = train(model, rng.integers(0, 20, 200), steps=3, batch_size=2, rng=rng, warmup=1,
                 callback=dash)
    assert dash.data()["step"] == [1, 2, 3] and dash.data()["loss"] == hist["loss"]
    assert not in_notebook()  # pytest is no Jupyter kernel: live=None would stay silent


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every=0 is invalid"):
        Dashboard(every=0, live=False)


def test_references_are_dashed_lines_on_the_validation_panel_only():
    dash = Dashboard("tiny", live=False, references={"KN bigram": 4.5, "KN trigram": 4.0})
    for rec in RECORDS[:3]:
        dash(rec["step"] - 1, {k: v for k, v in rec.items() if k != "step"})
    fig = dash.finish()
    bpc = fig.axes[1]
    assert len(bpc.lines) == 3  # the run and two references
    assert [list(line.get_ydata()) for line in bpc.lines[1:]] == [[4.5, 4.5], [4.0, 4.0]]
    assert [t.get_text() for t in bpc.get_legend().get_texts()] == [
        "tiny", "KN bigram (4.500)", "KN trigram (4.000)"]
    assert [len(ax.lines) for ax in (fig.axes[0], fig.axes[2])] == [1, 1]
    plt.close(fig)
    with pytest.raises(ValueError, match="reference 'x' = nan"):
        draw_runs({"a": run_series(RECORDS)}, references={"x": float("nan")})
