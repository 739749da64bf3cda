"""The run loop: pure batches, identical resume, and faults that keep the last good checkpoint."""

import json
import math
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from spike_lib.core import atomic, checkpoint_format
from spike_lib.data.corpus import load_corpus
from spike_lib.numpy_impl.optim import cosine_lr
from spike_lib.numpy_impl.train import TrainingDiverged
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train import checkpoint, runfolder, runs

KW = {"steps": 8, "eval_every": 4, "ckpt_every": 4, "batch_size": 4, "val_tokens": 128,
      "warmup": 2}


@pytest.fixture(scope="module")
def docs():
    val = load_corpus("val")
    return {"train_docs": val[:30], "val_docs": val[30:33]}


class Stop(Exception):
    pass


def stop_at(n):
    def callback(step, record):
        if step + 1 == n:
            raise Stop
    return callback


def losses(run):
    return [r["loss"] for r in runs.read_log(run)]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, docs):
    out = tmp_path_factory.mktemp("runs") / "straight"
    runs.train_run(out, **docs, **KW)
    return out


def test_batch_of_step_k_depends_only_on_seed_and_k(docs):
    tok = get_tokenizer("char")
    a = runs.Batches(docs["train_docs"], tok, 16, 4, seed=3)
    b = runs.Batches(docs["train_docs"], tok, 16, 4, seed=3)
    for k in (0, 1, 2):
        a(k)
    xa, ya = a(7)
    xb, _ = b(7)  # b never drew steps 0..2
    np.testing.assert_array_equal(xa, xb)
    from spike_lib.data.batches import encode_documents

    stream = encode_documents(docs["train_docs"], tok.encode)[0]
    offsets = np.random.default_rng([3, 7]).integers(0, len(stream) - 16, size=4)
    np.testing.assert_array_equal(xa, np.stack([stream[o:o + 16] for o in offsets]))
    np.testing.assert_array_equal(ya, np.stack([stream[o + 1:o + 17] for o in offsets]))
    assert not np.array_equal(a(8)[0], xa)


def test_log_records_hold_the_schedule_and_evaluations(straight, docs):
    recs = runs.read_log(straight)
    assert [r["step"] for r in recs] == list(range(1, 9))
    for r in recs:
        assert r["lr"] == pytest.approx(cosine_lr(r["step"] - 1, 3e-3, 2, 8, 3e-4))
        assert np.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["tokens_per_s"] > 0
    evals = [r for r in recs if "val_bpc" in r]
    assert [r["step"] for r in evals] == [4, 8]
    from spike_lib.data.batches import encode_documents

    tok = get_tokenizer("char")
    val_ids = encode_documents(docs["val_docs"], tok.encode)[0][:129]
    n_chars = len(tok.decode(val_ids[1:].tolist()))  # the characters of the 128 predicted tokens
    assert evals[-1]["val_bpc"] == pytest.approx(evals[-1]["val_loss"] * 128 / np.log(2)
                                                 / n_chars, rel=1e-12)
    rates = evals[-1]["firing_rates"]
    assert {"blocks.0.sn1", "blocks.0.sn2", "blocks.0.sn_hidden"} <= set(rates)
    assert all(0.0 <= v <= 1.0 for v in rates.values())
    saved = json.loads((straight / runs.RUN_CONFIG).read_text())
    assert saved["options"]["tokenizer"] == "char" and saved["model"]["vocab_size"] == 439
    assert checkpoint.load_meta(straight / runs.CKPT)["step"] == 8


