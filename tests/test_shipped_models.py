"""The shipped book models reproduce what their training logs say, and fit the issue's limits."""

import json

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.train.bookmodel import BOOK, TWIN, load_book, shipped_path

SOFTMAX = "book-softmax"
MAX_WEIGHTS_MB = 25
# name: (attention, spiking) - the book model and its two twins (chapter 8)
SHIPPED = {BOOK: ("spike_matrix_shift", True), TWIN: ("spike_matrix_shift", False),
           SOFTMAX: ("softmax_shift", False)}


def read_log(path):
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_is_the_book_preset_and_small_enough(name):
    attention, spiking = SHIPPED[name]
    path = shipped_path(name)
    model, tok, meta = load_book(name)
    assert model.cfg == Config.book(vocab_size=tok.vocab_size, spiking=spiking, attention=attention)
    assert (path / "weights.npz").stat().st_size < MAX_WEIGHTS_MB * 2**20
    assert not (path / "optimizer.npz").exists()  # the optimizer state is not shipped
    run = json.loads((path / "run.json").read_text())
    assert run["options"]["attention"] == attention and run["options"]["spiking"] == spiking
    # the twins were stopped part-way through the same schedule: the log ends at the checkpoint
    assert meta["step"] == read_log(path)[-1]["step"] <= run["options"]["steps"]
    assert "python -m spike_lib train" in (path / "README.md").read_text()


def test_the_twins_share_the_book_models_options():
    runs = {name: json.loads((shipped_path(name) / "run.json").read_text()) for name in SHIPPED}
    differ = {"attention", "spiking", "steps"}  # steps: the schedule, which changed on resume
    for name in (TWIN, SOFTMAX):
        for key, value in runs[BOOK]["options"].items():
            if key not in differ:
                assert runs[name]["options"][key] == value, (name, key)
        assert runs[name]["options"]["steps"] == runs[BOOK]["options"]["steps"]


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
