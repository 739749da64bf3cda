"""Stream pages out of a MediaWiki XML dump (.xml.bz2) and turn their wikitext into plain text.

Taught in: notebooks/03_corpus.ipynb
"""

# the same code reads the 206-page excerpt shipped inside the gensim wheel and a full enwiki
# `pages-articles.xml.bz2`: pages are parsed one at a time with `xml.etree.ElementTree.iterparse`
# over a `bz2` stream and freed as soon as they are read, so memory stays flat.
import bz2
import html
import re
import xml.etree.ElementTree as ET

# sections that hold lists of links or citations, not prose: dropped with their content
SKIP_SECTIONS = {
    "references",
    "external links",
    "see also",
    "further reading",
    "notes",
    "bibliography",
    "sources",
    "footnotes",
    "citations",
    "notes and references",
    "works cited",
}
# tags dropped together with everything inside them
DROP_TAGS = (
    "ref",
    "math",
    "gallery",
    "timeline",
    "imagemap",
    "score",
    "syntaxhighlight",
    "source",
    "pre",
    "code",
    "chem",
    "hiero",
    "graph",
    "templatedata",
    "references",
)
HEAD = "\x00"  # marks heading lines until empty sections are dropped
LINK_DROP_PREFIXES = ("file:", "image:", "media:", "category:")

_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_REF_SELF = re.compile(r"<ref[^>]*/>", re.IGNORECASE)
_DROP = re.compile(
    r"<({})\b[^>]*>.*?</\1\s*>".format("|".join(DROP_TAGS)), re.DOTALL | re.IGNORECASE
)
_DROP_SELF = re.compile(r"<({})\b[^>]*/>".format("|".join(DROP_TAGS)), re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_EXT_LINK_TEXT = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s+([^\]]*)\]")
_EXT_LINK_BARE = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\]")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$")
_CATEGORY = re.compile(r"\[\[\s*Category\s*:\s*([^\]|]+)", re.IGNORECASE)
_MAGIC = re.compile(r"__[A-Z]+__")
_EMPTY_PARENS = re.compile(r"\s?\(\s*[,;:]?\s*\)")
_OPEN_PUNCT = re.compile(r"\(\s*(?:[,;]\s*)+")
_SPACES = re.compile(r"[ \t]+")


def local(tag: str) -> str:
    """'{http://www.mediawiki.org/xml/export-0.10/}page' -> 'page' (any export version)."""
    return tag.rsplit("}", 1)[-1]


def iter_pages(fileobj, namespaces=(0,)):
    """Yield {'title', 'ns', 'id', 'redirect', 'text'} for each page of a bz2 XML dump.

    `fileobj` is a path or a binary file object of the *compressed* dump. Redirect pages are
    yielded with redirect set to the target so the caller can count them; pages outside
    `namespaces` (talk, user, project pages) are skipped.
    """
    with bz2.open(fileobj, "rb") as stream:
        context = ET.iterparse(stream, events=("start", "end"))
        _, root = next(context)
        for event, elem in context:
            if event != "end" or local(elem.tag) != "page":
                continue
            page = {"title": "", "ns": 0, "id": 0, "redirect": None, "text": ""}
            for child in elem.iter():
                name = local(child.tag)
                if name == "title":
                    page["title"] = child.text or ""
                elif name == "ns":
                    page["ns"] = int(child.text or 0)
                elif name == "id" and not page["id"]:
                    page["id"] = int(child.text or 0)
                elif name == "redirect":
                    page["redirect"] = child.get("title", "")
                elif name == "text":
                    page["text"] = child.text or ""
            elem.clear()
            root.clear()  # drop finished pages: memory stays flat on a full dump
            if page["ns"] in namespaces:
                if page["redirect"] is None and page["text"].lstrip()[:9].upper() == "#REDIRECT":
                    page["redirect"] = ""
                yield page


