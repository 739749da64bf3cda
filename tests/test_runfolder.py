"""Run folders that never lose a user's work (issue 11): what --out may replace, readers that
never write, one writer at a time, log and checkpoint after a kill -9, repair, divergence,
exact resume with dropout, corrupt logs, unwritable outputs, malformed JSON, bad numbers."""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from spike_lib.cli import emit, main
from spike_lib.core import atomic
from spike_lib.core.training import LossWatch, TrainingDiverged
from spike_lib.data.corpus import load_corpus, write_jsonl_gz
from spike_lib.train import checkpoint, runfolder, runs

KW = {"steps": 8, "eval_every": 4, "ckpt_every": 4, "batch_size": 4, "val_tokens": 128,
      "warmup": 2}
TRAIN = ["--steps", "8", "--eval-every", "4", "--batch-size", "4", "--val-tokens", "128",
         "--warmup", "2", "--no-progress"]


REPO_DATA = Path(__file__).resolve().parents[1] / "data"  # whatever SPIKE_DATA_DIR says


@pytest.fixture(scope="module")
def docs():
    val = load_corpus("val", root=REPO_DATA)
    return {"train_docs": val[:30], "val_docs": val[30:33]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A small corpus for the command line and its subprocesses (SPIKE_DATA_DIR)."""
    root = tmp_path_factory.mktemp("data")
    val = load_corpus("val", root=REPO_DATA)
    for split, d in (("train", val[:30]), ("val", val[30:33]), ("test", val[33:36])):
        write_jsonl_gz(root / "corpus" / f"{split}.jsonl.gz", d)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPIKE_DATA_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def straight(tmp_path_factory, docs):
    out = tmp_path_factory.mktemp("runs") / "straight"
    runs.train_run(out, **docs, **KW)
    return out


def losses(run):
    return [r["loss"] for r in runfolder.read_log(run)]


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def readonly_place(tmp_path) -> str:
    """A path inside a folder this process cannot write: a 0555 folder, or /sys for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    for place in (folder, "/sys"):
        try:
            fd, probe = tempfile.mkstemp(dir=place)
        except OSError:
            return f"{place}/spike-out"
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no read-only folder here (root without a read-only /sys)")


def cli(*argv, env=None, **kw):
    """python -m spike_lib ARGV in a subprocess (returns the CompletedProcess)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "SPIKE_NO_PRELOAD": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "spike_lib", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=600, **kw)


# -- 1. --out replaces only the same kind of artefact ---------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory, docs):
    out = tmp_path_factory.mktemp("base") / "run"
    runs.train_run(out, **docs, **{**KW, "steps": 4, "set": {"block_size": 96}})
    qa = out.parent / "qa.jsonl"
    rec = {"context": "Algiers is the capital.", "question": "Capital?",
           "answers": [{"text": "Algiers", "answer_start": 0}]}
    qa.write_text("\n".join(json.dumps(rec) for _ in range(4)) + "\n", encoding="utf-8")
    return out, qa


def finetune(base, qa, out, method="lora"):
    return main(["finetune", "--checkpoint", str(base), "--method", method, "--out", str(out),
                 "--steps", "1", "--batch-size", "2", "--backend", "numpy",
                 "--train-file", str(qa)])


def test_finetune_out_never_replaces_a_users_folder(tmp_path, base_run, capsys):
    base, qa = base_run
    user = tmp_path / "thesis"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.txt").write_text("two years of work")
    (user / "sub" / "results.csv").write_text("1,2,3")
    before = listing(user)
    assert finetune(base, qa, user) == 2
    err = capsys.readouterr().err
    assert f"{user} already holds other files (2 entries: sub/, thesis.txt)" in err
    assert listing(user) == before and (user / "thesis.txt").read_text() == "two years of work"
    run_files = listing(base)  # full fine-tuning onto its own base run: refused, run intact
    assert finetune(base, qa, base, "full") == 2
    assert "already holds a run folder" in capsys.readouterr().err and listing(base) == run_files
    assert finetune(base, qa, tmp_path / "ad") == 0  # a new folder: written
    assert finetune(base, qa, tmp_path / "ad") == 0  # an adapter over an adapter: replaced
    assert listing(tmp_path / "ad") == ["adapter.json", "adapter.npz"]
    assert finetune(base, qa, tmp_path / "ad", "full") == 2  # a checkpoint over an adapter: no
    assert "already holds an adapter folder" in capsys.readouterr().err


def test_the_writers_themselves_refuse_a_foreign_folder(tmp_path, base_run):
    model, tok, _ = checkpoint.load_checkpoint(base_run[0] / runs.CKPT)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep")
    with pytest.raises(ValueError, match="is not a checkpoint folder .*a.txt"):
        checkpoint.save_checkpoint(tmp_path / "notes", model, tok)
    assert listing(tmp_path / "notes") == ["a.txt"]


# -- 2. readers never write ------------------------------------------------------------------------
def test_readers_write_nothing_even_with_a_save_half_done(tmp_path, base_run, monkeypatch):
    run = tmp_path / "run"
    os.system(f"cp -r {base_run[0]} {run}")
    (run / ".checkpoint.tmp-writing").mkdir()  # a writer's save in progress
    (run / ".checkpoint.tmp-writing" / "weights.npz").write_bytes(b"partial")
    before = listing(run)

    def refuse(*args, **kwargs):  # read-only media: any write fails
        raise PermissionError(30, "Read-only file system")

    for mod, name in ((os, "replace"), (os, "rename"), (os, "unlink"), (os, "mkdir"),
                      (atomic.shutil, "rmtree")):
        monkeypatch.setattr(mod, name, refuse)
    from spike_lib.train.evaluation import load_for_use

    model, tok, meta = load_for_use(run)
    assert meta["step"] == 4 and runs.last_good_checkpoint(run) == run / runs.CKPT
    monkeypatch.undo()
    assert listing(run) == before


def test_a_reader_looping_against_a_live_writer_never_breaks_it(tmp_path, data_dir):
    run = tmp_path / "live"
    writer = subprocess.Popen(
        [sys.executable, "-m", "spike_lib", "train", "--out", str(run), "--steps", "40",
         "--ckpt-every", "1", "--eval-every", "20", "--batch-size", "2", "--val-tokens", "64",
         "--no-progress"],
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "SPIKE_NO_PRELOAD": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from spike_lib.train.evaluation import load_for_use

    reads, steps = 0, set()
    while writer.poll() is None:
        try:
            steps.add(load_for_use(run)[2]["step"])
            reads += 1
        except ValueError as err:  # before the first save (or before run.json exists)
            assert "no checkpoint" in str(err) or "is missing" in str(err), err
            assert not steps, f"a reader failed after a checkpoint existed: {err}"
    out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert reads >= 5 and len(steps) >= 3, (reads, steps)
    assert [r["step"] for r in runfolder.read_log(run)] == list(range(1, 41))


# -- 3. one writer at a time -----------------------------------------------------------------------
def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path, docs):
    run = tmp_path / "r"
    runs.train_run(run, **docs, **{**KW, "steps": 4})
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom spike_lib.train.runfolder import locked\n"
         f"with locked({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        log = (run / runs.LOG).read_text()
        with pytest.raises(runfolder.RunLocked, match=f"written by process {holder.pid}"):
            runs.train_run(run, resume=True, allow_changed=("steps",), **docs, steps=8)
        assert (run / runs.LOG).read_text() == log  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert runfolder.lock_owner(run)["pid"] == holder.pid  # its lock file stays: stale now
    runs.train_run(run, resume=True, allow_changed=("steps",), **docs, steps=8)  # taken over
    assert [r["step"] for r in runfolder.read_log(run)] == list(range(1, 9))


# -- 4. log and checkpoint agree after a kill -9 ---------------------------------------------------
@pytest.mark.parametrize("fault", [
    "checkpoint-saved:2", "log-appended:5", "folder-stepped-aside:2"])
def test_kill_9_at_a_chosen_moment_keeps_log_and_checkpoint_in_step(tmp_path, data_dir, fault):
    run = tmp_path / "k"
    res = cli("train", "--out", run, *TRAIN, "--ckpt-every", "2", env={"SPIKE_FAULT": fault})
    assert res.returncode == -signal.SIGKILL, res.stderr
    ckpt = runfolder.find_checkpoint(run)
    saved = checkpoint.load_meta(ckpt)["step"]
    logged = [r["step"] for r in runfolder.read_log(run)]
    assert logged[:saved] == list(range(1, saved + 1))  # every step the checkpoint has seen
    assert cli("train", "--out", run, "--resume", "--no-progress").returncode == 0
    ref = tmp_path / "ref"
    assert cli("train", "--out", ref, *TRAIN, "--ckpt-every", "2").returncode == 0
    assert losses(run) == losses(ref) and not list(run.glob(".checkpoint.*"))


# -- 5. killed while overwriting an adapter --------------------------------------------------------
def test_a_killed_adapter_overwrite_is_repaired_with_the_command_the_error_names(
        tmp_path, base_run, capsys):
    base, qa = base_run
    ad = tmp_path / "ad"
    assert finetune(base, qa, ad) == 0
    first = (ad / "adapter.npz").read_bytes()
    env = {"SPIKE_FAULT": "folder-stepped-aside:1", "SPIKE_DATA_DIR": os.environ.get(
        "SPIKE_DATA_DIR", "")}
    res = cli("finetune", "--checkpoint", base, "--method", "lora", "--out", ad, "--steps", "1",
              "--batch-size", "2", "--backend", "numpy", "--train-file", qa, env=env)
    assert res.returncode == -signal.SIGKILL and not ad.exists()
    assert main(["qa-eval", "--checkpoint", str(base), "--adapter", str(ad), "--qa-file",
                 str(qa), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert f"no adapter folder at {ad}; an interrupted save left the previous copy" in err
    assert f"python -m spike_lib repair {ad}" in err
    assert main(["repair", str(ad)]) == 0
    assert (ad / "adapter.npz").read_bytes() == first and not list(tmp_path.glob(".ad.*"))


# -- 13. divergence --------------------------------------------------------------------------------
def test_loss_watch_hand_values():
    watch = LossWatch()
    for _ in range(10):
        watch.check(5.0)
    watch.check(9.9)  # median 5: the bound is 5 + max(3, 5) = 10
    with pytest.raises(TrainingDiverged, match="blew up: it is far above its running median 5"):
        watch.check(10.5)
    with pytest.raises(TrainingDiverged, match="the loss is inf"):
        watch.check(math.inf)
    early = LossWatch()
    early.check(50.0)  # fewer than MIN_SEEN losses: only NaN and inf are caught


def test_a_blow_up_keeps_the_checkpoint_before_it_and_resume_may_lower_lr(tmp_path, docs,
                                                                        monkeypatch):
    real = runs.NumpyBackend.step

    def exploding(self, x, y, lr, step=0):
        res = real(self, x, y, lr, step)
        return {**res, "loss": 8e32} if step == 12 else res  # finite, but a blow-up

    monkeypatch.setattr(runs.NumpyBackend, "step", exploding)
    run = tmp_path / "blow"
    with pytest.raises(TrainingDiverged) as info:
        runs.train_run(run, **docs, **{**KW, "steps": 16})
    msg = str(info.value)
    assert "step 13: the loss 8e+32 blew up" in msg and "state after step 12" in msg
    assert f"--out {run} --resume --lr 0.0003 --allow-changed lr" in msg
    monkeypatch.setattr(runs.NumpyBackend, "step", real)
    assert checkpoint.load_meta(run / runs.CKPT)["loss"] < 10
    with pytest.raises(ValueError, match="lr: saved 0.003, now 0.0003.*--allow-changed lr"):
        runs.train_run(run, resume=True, lr=3e-4, **docs)
    runs.train_run(run, resume=True, lr=3e-4, allow_changed=("lr",), **docs)
    saved = runfolder.read_run_config(run)
    assert saved["changes"] == [{"at_step": 12, "option": "lr", "from": 0.003, "to": 0.0003}]
    assert saved["options"]["lr"] == 3e-4 and runfolder.read_log(run)[-1]["step"] == 16


def test_infinite_lr_is_refused_and_no_step_0_is_promised(tmp_path, docs, monkeypatch):
    with pytest.raises(ValueError, match="lr=inf is invalid"):
        runs.train_run(tmp_path / "inf", lr=math.inf, **docs, **KW)
    assert main(["train", "--out", str(tmp_path / "inf"), "--lr", "inf"]) == 2
    assert not (tmp_path / "inf").exists()
    real = runs.NumpyBackend.step

    def nan_at_2(self, x, y, lr, step=0):
        res = real(self, x, y, lr, step)
        return {**res, "loss": math.nan} if step == 1 else res

    monkeypatch.setattr(runs.NumpyBackend, "step", nan_at_2)
    with pytest.raises(TrainingDiverged) as info:
        runs.train_run(tmp_path / "early", **docs, **KW)
    assert "no checkpoint was saved yet" in str(info.value) and "step 0" not in str(info.value)


# -- 14. exact resume with dropout -----------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "mlx"])
def test_resume_is_exact_with_dropout(tmp_path, docs, backend):
    kw = {**KW, "backend": backend, "set": {"dropout": 0.2}}
    runs.train_run(tmp_path / "a", **docs, **kw)
    runs.train_run(tmp_path / "b", **docs, **kw)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # two fresh runs, one seed

    def stop(step, rec):
        if step + 1 == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train_run(tmp_path / "c", callback=stop, **docs, **kw)
    runs.train_run(tmp_path / "c", resume=True, **docs)
    assert losses(tmp_path / "c") == losses(tmp_path / "a")
    other = runs.train_run(tmp_path / "d", **docs, **{**kw, "set": {"dropout": 0.0}})
    assert other["loss"] != losses(tmp_path / "a")[-1]  # dropout is really on


# -- 15. a corrupt log line ------------------------------------------------------------------------
def test_a_corrupt_log_line_is_set_aside_and_the_run_resumes(tmp_path, docs, straight):
    run = tmp_path / "r"

    def stop(step, rec):
        if step + 1 == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train_run(run, callback=stop, **docs, **KW)
    lines = (run / runs.LOG).read_bytes().split(b"\n")
    lines[1] = b"{not json"
    lines[2] = b'{"step": 3, "loss": "\xff\xfe"}'  # invalid UTF-8
    (run / runs.LOG).write_bytes(b"\n".join(lines))
    with pytest.warns(RuntimeWarning, match=r"log.jsonl: lines \[2, 3\] are not JSON"):
        assert [r["step"] for r in runfolder.read_log(run)] == [1, 4, 5, 6]
    with pytest.warns(RuntimeWarning, match=f"set aside log lines \\[2, 3\\] in {run}"):
        runs.train_run(run, resume=True, **docs)
    bad = (run / runfolder.BAD_LOG).read_bytes()
    assert bad == b'{not json\n{"step": 3, "loss": "\xff\xfe"}\n'
    assert [r["step"] for r in runfolder.read_log(run)] == [1] + list(range(4, 9))
    assert losses(run)[-4:] == losses(straight)[-4:]


def test_a_text_file_that_is_not_utf8_is_named(tmp_path, base_run, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café au lait".encode("latin-1"))
    assert main(["eval", "--checkpoint", str(base_run[0]), "--text-file", str(bad)]) == 2
    assert f"--text-file {bad} is not UTF-8 (byte 3" in capsys.readouterr().err


# -- 16. outputs that cannot be written -----------------------------------------------------------
def test_unwritable_outputs_are_one_clear_message_before_any_work(tmp_path, base_run, capsys,
                                                                 monkeypatch, data_dir):
    base, qa = base_run
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    readonly = readonly_place(tmp_path)
    for argv in (["train", "--out", str(a_file)], ["train", "--out", readonly]):
        assert main([*argv, *TRAIN]) == 2
        assert "(nothing was written)" in capsys.readouterr().err
    assert finetune(base, qa, readonly) == 2  # before the fine-tuning, not after it
    assert f"--out {readonly} cannot be written" in capsys.readouterr().err
    (tmp_path / "x.png").mkdir()
    assert main(["plot", str(base), "--out", str(tmp_path / "x.png")]) == 2
    assert "is a folder: give a file name" in capsys.readouterr().err
    assert main(["graph", "--out", readonly + ".png"]) == 2
    assert "cannot be written" in capsys.readouterr().err
    monkeypatch.setattr(runfolder.shutil, "disk_usage", lambda p: type("U", (), {"free": 0}))
    assert main(["train", "--out", str(tmp_path / "full"), *TRAIN]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "full").exists()


def test_a_full_disk_at_run_json_is_a_run_error(tmp_path, docs, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs, "write_run_config", full)
    with pytest.raises(runs.RunError, match="No space left on device.*nothing was trained"):
        runs.train_run(tmp_path / "r", **docs, **KW)


# -- 9. JSON of the wrong shape --------------------------------------------------------------------
def test_run_checkpoint_and_adapter_json_of_the_wrong_shape_name_file_and_key(
        tmp_path, base_run, docs):
    run = tmp_path / "r"
    os.system(f"cp -r {base_run[0]} {run}")
    (run / runs.RUN_CONFIG).write_text("[]")
    with pytest.raises(ValueError, match=r"run.json holds a JSON list, expected a JSON object"):
        runs.train_run(run, resume=True, **docs)
    (run / runs.RUN_CONFIG).write_text('{"model": {}}')
    with pytest.raises(ValueError, match=r"run.json has no key 'options'"):
        runs.train_run(run, resume=True, **docs)
    os.system(f"cp {base_run[0] / runs.RUN_CONFIG} {run / runs.RUN_CONFIG}")
    meta = run / runs.CKPT / "meta.json"
    data = json.loads(meta.read_text())
    del data["step"]
    meta.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"meta.json has no key 'step'"):
        runs.train_run(run, resume=True, **docs)
    data["step"] = "four"
    meta.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"meta.json: key 'step' is 'four', expected int"):
        checkpoint.load_meta(run / runs.CKPT)
    (run / runs.CKPT / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"config.json holds a JSON list"):
        checkpoint.load_config(run / runs.CKPT)
    from spike_lib.core.lora import read_adapter

    ad = tmp_path / "ad"
    ad.mkdir()
    (ad / "adapter.json").write_text('{"format_version": 1, "alpha": 16.0}')
    with pytest.raises(ValueError, match=r"adapter.json has no key 'rank'"):
        read_adapter(ad)


# -- 11. bad numbers on the command line ----------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["eval", "--batch-size", "-1"], "--batch-size=-1 is invalid"),
    (["eval", "--batch-size", "0"], "--batch-size=0 is invalid"),
    (["bench", "train", "--batch", "0"], "--batch=0 is invalid"),
    (["bench", "matmul", "--n", "0"], "--n=0 is invalid"),
    (["check", "--max-entries", "0"], "--max-entries=0 is invalid"),
])
def test_bad_sizes_are_clear_errors(argv, message, base_run, capsys):
    if argv[0] == "eval":
        argv = [*argv, "--checkpoint", str(base_run[0])]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# -- 12. --json never prints NaN -------------------------------------------------------------------
def test_json_output_has_null_and_an_error_instead_of_nan(capsys, tmp_path, base_run):
    assert emit({"loss": float("nan"), "n": 3, "rates": {"a": float("inf")}}, True) == 1
    out = json.loads(capsys.readouterr().out)  # strict JSON
    assert out["loss"] is None and out["rates"] == {"a": None} and out["n"] == 3
    assert out["error"] == "not a finite number: loss=nan, rates.a=inf (printed as null)"
    nan = tmp_path / "nan"
    model, tok, _ = checkpoint.load_checkpoint(base_run[0] / runs.CKPT)
    next(iter(model.named_parameters()))[1][...] = np.nan
    checkpoint.save_checkpoint(nan, model, tok, meta={"step": 1})
    text = tmp_path / "t.txt"
    text.write_text("The capital of Algeria is Algiers. " * 4)
    assert main(["eval", "--checkpoint", str(nan), "--text-file", str(text), "--json"]) == 1
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "NaN" not in line and json.loads(line)["bpc"] is None


def test_repair_never_touches_a_run_that_is_being_written(tmp_path, docs):
    run = tmp_path / "r"
    runs.train_run(run, **docs, **{**KW, "steps": 4})
    (run / ".checkpoint.tmp-abc").mkdir()  # what a killed save leaves
    with runfolder.locked(run):  # a training is writing: repair refuses to touch it
        assert main(["repair", str(run)]) == 2
    assert (run / ".checkpoint.tmp-abc").exists()
    assert main(["repair", str(run)]) == 0 and not (run / ".checkpoint.tmp-abc").exists()


# -- 10. a checkpoint that needs a plug-in this machine lacks ---------------------------------
def test_a_checkpoint_names_the_plugin_package_to_install(tmp_path, monkeypatch):
    from spike_lib.core import plugins
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.train import plugin_checks, registry

    fixture = __import__("pathlib").Path(__file__).parent / "fixtures" / "spike_plugin_example"
    monkeypatch.setattr(plugins, "_TABLE", {k: dict(v) for k, v in plugins._TABLE.items()})
    monkeypatch.setattr(plugins, "_DISCOVERED", [])
    monkeypatch.setattr(plugin_checks, "SMOKE_STEPS", 12)
    registry.write_dist_info("spike-plugin-example", "0.1.0", {"spike_lib.neurons": {
        "alif": "spike_plugin_example.neurons:AdaptiveLIF"}}, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(fixture))
    model = SpikeLLM(Config.tiny(neuron="alif", n_layer=1))  # found by the entry-point search
    checkpoint.save_checkpoint(tmp_path / "ck", model)
    origin = "entry point spike_plugin_example.neurons:AdaptiveLIF of spike-plugin-example"
    assert checkpoint.load_meta(tmp_path / "ck")["plugins"] == {"neuron": {"alif": origin}}
    monkeypatch.setattr(plugins, "_TABLE", {k: {n: e for n, e in v.items() if n != "alif"}
                                            for k, v in plugins._TABLE.items()})
    monkeypatch.setattr(plugins, "_DISCOVERED", [True])  # this machine has searched: no alif
    with pytest.raises(ValueError, match=f"neuron='alif' is invalid.*saved with the neuron "
                                         f"'alif' from {origin}: install that package"):
        checkpoint.load_checkpoint(tmp_path / "ck")


def test_a_run_folder_without_a_checkpoint_and_one_without_its_weights_say_which(tmp_path):
    # a fresh run has saved nothing yet; a described model whose weights.npz is missing (as
    # book-6800's were in git history before it became data/checkpoints/book) gets an error
    # that says so
    from spike_lib.train.evaluation import resolve_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="has no checkpoint yet: train it longer"):
        resolve_checkpoint(run)
    (run / "meta.json").write_text('{"step": 5}')
    (run / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="describes a model but holds no weights.npz: restore"):
        resolve_checkpoint(run)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "meta.json", "run.json"]
