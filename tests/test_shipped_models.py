"""The shipped book models reproduce what their training logs say, and fit the issue's limits."""

import json

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.train.bookmodel import BOOK, TWIN, load_book, shipped_path

SOFTMAX = "book-softmax"
MAX_WEIGHTS_MB = 25
# name: (attention, spiking, spike_levels) - the book model and its two twins (chapters 8, 8e)
SHIPPED = {BOOK: ("spike_matrix_decay_shift", True, 4), TWIN: ("spike_matrix_decay_shift", False, 1),
           SOFTMAX: ("softmax_shift", False, 1)}


def read_log(path):
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_is_the_book_preset_and_small_enough(name):
    attention, spiking, levels = SHIPPED[name]
    path = shipped_path(name)
    model, tok, meta = load_book(name)
    assert model.cfg == Config.book(vocab_size=tok.vocab_size, spiking=spiking, attention=attention,
                                    spike_levels=levels)
    assert (path / "weights.npz").stat().st_size < MAX_WEIGHTS_MB * 2**20
    assert not (path / "optimizer.npz").exists()  # the optimizer state is not shipped
    run = json.loads((path / "run.json").read_text())
    assert run["options"]["attention"] == attention and run["options"]["spiking"] == spiking
    # the twins were stopped part-way through the same schedule: the log ends at the checkpoint
    assert meta["step"] == read_log(path)[-1]["step"] <= run["options"]["steps"]
    assert "python -m spike_lib train" in (path / "README.md").read_text()


def test_the_twins_share_the_book_models_options():
    runs = {name: json.loads((shipped_path(name) / "run.json").read_text()) for name in SHIPPED}
    # steps: the schedule, which changed on resume; ckpt_every: how often a checkpoint is
    # written, which does not change the weights (resume is exact)
    differ = {"attention", "spiking", "steps", "ckpt_every", "set"}  # set: spike_levels=4
    for name in (TWIN, SOFTMAX):
        for key, value in runs[BOOK]["options"].items():
            if key not in differ:
                assert runs[name]["options"][key] == value, (name, key)


def test_the_twins_had_the_book_models_budget_in_minutes():
    # issue 13: the same budget (at most 90 minutes of the idle 2-core machine), not the same
    # steps: each recipe's idle speed (scripts/train_budget.py) turns its steps into minutes
    from spike_lib.data.corpus import data_dir

    idle = json.loads((data_dir() / "benchmarks" / "train_budget.json").read_text())
    minutes = {}
    for name in SHIPPED:
        row, path = idle["models"][name], shipped_path(name)
        run, meta = (json.loads((path / f).read_text()) for f in ("run.json", "meta.json"))
        assert row["shipped_steps"] == meta["step"] == run["options"]["steps"]  # stored for this folder
        assert row["tokens_per_step"] == run["options"]["batch_size"] * run["model"]["block_size"]
        minutes[name] = meta["step"] * row["tokens_per_step"] / row["tokens_per_s"] / 60  # Eq. 8.1
        assert minutes[name] == pytest.approx(row["shipped_minutes"], rel=1e-9)
        assert minutes[name] <= idle["minutes"] == 90
    for name in (TWIN, SOFTMAX):
        assert minutes[name] == pytest.approx(minutes[BOOK], rel=0.05), (name, minutes)


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_weights_reproduce_the_logged_validation_bpc(name):
    # the run evaluated the NumPy copy of its model on the logs' held-out slice (heldout_ids:
    # an equal share of every validation source, val_tokens + 1 ids); the shipped weights must
    # give the same number again, at the step of the checkpoint
    from spike_lib.numpy_impl.train import evaluate
    from spike_lib.train.heldout import heldout_ids

    path = shipped_path(name)
    model, tok, meta = load_book(name)
    opts = json.loads((path / "run.json").read_text())["options"]
    logged = [r for r in read_log(path) if "val_bpc" in r][-1]
    assert logged["step"] == meta["step"]
    ids = heldout_ids(tok, opts["val_tokens"])
    model.train(False)
    ev = evaluate(model, ids, n_chars=len(tok.decode(ids[1:].tolist())),
                  batch_size=opts["batch_size"])
    assert ev["bpc"] == pytest.approx(logged["val_bpc"], rel=1e-5)
    assert np.isfinite(ev["loss"]) and ev["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)


def test_thin_log_keeps_every_evaluation_and_every_fifth_step():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from ship_model import thin_log

    records = [{"step": s, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0, "tokens_per_s": 9.0}
               for s in range(1, 38)]
    records[22]["val_bpc"] = 2.5  # step 23: an evaluation
    kept = [r["step"] for r in thin_log(records)]
    assert kept == list(range(1, 11)) + [15, 20, 23, 25, 30, 35, 37]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_logs_are_thinned_below_the_line_limit(name):
    log = read_log(shipped_path(name))
    assert len(log) < 1000
    steps = [r["step"] for r in log]
    assert steps == sorted(steps) and all(s <= 10 or s % 5 == 0 or "val_bpc" in r or r is log[-1]
                                          for s, r in zip(steps, log))
    assert sum("val_bpc" in r for r in log) == steps[-1] // 100  # every 100th step was evaluated


def test_shipped_book_model_generates_on_the_fused_path_with_the_windowed_logits():
    # the leaking D = 4 model one token at a time through generate_fast (spike levels, the leak,
    # token shift one token ahead), in both ports, against each port's windowed forward; a
    # flipped spike would move a logit by about 0.1
    from spike_lib.numpy_impl import generate as np_gen

    model, tok, _ = load_book(BOOK)
    model.train(False)
    ids = np.array([tok.encode("The river ran past the old mill, and the miller's daughter "
                               "watched the water from the window")[:24]])
    logits, state = model.step(ids[:, :4])
    parts = [logits] + [model.step(ids[:, i:i + 1], state)[0] for i in range(4, ids.shape[1])]
    got = np.concatenate(parts, axis=1)
    assert np_gen.FAST_PATH and state["plan"][0]["qkv"]["lam"] is not None  # the fused leak
    np.testing.assert_allclose(got, model(ids), rtol=0, atol=1e-4)
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.model import load_checkpoint

    mlx_model, _, _ = load_checkpoint(shipped_path(BOOK))
    mlx_model.train(False)
    logits, state = mlx_model.step(ids[:, :4])
    parts = [np.asarray(logits)] + [np.asarray(mlx_model.step(ids[:, i:i + 1], state)[0])
                                    for i in range(4, ids.shape[1])]
    mlx_got = np.concatenate(parts, axis=1)
    assert state["plan"][0]["qkv"]["lam"] is not None
    np.testing.assert_allclose(mlx_got, np.asarray(mlx_model(ids)), rtol=0, atol=1e-4)
    np.testing.assert_allclose(mlx_got, got, rtol=0, atol=1e-4)
