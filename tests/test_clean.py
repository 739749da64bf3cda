"""Tests for spike_lib.data.clean: NFC, unknown characters, the word list, dedup, the report."""

import unicodedata

from spike_lib.data.clean import (
    COURSE_CHARSET,
    MIN_DEDUP_CHARS,
    Cleaner,
    FilterReport,
    exact_key,
    near_key,
    normalize,
    strip_html,
    unknown_fraction,
    unwrap,
    wordlist_hits,
)


def test_normalize_is_nfc_not_nfkc():
    decomposed = "Cafe\u0301 at 5 km\u00b2\u00a0away\r\n\r\n\r\n\r\nend  \n"
    out = normalize(decomposed)
    assert out == "Caf\u00e9 at 5 km\u00b2 away\n\nend"
    assert len("Caf\u00e9") == 4 and "\u00e9" in out  # e + combining acute -> one code point
    assert unicodedata.normalize("NFKC", "km\u00b2") == "km2"  # what NFKC would have done
    assert normalize("\ufb01ne\u00ad") == "\ufb01ne"  # ligature kept, soft hyphen removed


def test_strip_html_and_unwrap():
    assert strip_html("<strong>note:</strong> a<br><br>b &amp; c") == "note: a; b & c"
    assert unwrap("one\ntwo  three\n\nfour\n five") == "one two three\n\nfour five"


def test_unknown_fraction_counts_characters_outside_the_charset():
    assert unknown_fraction("") == 0.0
    assert unknown_fraction("abc\u0627") == 0.25  # an Arabic letter
    assert unknown_fraction("\u00c9mile \u2013 \u03b1-helix, 5 \u00b0C") == 0.0
    assert "\u0627" not in COURSE_CHARSET and "\u2014" in COURSE_CHARSET


def test_wordlist_matches_whole_words_case_insensitively():
    assert wordlist_hits("Ay, he was porn at Monmouth") == ["porn"]
    assert wordlist_hits("PORNOGRAPHIC content") == ["pornographic"]
    assert wordlist_hits("the sex ratio at birth; sexual reproduction") == []
    assert wordlist_hits("pornstarlet") == []  # not a listed word


def test_exact_and_near_keys():
    a, b = "Hello,  World! 42", "hello world 42"
    assert exact_key(a) != exact_key(b)
    assert near_key(a) == near_key(b)
    assert near_key("abc") != near_key("abd")


def test_cleaner_filters_and_reports_bytes():
    report = FilterReport()
    clean = Cleaner(report, min_chars=20)
    para = "The same paragraph appears in two documents of the corpus, word for word."
    assert len(para) >= MIN_DEDUP_CHARS
    arabic = "\u0627\u0644\u062c\u0632\u0627\u0626\u0631 is Algeria"  # 7 of 17 unknown
    doc1 = f"MACBETH.\n\n{para}\n\n{arabic}\n\nMACBETH.\n\nA porno paragraph."
    out1 = clean("wiki", doc1)
    assert out1 == f"MACBETH.\n\n{para}\n\nMACBETH."  # short speaker lines are never deduped
    doc2 = f"{para}\n\n{para.upper()}\n\nSomething new and long enough."
    assert clean("books", doc2) == "Something new and long enough."
    assert clean("books", "tiny") == ""
    rep = report.to_dict()["removed"]
    assert rep["wiki"]["unknown_chars"] == {"items": 1, "bytes": len(arabic.encode())}
    assert rep["wiki"]["wordlist"] == {"items": 1, "bytes": len(b"A porno paragraph.")}
    assert rep["books"]["exact_dup"] == {"items": 1, "bytes": len(para)}
    assert rep["books"]["near_dup"] == {"items": 1, "bytes": len(para)}
    assert rep["books"]["short_doc"] == {"items": 1, "bytes": 4}