def test_resume_repeats_the_uninterrupted_losses_exactly(tmp_path, docs, straight):
    out = tmp_path / "resumed"
    with pytest.raises(Stop):
        runs.train_run(out, callback=stop_at(6), **docs, **KW)  # killed after step 6
    assert checkpoint.load_meta(out / runs.CKPT)["step"] == 4
    summary = runs.train_run(out, resume=True, **docs)  # options come from run.json
    assert summary["start_step"] == 4
    assert losses(out) == losses(straight)  # steps 5, 6 were logged twice: truncated, redone
    a = checkpoint.load_weights(out / runs.CKPT)
    b = checkpoint.load_weights(straight / runs.CKPT)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_mlx_resume_repeats_the_uninterrupted_losses(tmp_path, docs):
    pytest.importorskip("mlx.core")
    runs.train_run(tmp_path / "a", backend="mlx", **docs, **KW)
    with pytest.raises(Stop):
        runs.train_run(tmp_path / "b", backend="mlx", callback=stop_at(5), **docs, **KW)
    runs.train_run(tmp_path / "b", resume=True, **docs)
    np.testing.assert_allclose(losses(tmp_path / "b"), losses(tmp_path / "a"), rtol=1e-6)


def test_resume_refuses_other_options_and_new_run_refuses_old_folder(straight, docs):
    with pytest.raises(ValueError, match=r"lr: saved 0.003, now 0.01"):
        runs.train_run(straight, resume=True, lr=0.01, **docs)
    with pytest.raises(ValueError, match="config: saved 'tiny', now 'small'"):
        runs.train_run(straight, resume=True, config="small", **docs)
    with pytest.raises(ValueError, match="already holds a run: pass --resume"):
        runs.train_run(straight, **docs, **KW)


def test_resume_of_a_folder_without_run_is_a_clear_error(tmp_path, docs):
    with pytest.raises(ValueError, match="holds no run"):
        runs.train_run(tmp_path / "nothing", resume=True, **docs)


def test_missing_tokenizer_file_is_a_clear_error_and_makes_no_folder(tmp_path, docs):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match=r"tokenizer file .*missing\.json does not exist"):
        runs.train_run(out, tokenizer=str(tmp_path / "missing.json"), **docs, **KW)
    with pytest.raises(ValueError, match="neither a tokenizer name"):
        runs.train_run(out, tokenizer="no_such_tokenizer", **docs, **KW)
    assert not out.exists()


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="steps=0 is invalid"):
        runs.run_options(steps=0)
    with pytest.raises(ValueError, match="backend='jax' is invalid"):
        runs.run_options(backend="jax")


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, docs, straight, monkeypatch):
    real = runs.NumpyBackend.step

    def poisoned(self, x, y, lr, step=0):
        if self.opt.t == 5:  # before the 6th update: a weight turns NaN, so does the loss
            next(iter(self.model.named_parameters()))[1][...] = np.nan
        return real(self, x, y, lr, step)

    monkeypatch.setattr(runs.NumpyBackend, "step", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"step 6: the loss is nan.*after step 4; resume"):
        runs.train_run(out, **docs, **KW)
    monkeypatch.setattr(runs.NumpyBackend, "step", real)
    assert checkpoint.load_meta(out / runs.CKPT)["step"] == 4
    runs.train_run(out, resume=True, **docs)
    assert losses(out) == losses(straight)


def test_disk_full_keeps_the_last_good_checkpoint(tmp_path, docs, straight, monkeypatch):
    real, calls = np.savez, []

    def savez(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # the first save (weights + optimizer) succeeds
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_format.np, "savez", savez)
    out = tmp_path / "full"
    with pytest.raises(runs.RunError, match=r"No space left.*keeps the last good state \(step 4\)"):
        runs.train_run(out, **docs, **KW)
    monkeypatch.setattr(checkpoint_format.np, "savez", real)
    assert not list(out.glob(".checkpoint.*"))  # the half-written folder was removed
    assert checkpoint.load_meta(out / runs.CKPT)["step"] == 4
    runs.train_run(out, resume=True, **docs)
    assert losses(out) == losses(straight)


