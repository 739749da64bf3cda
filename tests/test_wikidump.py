"""Tests for spike_lib.data.wikidump: streaming a bz2 XML dump and cleaning wikitext."""

import bz2
import io
import zipfile

import pytest

from spike_lib.data.readers import wikipedia_docs
from spike_lib.data.sources import wiki_category
from spike_lib.data.wikidump import categories, clean_wikitext, iter_pages, strip_nested

NS = "http://www.mediawiki.org/xml/export-0.10/"


def dump(pages) -> bytes:
    """A bz2 MediaWiki export with the given (title, ns, text, redirect) pages."""
    body = "".join(
        f"<page><title>{t}</title><ns>{ns}</ns><id>{i + 1}</id>"
        + (f'<redirect title="{r}" />' if r else "")
        + f'<revision><id>9{i}</id><text xml:space="preserve">{x}</text></revision></page>'
        for i, (t, ns, x, r) in enumerate(pages)
    )
    xml = f'<mediawiki xmlns="{NS}" version="0.10"><siteinfo/>{body}</mediawiki>'
    return bz2.compress(xml.encode("utf-8"))


def test_strip_nested_removes_balanced_spans_at_any_depth():
    assert strip_nested("a {{b {{c}} d}} e", "{{", "}}") == "a  e"
    assert strip_nested("x {|\n{|\n|}\n|} y", "{|", "|}") == "x  y"
    assert strip_nested("[[a|b]] and [[c]]", "[[", "]]", keep=lambda s: s.upper()) == "A|B and C"
    assert strip_nested("cut {{here", "{{", "}}") == "cut "  # unclosed: to the end


def test_clean_wikitext_on_every_kind_of_markup():
    text = (
        "{{Infobox person|name=X|born={{birth date|1900|1|1}}}}\n"
        "'''Ada''' (born 1815<ref name=a>Ref {{cite|x}}</ref>) was an ''English'' "
        "[[mathematician|maths person]] and [[writer]]s.<ref name=b/><!-- hidden -->\n"
        "[[File:Ada.jpg|thumb|A [[portrait]] of Ada]]\n"
        "== Early life ==\n"
        "She met [http://example.org Babbage] in 1833 [http://example.org/x].\n"
        '{| class="wikitable"\n|-\n| cell || cell\n|}\n'
        "* a list item\n"
        "== References ==\n"
        "{{reflist}}\n* Book one\n"
        "[[Category:1815 births]]\n[[de:Ada Lovelace]]"
    )
    assert clean_wikitext(text) == (
        "Ada (born 1815) was an English maths person and writers.\n\n"
        "Early life\n\nShe met Babbage in 1833.\n\na list item"
    )


def test_categories_and_the_category_rule():
    assert categories("x [[Category:1815 births]] [[Category: Mathematicians |Ada]]") == [
        "1815 births",
        "Mathematicians",
    ]
    assert wiki_category("Ada", ["1815 births", "English mathematicians"]) == "people"
    assert wiki_category("Asia", ["Continents"]) == "geography"
    assert wiki_category("Alkane", ["Alkanes"]) == "chemistry"
    assert wiki_category("Award", ["Awards"]) == "other"  # "war" must start a word
    assert wiki_category("Zzz", []) == "other"


def test_iter_pages_streams_namespace_zero_and_flags_redirects():
    data = dump(
        [
            ("Alpha", 0, "Alpha is a letter.", None),
            ("Talk:Alpha", 1, "chat", None),
            ("Alfa", 0, "#REDIRECT [[Alpha]]", "Alpha"),
            ("Beta", 0, "#redirect [[B]]", None),
            ("Gamma &amp; Delta", 0, "&lt;ref&gt;x&lt;/ref&gt;G.", None),
        ]
    )
    pages = list(iter_pages(io.BytesIO(data)))
    assert [p["title"] for p in pages] == ["Alpha", "Alfa", "Beta", "Gamma & Delta"]
    assert [p["redirect"] for p in pages] == [None, "Alpha", "", None]
    assert [p["id"] for p in pages] == [1, 3, 4, 5]
    assert clean_wikitext(pages[3]["text"]) == "G."  # XML entities decoded, then the ref goes


def fake_wheel(tmp_path, member_bytes):
    path = tmp_path / "gensim.whl"
    member = (
        "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, member_bytes)
    return path


def test_wikipedia_docs_reads_a_wheel_and_skips_disambiguation(tmp_path):
    data = dump(
        [
            ("Ada", 0, "'''Ada''' was a [[mathematician]]. [[Category:1815 births]]", None),
            ("Ada (disambiguation)", 0, "Ada may mean... {{disambig}}", None),
            ("Lovelace", 0, "#REDIRECT [[Ada]]", "Ada"),
        ]
    )
    docs, files = wikipedia_docs(fake_wheel(tmp_path, data))
    assert [(d["title"], d["text"]) for d in docs] == [
        ("Ada", "Ada was a mathematician."),
        ("Ada (disambiguation)", ""),
        ("Lovelace", ""),
    ]
    assert docs[0]["category"] == "people" and docs[1]["disambiguation"] and docs[2]["redirect"]
    assert len(next(iter(files.values()))) == 64


def test_a_corrupt_dump_names_the_file_and_the_fix(tmp_path):
    data = dump([("Ada", 0, "Ada was here. " * 200, None)])
    with pytest.raises(ValueError, match=r"enwiki-latest.*not a readable bz2 dump.*delete"):
        wikipedia_docs(fake_wheel(tmp_path, data[: len(data) // 2]))
