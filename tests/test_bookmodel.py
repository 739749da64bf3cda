"""The shipped-model helpers: a folder checked whole, run summaries, the gap, loss comparisons."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from spike_lib.train import bookmodel, runs
from spike_lib.train.checkpoint import save_checkpoint
from spike_lib.train.evaluation import evaluate_text
from spike_lib.core.config import Config
from spike_lib.core.energy import linear_flops
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer

TEXT = "The cat sat on the mat. " * 8  # 192 characters


def make_shipped(folder, spiking=True):
    """A shipped-model folder by hand: a tiny char model at step 3 of 5, a log of 5 steps."""
    tok = get_tokenizer("char")
    opts = runs.run_options(config="tiny", batch_size=4, steps=5, eval_every=2, spiking=spiking)
    cfg = runs.make_config(opts, tok)
    save_checkpoint(folder, SpikeLLM(cfg), tok, meta={"step": 3, "train_seconds": 1.5})
    runs.write_json_atomic(folder / "run.json", {"options": opts, "model": cfg.to_dict()})
    log = [{"step": s, "loss": 5.0 - s, "lr": 1e-3, "tokens_per_s": 100.0 * s} for s in (1, 2, 3, 4)]
    log[1]["val_bpc"], log[3]["val_bpc"] = 4.5, 4.0  # step 4 is past the checkpoint
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (folder / "README.md").write_text("# test\n")
    return folder


@pytest.fixture
def shipped(tmp_path):
    return make_shipped(tmp_path / "book")


def test_shipped_path_finds_names_and_paths_and_refuses_incomplete_folders(tmp_path, shipped):
    assert bookmodel.shipped_path("book", root=tmp_path) == shipped
    assert bookmodel.shipped_path(shipped) == shipped
    with pytest.raises(ValueError, match=r"no shipped model 'bok'.*'book' and 'book-twin'"):
        bookmodel.shipped_path("bok", root=tmp_path)
    (shipped / "log.jsonl").unlink()
    with pytest.raises(ValueError, match=r"\['log.jsonl'\] missing; re-ship"):
        bookmodel.shipped_path(shipped)


def test_load_book_gives_the_same_logits_in_both_ports(shipped):
    pytest.importorskip("mlx.core")
    model, tok, meta = bookmodel.load_book(shipped)
    mlx_model, _, _ = bookmodel.load_book(shipped, backend="mlx")
    ids = np.array([tok.encode("The cat")])
    assert meta["step"] == 3 and model.cfg.vocab_size == tok.vocab_size
    np.testing.assert_allclose(np.array(mlx_model(ids)), model(ids), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="backend='jax' is invalid"):
        bookmodel.load_book(shipped, backend="jax")


def test_run_summary_counts_tokens_and_stops_at_the_checkpoint(shipped):
    s = bookmodel.run_summary(shipped)
    assert (s["step"], s["steps"], s["tokens_per_step"]) == (3, 5, 4 * 16)  # tiny: block 16
    assert s["tokens_seen"] == 3 * 64 and s["train_seconds"] == 1.5
    assert s["tokens_per_s"] == 200.0  # median of 100, 200, 300: step 4 is not in the model
    assert (s["last_val_step"], s["last_val_bpc"]) == (2, 4.5)
    assert s["command"].endswith("--steps 5 --eval-every 2 --val-tokens 4096 --seed 0 --out runs/book")


def test_train_command_spells_every_option():
    opts = runs.run_options(config="book", backend="mlx", steps=3000, lr=3e-3, warmup=100,
                            spiking=False, eval_every=250, val_tokens=8192, set={"n_layer": 6})
    assert bookmodel.train_command(opts, "runs/x") == (
        "python -m spike_lib train --config book --backend mlx --tokenizer bpe --batch-size 16 "
        "--lr 0.003 --warmup 100 --steps 3000 --eval-every 250 --val-tokens 8192 --seed 0 "
        "--no-spiking --set n_layer=6 --out runs/x")


def test_spiking_gap_of_spikegpt_is_about_13_percent():
    gap = bookmodel.spiking_gap(bookmodel.SPIKEGPT["bpc"], bookmodel.SPIKEGPT["twin_bpc"])
    assert math.isclose(gap["bpc"], 0.146, abs_tol=1e-12)
    assert math.isclose(gap["percent"], 100 * 0.146 / 1.137)  # 12.84 %
    assert bookmodel.spiking_gap(2.0, 2.5)["percent"] == -20.0  # a spiking model may win
    with pytest.raises(ValueError, match="bpc_twin=0 is invalid"):
        bookmodel.spiking_gap(1.0, 0)
    with pytest.raises(ValueError, match="bpc_spiking=nan is invalid"):
        bookmodel.spiking_gap(math.nan, 1.0)


def test_loss_difference_compares_common_steps_and_sees_repeats():
    a = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 3, "loss": 2.0}]
    b = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.25}]
    assert bookmodel.loss_difference(a, b) == {"steps": 2, "max_abs_diff": 0.25,
                                               "same_steps": False}
    assert bookmodel.loss_difference(a, a)["same_steps"] is True
    repeated = a[:2] + a[1:]  # step 2 logged twice: a resume that did not truncate its log
    assert bookmodel.loss_difference(repeated, a)["same_steps"] is False
    with pytest.raises(ValueError, match="no step in common"):
        bookmodel.loss_difference(a, [{"step": 9, "loss": 1.0}])


def test_evaluate_book_reports_the_layers_and_the_energy_of_the_eval_windows(shipped):
    model, tok, _ = bookmodel.load_book(shipped)
    res = bookmodel.evaluate_book(model, tok, TEXT, max_tokens=100, batch_size=4)
    assert res["tokens"] == 100 and res["loss"] == evaluate_text(model, tok, TEXT, 100, 4)["loss"]
    assert set(res["rates"]) == {"blocks.0.sn1", "blocks.0.attn.q_lif", "blocks.0.attn.k_lif",
                                 "blocks.0.attn.v_lif", "blocks.0.attn.attn_lif",
                                 "blocks.0.sn2", "blocks.0.sn_hidden"}
    assert math.isclose(res["firing_rate"], np.mean(list(res["rates"].values())))
    # windows of 16 tokens starting at 0, 16, ..., 80 (the last must fit in 101 ids): 4 kept
    rows = res["energy"].rows
    assert rows[0]["layer"] == "blocks.0.attn.q_proj" and rows[0]["flops"] == linear_flops(
        32, 32, 4 * 16)
    assert math.isclose(res["energy"].ratio, res["energy_ratio"])


def test_twin_has_no_rates_and_the_ratio_of_an_ann(tmp_path):
    model, tok, _ = bookmodel.load_book(make_shipped(tmp_path / "twin", spiking=False))
    res = bookmodel.evaluate_book(model, tok, TEXT, max_tokens=50)
    assert res["rates"] == {} and res["firing_rate"] is None and res["energy_ratio"] == 1.0


def test_eval_command_reads_a_shipped_folder(shipped):
    text = shipped.parent / "t.txt"
    text.write_text(TEXT)
    out = subprocess.run([sys.executable, "-m", "spike_lib", "eval", "--checkpoint", str(shipped),
                          "--text-file", str(text), "--max-tokens", "64", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1])["tokens"] == 64


def test_the_real_shipped_models_are_complete_and_agree_with_their_configs():
    # Config.book()'s 4,441,088, plus token shift's two mixing vectors of D = 256 per block, plus
    # the leak's one rate per head and block (spike_matrix_decay_shift, chapter 8e)
    for name, spiking, attention, levels, n_params in (
            (bookmodel.BOOK, True, "spike_matrix_decay_shift", 4, 4_441_088 + 4 * (2 * 256 + 4)),
            (bookmodel.TWIN, False, "spike_matrix_decay_shift", 1, 4_441_088 + 4 * (2 * 256 + 4)),
            ("book-softmax", False, "softmax_shift", 1, 4_441_088 + 4 * 2 * 256)):
        s = bookmodel.run_summary(bookmodel.shipped_path(name))
        cfg = Config.from_dict(json.loads((bookmodel.shipped_path(name) / "config.json").read_text()))
        assert cfg == Config.book(vocab_size=cfg.vocab_size, spiking=spiking, attention=attention,
                                  spike_levels=levels)
        assert s["tokens_per_step"] == 16 * 128 and s["n_params"] == n_params


def test_source_texts_give_each_source_its_documents():
    texts = bookmodel.source_texts("val")
    assert list(texts) == sorted(texts) and "austen" in texts and "factbook" in texts
    from spike_lib.data.corpus import load_corpus

    docs = [d["text"] for d in load_corpus("val") if d["source"] == "milton"]
    assert texts["milton"] == "\n\n".join(docs)


def test_pool_results_adds_nats_and_characters_and_energies(shipped):
    model, tok, _ = bookmodel.load_book(shipped)
    a = bookmodel.evaluate_book(model, tok, TEXT, max_tokens=100, batch_size=4)
    b = bookmodel.evaluate_book(model, tok, "Zebras run. " * 20, max_tokens=60, batch_size=4)
    assert a["chars"] == 100 and a["total_nats"] == a["loss"] * 100  # 1 char per char token
    one = bookmodel.pool_results([a])
    assert math.isclose(one["bpc"], a["bpc"]) and math.isclose(one["energy_ratio"], a["energy_ratio"])
    assert one["energy"].rows[1]["firing_rate"] == pytest.approx(a["energy"].rows[1]["firing_rate"])
    both = bookmodel.pool_results([a, b])
    want = (a["total_nats"] + b["total_nats"]) / (math.log(2) * (100 + 60))
    assert math.isclose(both["bpc"], want) and both["tokens"] == 160
    assert math.isclose(both["energy"].ann_pj, a["energy"].ann_pj + b["energy"].ann_pj)
    assert math.isclose(both["energy"].snn_pj, a["energy"].snn_pj + b["energy"].snn_pj)
    k = "blocks.0.sn2"
    assert math.isclose(both["rates"][k], (a["rates"][k] + b["rates"][k]) / 2)
    with pytest.raises(ValueError, match="nothing to pool"):
        bookmodel.pool_results([])