def test_kill_between_the_renames_of_a_save_is_recovered(tmp_path, docs, straight, monkeypatch):
    real, calls = atomic.os.replace, []

    def replace(src, dst):
        if str(src).rsplit("/", 1)[-1].startswith(".checkpoint.tmp-"):
            calls.append(1)
            if len(calls) == 2:  # 2nd save: the old checkpoint stepped aside, the new not in
                raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    out = tmp_path / "kill"
    with pytest.raises(runs.RunError):
        runs.train_run(out, **docs, **KW)
    monkeypatch.setattr(atomic.os, "replace", real)
    old = list(out.glob(".checkpoint.old-*/checkpoint"))
    assert not (out / runs.CKPT).exists() and len(old) == 1
    before = sorted(p.name for p in out.iterdir())
    assert runs.last_good_checkpoint(out) == old[0]  # a reader reads the stepped-aside copy
    assert sorted(p.name for p in out.iterdir()) == before  # ... and moves nothing
    assert checkpoint.load_meta(old[0])["step"] == 4
    runs.train_run(out, resume=True, **docs)  # the writer puts it back, then goes on
    assert not list(out.glob(".checkpoint.*")) and losses(out) == losses(straight)


CHILD = """
import sys
import numpy as np
from spike_lib.train.checkpoint import save_checkpoint
from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
model = SpikeLLM(Config.tiny(n_embd=64, d_ff=256))
for i in range(1, 100000):
    save_checkpoint(sys.argv[1], model, meta={"step": i})
    if i == 1:
        print("saved", flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.13])
def test_kill_9_during_saves_leaves_a_loadable_checkpoint(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / runs.CKPT)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    time.sleep(delay)
    proc.kill()  # SIGKILL: wherever the save loop is
    proc.wait()
    before = sorted(p.name for p in tmp_path.iterdir())
    path = runs.last_good_checkpoint(tmp_path)  # the folder, or the copy a save stepped aside
    assert path == tmp_path / runs.CKPT or path.parent.name.startswith(".checkpoint.old-")
    model, _, meta = checkpoint.load_checkpoint(path)
    assert meta["step"] >= 1 and model.cfg.n_embd == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # reading wrote nothing
    runfolder.repair_folder(tmp_path / runs.CKPT)  # what the writer does on --resume
    assert checkpoint.load_checkpoint(tmp_path / runs.CKPT)[2]["step"] >= meta["step"]
    assert not list(tmp_path.glob(".checkpoint.*"))


def test_truncated_checkpoint_is_refused_with_a_clear_error(tmp_path, docs):
    out = tmp_path / "r"
    runs.train_run(out, **docs, **{**KW, "steps": 4})
    weights = out / runs.CKPT / checkpoint.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"weights\.npz is corrupt or truncated"):
        runs.train_run(out, resume=True, **docs)


def test_checkpoint_of_another_config_is_refused(tmp_path, docs):
    out = tmp_path / "r"
    runs.train_run(out, **docs, **{**KW, "steps": 4})
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM

    checkpoint.save_checkpoint(out / runs.CKPT, SpikeLLM(Config.tiny(vocab_size=439, n_embd=16)),
                               meta={"step": 4})
    with pytest.raises(ValueError, match="another config"):
        runs.train_run(out, resume=True, **docs)


def test_mlx_backend_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "spike_lib.mlx_impl.train", None)  # import fails
    from spike_lib.core.config import Config

    with pytest.raises(ValueError, match="--backend mlx is not available"):
        runs.MLXBackend(Config.tiny(), runs.run_options(backend="mlx"))


def test_metadata_conditioning_prefixes_chunks_and_skips_their_targets(tmp_path, docs):
    tok = get_tokenizer("char")
    b = runs.Batches(docs["train_docs"], tok, 32, 8, seed=0, metadata=True)
    x, y = b(0)
    prefix = tok.encode(f"<cat:{docs['train_docs'][0]['category']}> ")[:1]  # "<"
    assert (x[:, 0] == prefix[0]).all() and (y == -1).any()
    with pytest.raises(ValueError, match=r"metadata prefixes take up to 1\d tokens of the char"):
        runs.train_run(tmp_path / "char", metadata=True, **docs, **KW)
    assert not (tmp_path / "char").exists()
    out = runs.train_run(tmp_path / "meta", metadata=True, tokenizer="bpe", **docs,
                         **{**KW, "steps": 2})
    assert np.isfinite(out["loss"]) and np.isfinite(out["val_bpc"])


TRAIN_CHILD = """
import sys, time
from spike_lib.data.corpus import load_corpus
from spike_lib.train.runs import train_run
val = load_corpus("val")
train_run(sys.argv[1], callback=lambda step, rec: time.sleep(0.1), train_docs=val[:30],
          val_docs=val[30:33], steps=8, eval_every=4, ckpt_every=4, batch_size=4,
          val_tokens=128, warmup=2)
