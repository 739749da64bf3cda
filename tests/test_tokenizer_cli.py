"""`python -m spike_lib tokenize` and `bench tokenizers`: numbers for a known file, clear errors."""

import json

from spike_lib.cli import main
from spike_lib.tokenizers import get_tokenizer
from spike_lib.tokenizers.bench import bench_tokenizers
from spike_lib.tokenizers.cli import measure


def run_json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, (json.loads(out.out.strip().splitlines()[-1]) if code == 0 else out.err)


def test_tokenize_char_by_hand(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("hello €", encoding="utf-8")
    code, res = run_json(capsys, ["tokenize", "--tokenizer", "char", "--text-file", str(path),
                                  "--json"])
    assert code == 0
    tok = get_tokenizer("char")
    fallback = 0 if "€" in tok.table.chars else 3  # '€': one token if seen, else 3 bytes
    n = 6 + max(fallback, 1)
    assert res == {"tokens": n, "chars_per_token": 7 / n,
                   "fallback_fraction": fallback / n, "roundtrip": True}


def test_tokenize_gpt2_hello_world(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("Hello world", encoding="utf-8")
    code, res = run_json(capsys, ["tokenize", "--tokenizer", "gpt2", "--text-file", str(path),
                                  "--json"])
    assert code == 0 and res["tokens"] == 2 and res["chars_per_token"] == 5.5


def test_tokenize_bad_files(tmp_path, capsys):
    code, err = run_json(capsys, ["tokenize", "--text-file", str(tmp_path / "nope.txt")])
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    code, err = run_json(capsys, ["tokenize", "--text-file", str(bad)])
    assert code == 2 and "is not UTF-8 (bad byte 0xe9 at offset 3)" in err


def test_measure_empty_text():
    assert measure(get_tokenizer("char"), "") == {"tokens": 0, "chars_per_token": 0.0,
                                                  "fallback_fraction": 0.0, "roundtrip": True}


def test_bench_reports_every_tokenizer():
    res = bench_tokenizers("a small text, twice. " * 50, names=("char", "syllable"), repeats=1)
    assert set(res) == {"text_mb", "char_mb_s", "char_mb_s_cold", "syllable_mb_s",
                        "syllable_mb_s_cold"}
    assert res["text_mb"] == 21 * 50 / 1e6 and all(v > 0 for v in res.values())
