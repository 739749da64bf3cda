"""The shipped span model (data/checkpoints/book-qa) reproduces the scores its qa.json states."""

import json
import subprocess
import sys

import pytest

from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.train import span_qa
from spike_lib.train.bookmodel import shipped_path

BOOK_QA = shipped_path("book").parent / "book-qa"


@pytest.fixture(scope="module")
def shipped():
    return span_qa.load_qa_model(BOOK_QA, "mlx")


def test_folder_says_what_it_holds():
    info = span_qa.read_qa_config(BOOK_QA)
    assert info["head"] == "span" and info["strategy"] in ("full", "freeze", "lora")
    assert (BOOK_QA / "head.npz").is_file() and "python -m spike_lib" in (BOOK_QA / "README.md").read_text()
    assert set(info["scores"]["shipped"]) >= {"test (all 513)", "paraphrase val", "paraphrase test"}


def test_paraphrase_validation_scores_are_reproduced(shipped):
    model, tok, info = shipped
    model.train(False)
    recs = load_qa(QA_DIR / "paraphrase_val.jsonl")
    res = span_qa.evaluate_span(model, tok, recs)
    stored = info["scores"]["shipped"]["paraphrase val"]
    assert res["n"] == stored["n"] == 43
    assert res["exact_match"] == pytest.approx(stored["exact_match"], abs=1e-9)
    assert res["f1"] == pytest.approx(stored["f1"], abs=1e-6)


def test_qa_eval_needs_no_other_flag(tmp_path):
    recs = load_qa(QA_DIR / "test.jsonl")[:3]
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = subprocess.run([sys.executable, "-m", "spike_lib", "qa-eval", "--checkpoint", str(BOOK_QA),
                          "--qa-file", str(path), "--json"], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.splitlines()[-1])
    assert res["n"] == 3 and 0 <= res["exact_match"] <= 100 and res["f1"] >= res["exact_match"] - 1e-9


def test_fine_tuned_from_the_shipped_book_model():
    from spike_lib.numpy_impl.lora import fingerprint

    info = span_qa.read_qa_config(BOOK_QA)
    assert {k: info["base"][k] for k in ("config", "weights_sha256")} == fingerprint(shipped_path("book"))
