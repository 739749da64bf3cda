"""data/manifest.json: every shipped data file (bytes, sha256, records) and every source package.

Taught in: notebooks/03_corpus.ipynb
"""

# `check_manifest` compares the files on disk with the manifest and lists each mismatch.
import gzip
import json
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.sources import sha256_file

MANIFEST_NAME = "manifest.json"
SHIPPED_DIRS = ("corpus", "qa", "tokenizers")  # qa/ and tokenizers/ come from chapter 4's helper


def count_records(path: Path):
    """Lines of a .jsonl / .jsonl.gz file (its records); None for other files."""
    name = path.name
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rb") as f:
            return sum(1 for _ in f)
    if name.endswith(".jsonl"):
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    return None


def shipped_files(root) -> list[Path]:
    """Data files under root/{corpus,qa,tokenizers}, sorted; hidden and temp files skipped."""
    root = Path(root)
    files = []
    for sub in SHIPPED_DIRS:
        if (root / sub).is_dir():
            files += [
                p
                for p in (root / sub).rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
    return sorted(files)


def file_entry(root, path: Path) -> dict:
    entry = {
        "path": f"data/{path.relative_to(root).as_posix()}",
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }
    records = count_records(path)
    if records is not None:
        entry["records"] = records
    return entry


def make_manifest(root, sources: list[dict], build: dict) -> dict:
    files = [file_entry(Path(root), p) for p in shipped_files(root)]
    return {
        "format": 1,
        "files": files,
        "sources": sources,
        "build": build,
        "total_bytes": sum(f["bytes"] for f in files),
    }


def write_json_atomic(path, obj, indent=1) -> None:
    """The manifest's JSON (unsorted keys, UTF-8, final newline), written by core.atomic."""
    write_json(path, obj, indent=indent, sort_keys=False, ensure_ascii=False, newline=True)


def read_manifest(root) -> dict:
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise ValueError(f"{path} does not exist; run `python -m spike_lib data build`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); restore it with "
            f"`git checkout -- data/manifest.json`"
        ) from err


def check_manifest(root) -> list[str]:
    """Mismatches between data files on disk and the manifest ([] when everything agrees)."""
    root = Path(root)
    manifest = read_manifest(root)
    problems, listed = [], set()
    for entry in manifest.get("files", []):
        rel = entry["path"].removeprefix("data/")
        listed.add(rel)
        path = root / rel
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            problems.append(f"{entry['path']}: {size} bytes, manifest says {entry['bytes']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    for path in shipped_files(root):
        rel = path.relative_to(root).as_posix()
        if rel not in listed:
            problems.append(
                f"data/{rel}: not in the manifest (run `python -m spike_lib data "
                f"manifest` to add it)"
            )
    return problems
