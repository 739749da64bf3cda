"""The shipped book models reproduce what their training logs say, and fit the issue's limits."""

import json

import numpy as np
import pytest

from spike_lib.train.bookmodel import BOOK, TWIN, load_book, shipped_path
from spike_lib.core.config import Config

MAX_WEIGHTS_MB = 25


def read_log(path):
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("name, spiking", [(BOOK, True), (TWIN, False)])
def test_shipped_model_is_the_book_preset_and_small_enough(name, spiking):
    path = shipped_path(name)
    model, tok, meta = load_book(name)
    assert model.cfg == Config.book(vocab_size=tok.vocab_size, spiking=spiking)
    assert (path / "weights.npz").stat().st_size < MAX_WEIGHTS_MB * 2**20
    assert not (path / "optimizer.npz").exists()  # the optimizer state is not shipped
    run = json.loads((path / "run.json").read_text())
    assert meta["step"] == run["options"]["steps"] == read_log(path)[-1]["step"]
    assert "python -m spike_lib train" in (path / "README.md").read_text()


@pytest.mark.parametrize("name", [BOOK, TWIN])
def test_shipped_weights_reproduce_the_logged_validation_bpc(name):
    # the run evaluated the NumPy copy of its model on the first val_tokens + 1 tokens of the
    # validation split; the shipped weights must give the same number again
    from spike_lib.data.batches import encode_documents
    from spike_lib.data.corpus import load_corpus
    from spike_lib.numpy_impl.train import evaluate

    path = shipped_path(name)
    model, tok, _ = load_book(name)
    opts = json.loads((path / "run.json").read_text())["options"]
    logged = [r for r in read_log(path) if "val_bpc" in r][-1]
    ids = encode_documents(load_corpus("val"), tok.encode)[0][: opts["val_tokens"] + 1]
    model.train(False)
    ev = evaluate(model, ids, n_chars=len(tok.decode(ids[1:].tolist())),
                  batch_size=opts["batch_size"])
    assert ev["bpc"] == pytest.approx(logged["val_bpc"], rel=1e-5)
    assert np.isfinite(ev["loss"]) and ev["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
