"""scripts/time_notebooks.py: the full-mode run of every chapter and the teachers' schedule."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import time_notebooks as tn

NOTEBOOKS = sorted(p.name for p in (tn.ROOT / "notebooks").glob("[01]*.ipynb"))


def test_every_chapter_is_in_one_week_of_the_schedule():
    weeks = [n for n in NOTEBOOKS for _, *prefixes in tn.WEEKS if n.split("_")[0] in prefixes]
    assert sorted(weeks) == NOTEBOOKS  # each notebook exactly once


def test_the_stored_full_run_holds_every_chapter_and_none_raised():
    stored = json.loads(tn.STORED.read_text())
    assert sorted(stored["notebooks"]) == NOTEBOOKS
    raised = {n: r["error"] for n, r in stored["notebooks"].items() if r["error"]}
    assert raised == {}
    assert all(r["wall_s"] > 0 and r["code_cells"] > 0 for r in stored["notebooks"].values())


def test_how_to_use_shows_the_stored_schedule():
    assert tn.main(["--check"]) == 0


def test_schedule_by_hand():
    row = lambda s: {"wall_s": s, "kernel_cpu_s": s, "code_cells": 3, "error": None}  # noqa: E731
    stored = {"notebooks": {"01_a.ipynb": row(20.0), "01b_b.ipynb": row(9.0), "02_c.ipynb": row(90.0),
                            "08_d.ipynb": row(300.0), "08b_e.ipynb": row(330.0)}}
    lines = tn.table(stored).splitlines()
    assert lines[2] == "| 1 | `01_a`, `01b_b` | < 1 |"  # 29 s
    assert lines[3] == "| 2 | `02_c` | 2 |"  # 1.5 min rounds to 2
    assert lines[9] == "| 8 | `08_d`, `08b_e` | 10 |"  # 630 s = 10.5 min -> 10 (round half to even)
    assert lines[4] == "| 3 |  | < 1 |"  # a week without notebooks in this fake file
    assert lines[-1] == "| all | 5 notebooks | 12 |"  # 749 s = 12.5 min -> 12
