"""The train, eval, generate and plot commands, run in-process through spike_lib.cli.main."""

import json
import math

import numpy as np
import pytest

from spike_lib.train import checkpoint, runs
from spike_lib.cli import main
from spike_lib.data.corpus import load_corpus, write_jsonl_gz

TRAIN = ["--steps", "6", "--eval-every", "3", "--batch-size", "4", "--val-tokens", "128",
         "--warmup", "2", "--no-progress"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    val = load_corpus("val")
    for split, docs in (("train", val[:30]), ("val", val[30:33]), ("test", val[33:36])):
        write_jsonl_gz(root / "corpus" / f"{split}.jsonl.gz", docs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPIKE_DATA_DIR", str(root))
        yield root


def cli_json(capsys, argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--out", str(out), *TRAIN]) == 0
    return out


def test_train_writes_log_config_and_checkpoint(run):
    recs = runs.read_log(run)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in recs if "val_bpc" in r] == [3, 6]
    assert json.loads((run / "run.json").read_text())["options"]["steps"] == 6
    assert checkpoint.load_meta(run / "checkpoint")["step"] == 6


def test_train_json_summary_and_resume_of_a_finished_run(capsys, run, data_dir):
    out = cli_json(capsys, ["train", "--out", str(run), "--resume"])
    assert out["start_step"] == 6 and out["steps"] == 6 and out["loss"] is None  # nothing to do
    assert len(runs.read_log(run)) == 6


def test_train_bad_input_exits_2_with_a_clear_message(capsys, run, tmp_path, data_dir):
    assert main(["train", "--out", str(run), "--resume", "--config", "small"]) == 2
    assert "config: saved 'tiny', now 'small'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--tokenizer",
                 str(tmp_path / "gone.json"), *TRAIN]) == 2
    assert "gone.json does not exist" in capsys.readouterr().err


def test_train_nan_exits_1_and_keeps_the_checkpoint(capsys, tmp_path, data_dir, monkeypatch):
    real = runs.NumpyBackend.step

    def poisoned(self, x, y, lr, step=0):
        if self.opt.t == 4:
            next(iter(self.model.named_parameters()))[1][...] = np.inf
        return real(self, x, y, lr, step)

    monkeypatch.setattr(runs.NumpyBackend, "step", poisoned)
    out = tmp_path / "nan"
    assert main(["train", "--out", str(out), *TRAIN]) == 1
    err = capsys.readouterr().err
    assert "error: training stopped at step 5" in err and "after step 3" in err
    assert checkpoint.load_meta(out / "checkpoint")["step"] == 3


def test_twin_and_softmax_options_reach_the_config(tmp_path, data_dir):
    out = tmp_path / "twin"
    assert main(["train", "--out", str(out), "--no-spiking", "--attention", "softmax",
                 *TRAIN[:2], "--batch-size", "2", "--no-progress"]) == 0
    cfg = checkpoint.load_config(out / "checkpoint")
    assert cfg.spiking is False and cfg.attention == "softmax" and cfg.vocab_size == 439


def test_spike_levels_option_reaches_the_checkpoint_eval_and_generate(capsys, tmp_path,
                                                                      data_dir):
    out = tmp_path / "levels"
    assert main(["train", "--out", str(out), "--spike-levels", "3", *TRAIN[:2],
                 "--batch-size", "2", "--no-progress"]) == 0
    assert checkpoint.load_config(out / "checkpoint").spike_levels == 3
    saved = json.loads((out / "run.json").read_text())
    assert saved["options"]["set"] == {"spike_levels": 3} and saved["model"]["spike_levels"] == 3
    res = cli_json(capsys, ["eval", "--checkpoint", str(out / "checkpoint"), "--split", "test",
                            "--max-tokens", "100"])
    assert res["tokens"] == 100 and res["firing_rate"] > 0
    res = cli_json(capsys, ["generate", "--checkpoint", str(out / "checkpoint"), "--prompt",
                            "The ", "--max-new-tokens", "5", "--temperature", "0"])
    model, tok, _ = checkpoint.load_checkpoint(out / "checkpoint")  # the windowed argmax chain
    ids = tok.encode("The ")
    for _ in range(5):
        ids.append(int(np.argmax(model(np.array(ids)[None])[0, -1])))
    assert res["text"] == tok.decode(ids[4:])
    assert main(["train", "--out", str(tmp_path / "twice"), "--spike-levels", "2", "--set",
                 "spike_levels=2", *TRAIN]) == 2  # one value, one way to give it
    assert "--set spike_levels is given twice" in capsys.readouterr().err


