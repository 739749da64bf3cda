"""scripts/average_checkpoints.py: the mean of a run's last K snapshots, by hand, as a folder that
loads, and its refusals."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.train.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import average_checkpoints as avg  # noqa: E402


def _snapshots(tmp_path, n=3):
    """n checkpoints of one tiny model whose tok_emb.W is filled with 1, 2, ..., n."""
    from spike_lib.core.checkpoint_format import save_checkpoint
    from spike_lib.tokenizers.char import CharTokenizer

    tok = CharTokenizer.train("abcdefgh " * 3)
    model = SpikeLLM(Config.tiny(vocab_size=tok.vocab_size))
    out = []
    for i in range(1, n + 1):
        model.modules["tok_emb"].params["W"][:] = float(i)
        save_checkpoint(tmp_path / f"s{i}", model, tok, meta={"step": 100 * i})
        out.append(tmp_path / f"s{i}")
    return out


def test_last_k_mean_by_hand_and_the_written_folder_loads(tmp_path):
    snaps = _snapshots(tmp_path)
    np.testing.assert_array_equal(avg.last_k_mean(snaps, 1)["tok_emb.W"], 3.0)
    np.testing.assert_allclose(avg.last_k_mean(snaps, 2)["tok_emb.W"], 2.5)  # (2 + 3) / 2
    np.testing.assert_allclose(avg.last_k_mean(snaps, 3)["tok_emb.W"], 2.0)  # (1 + 2 + 3) / 3
    out = avg.write_average(snaps, 2, tmp_path / "avg2")
    model, _, meta = load_checkpoint(out)
    np.testing.assert_allclose(model.state_dict()["tok_emb.W"], 2.5)
    assert meta["averaged"] == [str(snaps[1]), str(snaps[2])] and meta["step"] == 300
    assert json.loads((snaps[2] / "meta.json").read_text()).get("averaged") is None  # untouched


def test_bad_k_and_an_existing_folder_are_refused(tmp_path):
    snaps = _snapshots(tmp_path, 2)
    with pytest.raises(ValueError, match="choose 1 to 2"):
        avg.last_k_mean(snaps, 3)
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit, match="exists; give a new folder"):
        avg.write_average(snaps, 2, tmp_path / "taken")
    assert list((tmp_path / "taken").iterdir()) == []
