"""scripts/headline.py: the front page's results table comes from the stored benchmarks."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import headline as hl


def test_book_intro_holds_the_table_the_benchmarks_give():
    assert hl.main(["--check"]) == 0


def test_check_fails_and_says_what_to_paste_when_the_page_drifts(tmp_path, monkeypatch, capsys):
    page = tmp_path / "intro.md"
    page.write_text(hl.INTRO.read_text().replace("| 1.991 |", "| 1.990 |"))
    monkeypatch.setattr(hl, "INTRO", page)
    assert hl.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "python scripts/headline.py" in err and "| 1.991 |" in err


def test_language_rows_by_hand():
    g = lambda a, b, gap, se, pc: {"a": a, "b": b, "gap": gap, "se": se, "percent": pc}  # noqa: E731
    bench = {"shipped": {"book": "B", "book-twin": "T", "book-softmax": "S"},
             "models": {"B": {"test_bpc": 2.0, "literary_bpc": 1.9, "context_gain": 0.1},
                        "T": {"test_bpc": 2.1, "literary_bpc": 2.0, "context_gain": 0.11},
                        "S": {"test_bpc": 1.8, "literary_bpc": 1.7, "context_gain": 0.125}},
             "ngrams": {"KN trigram (whole train)": {"test_bpc": 2.2, "literary_bpc": 2.25}},
             "gaps": {"x": g("B", "T", -0.1, 0.01, -4.76), "y": g("T", "S", 0.3, 0.02, 16.67),
                      "z": g("B", "S", 0.2, 0.015, 11.11), "other": g("B", "Q", 9.0, 0.0, 9.0),
                      "spikes-seed1@budget": g("B1", "T", 0.05, 0.004, 2.38)}}
    rows = hl.language_rows(bench)
    assert rows[0][1:3] == ("2.000", "count trigram 2.200; softmax twin 1.800")
    assert rows[1][1:3] == ("1.900", "count trigram 2.250")
    assert rows[2][1:3] == ("-0.100 ± 0.010 BPC (-4.8 %)", "against its non-spiking twin, 2.100; "
                            "a second seed of the book model: +0.050 ± 0.004 BPC (+2.4 %)")
    # SpikeGPT 1.283 against 1.137: 100 * 0.146 / 1.137 = 12.84 %
    assert rows[3][1:3] == ("+0.200 ± 0.015 BPC (+11.1 %)", "of it the attention (non-spiking twin - "
                            "softmax twin) +0.300 ± 0.020 BPC (+16.7 %); SpikeGPT - a softmax "
                            "transformer +12.8 %")
    assert rows[4][1:3] == ("0.100", "softmax twin 0.125; non-spiking twin 0.110")


def test_recall_row_by_hand():
    run = lambda seed, acc, spiking=True: {"pairs": 8, "seed": seed, "accuracy": acc,  # noqa: E731
                                           "spiking": spiking, "chance": {"context_value": 0.125}}
    decay = {"runs": [run(1, 0.9), run(0, 0.95), run(0, 1.0, spiking=False),
                      {**run(0, 0.5), "pairs": 4}]}
    sweep = {"recall_table": {"softmax_shift": {"8": [1.0, 0.996]}, "sdsa": {"8": [0.2, 0.1]}}}
    row = hl.recall_row(sweep, decay)
    assert row[1] == "0.95 / 0.90"  # seed 0 first; the twin and the 4-pair run are not read
    assert row[2] == "softmax 1.00 / 1.00; spiking SDSA 0.20 / 0.10; a value from the context 0.125"
