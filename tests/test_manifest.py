"""Tests for spike_lib.data.manifest and `python -m spike_lib data check`."""

import re

from spike_lib.cli import main
from spike_lib.data.corpus import data_dir, write_jsonl_gz
from spike_lib.data.manifest import check_manifest, make_manifest, read_manifest, write_json_atomic
from spike_lib.data.sources import SOURCES, sha256_file


def small_data(tmp_path):
    root = tmp_path / "data"
    write_jsonl_gz(root / "corpus" / "train.jsonl.gz", [{"a": 1}, {"a": 2}, {"a": 3}])
    (root / "qa").mkdir()
    (root / "qa" / "counts.json").write_text('{"train": 3}')
    manifest = make_manifest(root, [{"name": "x"}], {"command": "test"})
    write_json_atomic(root / "manifest.json", manifest)
    return root, manifest


def test_manifest_lists_bytes_sha256_and_records(tmp_path):
    root, manifest = small_data(tmp_path)
    files = {f["path"]: f for f in manifest["files"]}
    train = files["data/corpus/train.jsonl.gz"]
    path = root / "corpus" / "train.jsonl.gz"
    assert train["records"] == 3 and train["bytes"] == path.stat().st_size
    assert train["sha256"] == sha256_file(path)
    assert "records" not in files["data/qa/counts.json"]
    assert manifest["total_bytes"] == sum(f["bytes"] for f in manifest["files"])
    assert check_manifest(root) == []


def test_check_reports_each_kind_of_mismatch(tmp_path, capsys):
    root, _ = small_data(tmp_path)
    counts = root / "qa" / "counts.json"
    counts.write_text('{"train": 4}')  # same size, other bytes
    (root / "corpus" / "extra.txt").write_text("new")
    train = root / "corpus" / "train.jsonl.gz"
    train.write_bytes(train.read_bytes() + b"x")
    assert check_manifest(root) == [
        (
            f"data/corpus/train.jsonl.gz: {train.stat().st_size} bytes, manifest says "
            f"{train.stat().st_size - 1}"
        ),
        "data/qa/counts.json: sha256 differs from the manifest",
        (
            "data/corpus/extra.txt: not in the manifest (run `python -m spike_lib data manifest` "
            "to add it)"
        ),
    ]
    counts.unlink()
    assert "data/qa/counts.json: missing" in check_manifest(root)
    assert main(["data", "build", "--check", "--data-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert "mismatch: data/qa/counts.json: missing" in err and "3 mismatch(es)" in err


def test_shipped_data_matches_its_manifest():
    root = data_dir()
    assert check_manifest(root) == []
    manifest = read_manifest(root)
    assert main(["data", "check"]) == 0
    by_name = {s["name"]: s for s in manifest["sources"]}
    fetched = {n for n, s in by_name.items() if s.get("registry") is not None}
    assert fetched == {s.name for s in SOURCES}
    for name in set(by_name) - fetched:  # written for the course, e.g. the paraphrase QA set
        entry = by_name[name]
        assert entry["licence"] and entry["written_by"]
        assert entry["files"] and all(re.fullmatch("[0-9a-f]{64}", h) for h in entry["files"].values())
    for src in SOURCES:
        entry = by_name[src.name]
        assert entry["version"] == src.version and entry["sha256"] == src.sha256
        assert entry["licence"] and entry["url"].startswith("https://")
        assert entry["files"] and all(
            re.fullmatch("[0-9a-f]{64}", h) for h in entry["files"].values()
        )
    paths = {f["path"] for f in manifest["files"]}
    assert {"data/corpus/train.jsonl.gz", "data/corpus/build_report.json"} <= paths
    assert manifest["total_bytes"] < 100 * 2**20
