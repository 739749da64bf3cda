"""scripts/train_budget.py: a recipe's idle speed turned into steps and minutes (Eq. 8.1), by hand."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import train_budget as tb


def test_probe_speed_is_the_median_after_the_warm_steps(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": k, "loss": 1.0, "tokens_per_s": 10.0 * k} for k in range(1, 21)]
    rows.append({"step": 20, "val_bpc": 2.0})  # an evaluation record without a speed
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert tb.probe_speed(log) == {"tokens_per_s": 155.0, "timed_steps": 10}  # steps 11-20


def test_probe_speed_refuses_a_log_with_only_warm_steps(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": k, "tokens_per_s": 5.0}) + "\n" for k in range(1, 11)))
    with pytest.raises(SystemExit, match="no step past 10"):
        tb.probe_speed(log)


def test_budget_row_by_hand():
    # 0.75 s a step of 2048 tokens: 90 minutes hold 5400 / 0.75 = 7200 steps; 6800 steps take 85 min
    row = tb.budget_row(2048, 2048 / 0.75, 90, 6800)
    assert row["steps_in_budget"] == 7200
    assert row["shipped_minutes"] == pytest.approx(85.0)
    assert row["tokens_per_step"] == 2048 and row["shipped_steps"] == 6800