"""


def test_kill_9_of_a_training_process_then_resume_repeats_the_losses(tmp_path, docs, straight):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_CHILD, str(out)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / runs.LOG).is_file() and len(runs.read_log(out)) >= 5:
            break
        time.sleep(0.01)
    proc.kill()  # SIGKILL after step 5 or 6, with the checkpoint of step 4 on disk
    proc.wait()
    done = len(runs.read_log(out))
    assert done >= 5  # (8 only if this machine stalled the test for 3 steps)
    assert checkpoint.load_meta(runs.last_good_checkpoint(out))["step"] == (4 if done < 8 else 8)
    runs.train_run(out, resume=True, **docs)
    assert losses(out) == losses(straight)


# -- --set KEY=VALUE overrides and --time-budget -----------------------------------------------
@pytest.mark.parametrize("text, key, value", [
    ("n_layer=6", "n_layer", 6), (" n_embd = 192 ", "n_embd", 192), ("beta=0.25", "beta", 0.25),
    ("num_steps=2", "num_steps", 2), ("reset=zero", "reset", "zero"),
    ("tie_weights=true", "tie_weights", True), ("tie_weights=0", "tie_weights", False),
    ("mem_clamp=none", "mem_clamp", None), ("mem_clamp=3", "mem_clamp", 3.0)])
def test_override_is_parsed_to_the_config_fields_type(text, key, value):
    k, v = runs.parse_override(text)
    assert (k, v) == (key, value) and type(v) is type(value)


@pytest.mark.parametrize("texts, fragment", [
    (["n_layer"], "write KEY=VALUE"), (["n_layer=2.5"], "n_layer takes a int, not '2.5'"),
    (["tie_weights=maybe"], "tie_weights takes a bool"), (["n_layr=2"], "no field 'n_layr'"),
    (["vocab_size=10"], "vocab_size is set by --tokenizer"),
    (["seed=1"], "seed is set by --seed"), (["n_layer=2", "n_layer=3"], "given twice")])
def test_bad_override_names_the_problem(texts, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        runs.parse_overrides(texts)


def test_override_reaches_the_model_and_run_json_and_resume_checks_it(tmp_path, docs):
    out = tmp_path / "set"
    kw = {**KW, "steps": 4, "set": {"n_layer": 2, "n_embd": 48, "num_steps": 2}}
    runs.train_run(out, **docs, **kw)
    saved = json.loads((out / runs.RUN_CONFIG).read_text())
    assert saved["options"]["set"] == {"n_layer": 2, "n_embd": 48, "num_steps": 2}
    cfg = checkpoint.load_config(out / runs.CKPT)
    assert (cfg.n_layer, cfg.n_embd, cfg.num_steps, cfg.d_ff) == (2, 48, 2, 64)
    assert runs.train_run(out, resume=True, **docs)["start_step"] == 4  # saved overrides kept
    assert runs.train_run(out, resume=True, set={"n_layer": 2, "n_embd": 48, "num_steps": 2},
                          **docs)["start_step"] == 4
    with pytest.raises(ValueError, match=r"set: saved \{.*'n_layer': 2.*\}, now \{'n_layer': 3\}"):
        runs.train_run(out, resume=True, set={"n_layer": 3}, **docs)


def test_override_is_validated_by_config_before_any_folder_is_made(tmp_path, docs):
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="n_embd=33 is invalid: it must be divisible by n_head=2"):
        runs.train_run(out, set={"n_embd": 33}, **docs, **KW)
    with pytest.raises(ValueError, match="vocab_size is set by --tokenizer"):
        runs.train_run(out, set={"vocab_size": 9}, **docs, **KW)
    assert not out.exists()


def test_run_json_without_overrides_resumes(straight, docs):
    saved = json.loads((straight / runs.RUN_CONFIG).read_text())
    old = {**saved, "options": {k: v for k, v in saved["options"].items()
                                if k not in ("set", "time_budget")}}  # a run.json from before
    runs.write_json_atomic(straight / runs.RUN_CONFIG, old)
    try:
        assert runs.train_run(straight, resume=True, **docs)["start_step"] == 8
    finally:
        runs.write_json_atomic(straight / runs.RUN_CONFIG, saved)


def test_budget_plan_fits_the_steps_into_the_time_left(monkeypatch):
    opts = {"time_budget": 100.0, "eval_every": 10, "ckpt_every": 10}
    clock = runs.Budget(opts, None)
    for dt in [9.0] + [1.0] * 11:  # the first step compiles: left out of the median
        clock.step_done(dt)
    assert clock.planning(total=10**7) and not clock.planning(total=5)
    monkeypatch.setattr(clock, "spent", lambda: 20.0)
    # t_save ~ t_eval = 2, final = 4, per step 1 + 2/10 + 2/10 = 1.4, left 100 - 20 - 2 - 4 = 74
    assert clock.plan(12, 10**7, 2.0, opts) == 12 + math.floor(0.95 * 74 / 1.4) == 62
    assert clock.fixed["steps"] == 62 and clock.fixed["final_seconds"] == 4.0
    assert clock.plan(12, 40, 2.0, opts) == 40  # --steps caps the plan
    monkeypatch.setattr(clock, "spent", lambda: 94.5)
    assert not clock.out_of_time(50, 62)  # 94.5 + 1 + 4 = 99.5 fits in 100
    monkeypatch.setattr(clock, "spent", lambda: 95.5)
    assert clock.out_of_time(50, 62) and not clock.out_of_time(62, 62)


def test_time_budget_plans_the_cosine_over_the_steps_that_fit(tmp_path, docs):
    out = tmp_path / "budget"
    kw = {**KW, "warmup": 14, "steps": 16, "time_budget": 1e6}  # the cap binds, not the clock
    summary = runs.train_run(out, **docs, **kw)
    assert summary["steps"] == 16 and summary["stopped_by"] == "steps"
    plan = json.loads((out / runs.RUN_CONFIG).read_text())["plan"]
    assert plan["steps"] == 16 and plan["at_step"] == 12 and plan["step_seconds"] > 0
    recs = runs.read_log(out)
    assert [r["lr"] for r in recs] == pytest.approx([cosine_lr(k, 3e-3, 14, 16, 3e-4)
                                                      for k in range(16)])
    assert [r["step"] for r in recs if "val_bpc" in r] == [4, 8, 12, 16]  # 12: the planning eval
    assert checkpoint.load_meta(out / runs.CKPT)["train_seconds"] > 0


def test_time_budget_stops_with_a_checkpoint_and_resume_keeps_the_seconds(tmp_path, docs):
    out = tmp_path / "late"
    summary = runs.train_run(out, **docs, **{**KW, "steps": 30, "time_budget": 1e-3})
    assert summary["stopped_by"] == "time_budget" and summary["steps"] == 30
    recs = runs.read_log(out)
    assert len(recs) == 1 and recs[0]["stopped"] == "time_budget" and "val_bpc" in recs[0]
    meta = checkpoint.load_meta(out / runs.CKPT)
    assert meta["step"] == 1 and meta["train_seconds"] > 1e-3
    again = runs.train_run(out, resume=True, **docs)  # the budget is still used up
    assert again["start_step"] == 1
    assert checkpoint.load_meta(out / runs.CKPT)["train_seconds"] > meta["train_seconds"]
    assert again["stopped_by"] == "time_budget" and len(runs.read_log(out)) == 2