def test_eval_numbers_agree_with_their_definitions(capsys, run, data_dir):
    res = cli_json(capsys, ["eval", "--checkpoint", str(run), "--split", "test",
                            "--max-tokens", "300"])
    assert set(res) == {"loss", "perplexity", "bpc", "tokens", "firing_rate", "energy_ratio"}
    assert res["tokens"] == 300
    assert res["perplexity"] == pytest.approx(math.exp(res["loss"]))
    _, tok, _ = checkpoint.load_checkpoint(run / "checkpoint")
    from spike_lib.data.corpus import corpus_text

    ids = tok.encode(corpus_text("test"))[:301]
    n_chars = len(tok.decode(ids[1:]))
    assert res["bpc"] == pytest.approx(res["loss"] * 300 / (math.log(2) * n_chars))
    assert 0 < res["firing_rate"] < 1 and 0 < res["energy_ratio"] < 1


def test_eval_of_the_twin_costs_what_an_ann_costs(capsys, tmp_path, data_dir):
    out = tmp_path / "twin"
    assert main(["train", "--out", str(out), "--no-spiking", *TRAIN]) == 0
    text = tmp_path / "t.txt"
    text.write_text("The capital of France is Paris. " * 20, encoding="utf-8")
    res = cli_json(capsys, ["eval", "--checkpoint", str(out / "checkpoint"),
                            "--text-file", str(text)])
    assert res["energy_ratio"] == 1.0 and res["firing_rate"] is None  # T = 1, no spikes
    assert res["tokens"] == len(text.read_text()) - 1  # char tokenizer: one token per char


def test_eval_refuses_a_truncated_checkpoint(capsys, run, tmp_path, data_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run / "checkpoint", bad)
    (bad / "weights.npz").write_bytes((bad / "weights.npz").read_bytes()[:500])
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    assert "weights.npz is corrupt or truncated" in capsys.readouterr().err
    (bad / "weights.npz").unlink()
    shutil.copy(run / "checkpoint" / "weights.npz", bad)
    (bad / "tokenizer.json").unlink()
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    assert "holds no tokenizer.json" in capsys.readouterr().err


def test_generate_greedy_is_the_argmax_chain_and_stream_matches(capsys, run):
    res = cli_json(capsys, ["generate", "--checkpoint", str(run), "--prompt", "The ",
                            "--max-new-tokens", "5", "--temperature", "0"])
    model, tok, _ = checkpoint.load_checkpoint(run / "checkpoint")
    ids = tok.encode("The ")
    for _ in range(5):
        ids.append(int(np.argmax(model(np.array(ids)[None])[0, -1])))
    assert res["text"] == tok.decode(ids[4:]) and res["prompt"] == "The "
    assert main(["generate", "--checkpoint", str(run), "--prompt", "The ",
                 "--max-new-tokens", "5", "--temperature", "0", "--stream"]) == 0
    assert capsys.readouterr().out == "The " + res["text"] + "\n"


def test_generate_same_seed_same_text(capsys, run):
    argv = ["generate", "--checkpoint", str(run), "--max-new-tokens", "12", "--seed", "4",
            "--top-k", "5", "--top-p", "0.9"]
    assert cli_json(capsys, argv)["text"] == cli_json(capsys, argv)["text"]


def test_plot_writes_a_png_and_refuses_a_folder_without_log(capsys, run, tmp_path):
    res = cli_json(capsys, ["plot", str(run), str(run), "--out", str(tmp_path / "c.png")])
    assert res["runs"] == 2 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(tmp_path)]) == 2
    assert "no training log" in capsys.readouterr().err


def test_train_set_overrides_the_preset_and_bad_set_exits_2(capsys, tmp_path, data_dir):
    out = tmp_path / "set"
    assert main(["train", "--out", str(out), *TRAIN, "--set", "n_layer=2",
                 "--set", "num_steps=2", "--time-budget", "1e6"]) == 0
    saved = json.loads((out / "run.json").read_text())
    assert saved["options"]["set"] == {"n_layer": 2, "num_steps": 2}
    assert saved["options"]["time_budget"] == 1e6 and saved["options"]["steps"] == 6
    assert (saved["model"]["n_layer"], saved["model"]["num_steps"]) == (2, 2)
    assert main(["train", "--out", str(out), "--resume", "--set", "n_layer=3"]) == 2
    assert "set: saved {'n_layer': 2, 'num_steps': 2}, now {'n_layer': 3}" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "b"), *TRAIN, "--set", "n_layr=2"]) == 2
    assert "Config has no field 'n_layr'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