def categories(wikitext: str) -> list[str]:
    """The [[Category:...]] names of a page, in order."""
    return [c.strip() for c in _CATEGORY.findall(wikitext)]


def strip_nested(text: str, open_: str, close: str, keep=None) -> str:
    """Remove balanced `open_ ... close` spans (nested any depth) in one left-to-right pass.

    `keep(inner)` may return a replacement string for a span; by default spans vanish.
    An unclosed span runs to the end of the text (a truncated template is still markup).
    """
    out, i, n = [], 0, len(text)
    while i < n:
        j = text.find(open_, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        depth, k = 1, j + len(open_)
        while k < n and depth:
            if text.startswith(open_, k):
                depth, k = depth + 1, k + len(open_)
            elif text.startswith(close, k):
                depth, k = depth - 1, k + len(close)
            else:
                k += 1
        if keep is not None and depth == 0:
            out.append(keep(text[j + len(open_) : k - len(close)]))
        i = k
    return "".join(out)


def _link(inner: str) -> str:
    """[[target|label]] -> label, [[target]] -> target, files/categories/interwiki -> ''."""
    target = inner.split("|", 1)[0].strip().lower()
    if target.startswith(LINK_DROP_PREFIXES) or re.match(r"^[a-z]{2,3}(-[a-z]+)?:", target):
        return ""
    return inner.rsplit("|", 1)[-1] if "|" in inner else inner


def drop_sections(text: str) -> str:
    """Drop reference/link sections (SKIP_SECTIONS) from their heading to the next heading."""
    out, skip_level = [], 0
    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m:
            level = len(m.group(1))
            if skip_level and level > skip_level:
                continue
            skip_level = level if m.group(2).strip().lower() in SKIP_SECTIONS else 0
        if not skip_level:
            out.append(line)
    return "\n".join(out)


def clean_wikitext(text: str) -> str:
    """Plain text of a page's wikitext: markup, templates, tables, refs, files, links removed.

    Order matters: comments and <ref>s first (they may contain braces), then templates {{...}}
    (nested), tables {|...|} (nested), links [[...]] (file captions nest links), then the
    inline markup of what is left.
    """
    text = _COMMENT.sub("", text)
    text = _REF_SELF.sub("", text)
    text = _DROP.sub("", text)
    text = _DROP_SELF.sub("", text)
    text = strip_nested(text, "{{", "}}")
    text = strip_nested(text, "{|", "|}")
    text = drop_sections(text)
    text = strip_nested(text, "[[", "]]", keep=_link)
    text = _EXT_LINK_TEXT.sub(r"\1", text)
    text = _EXT_LINK_BARE.sub("", text)
    text = _URL.sub("", text)
    text = _BR.sub(" ", text)
    text = _TAG.sub("", text)
    text = _MAGIC.sub("", text)
    text = text.replace("'''", "").replace("''", "")
    text = html.unescape(text).replace("\xa0", " ")  # &nbsp; &ndash; written in the wikitext
    lines = []
    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m:
            lines += ["", HEAD + m.group(2).strip(), ""]
            continue
        line = line.lstrip("*#:;").strip()
        if line.startswith(("|", "!")):  # stray table rows left by broken markup
            continue
        line = _OPEN_PUNCT.sub("(", _EMPTY_PARENS.sub("", _SPACES.sub(" ", line)))
        line = line.replace(" ,", ",").replace(" .", ".")
        lines.append(_SPACES.sub(" ", line).strip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return _drop_empty_headings(text)


def _drop_empty_headings(text: str) -> str:
    """Drop headings (marked HEAD by clean_wikitext) whose section ended up empty."""
    paras = text.split("\n\n")
    keep = []
    for i, p in enumerate(paras):
        nxt = paras[i + 1] if i + 1 < len(paras) else HEAD
        if p.startswith(HEAD) and nxt.startswith(HEAD):
            continue
        keep.append(p.removeprefix(HEAD))
    return "\n\n".join(keep)
