"""WordPiece: BERT's basic tokenizer and greedy longest match by hand, the likelihood trainer
by hand, id parity with blingfire's compiled encoder on both shipped BERT vocabularies,
lossiness measured, files and errors."""

import hashlib
import json
import re
from collections import Counter

import pytest

from spike_lib.tokenizers import DATA_DIR, get_tokenizer, load_tokenizer
from spike_lib.tokenizers.bert import MODELS, BlingfireReference, chinese_messages, read_i2w
from spike_lib.tokenizers.wordpiece import (
    ZS,
    WordPieceTokenizer,
    basic_tokenize,
    lossiness,
    train_wordpiece,
    wordpiece_word,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# a paragraph written for this test (no licence needed): Chinese with Latin words, digits,
# full-width punctuation and a traditional character
ZH = ("脉冲神经网络用离散的脉冲传递信息。每个神经元把输入电流累积在膜电位上，"
      "超过阈值就发放一个脉冲并重置。Transformer 模型在 2017 年提出，"
      "BERT 使用 WordPiece 分词：未知的词被切成更小的片段，例如 ##ing。"
      "我們在 CPU 上訓練了 1200 步，驗證集的 BPC 是 1.92！")


def test_basic_tokenizer_by_hand():
    assert basic_tokenize("Hello, World!  Ça va?") == ["Hello", ",", "World", "!", "Ça", "va", "?"]
    assert basic_tokenize("Hello, World!  Ça va?", lowercase=True) == \
        ["hello", ",", "world", "!", "ca", "va", "?"]  # lowercased and accents stripped
    assert basic_tokenize("Ça", lowercase=True, accents=True) == ["ça"]
    assert basic_tokenize("我爱ab中文") == ["我", "爱", "ab", "中", "文"]  # CJK one by one
    # controls (U+0000, U+200B format char, U+FFFD) vanish and join; tab/newline split
    assert basic_tokenize("a\x00b\u200bc\ufffd\td\ne") == ["abc", "d", "e"]
    assert basic_tokenize("$5^2 `x` 3.14") == ["$", "5", "^", "2", "`", "x", "`", "3", ".", "14"]
    assert basic_tokenize("a\u3000b\u00a0c") == ["a", "b", "c"]  # Zs is whitespace


def test_whitespace_table_is_category_zs():
    import unicodedata

    zs = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"}
    assert set(ZS) == zs


def test_greedy_longest_match_by_hand():
    vocab = {"un", "una", "##aff", "##ff", "##able", "##a"}
    # longest prefix first: "una", then "##ff", then "##able" (greedy, not the fewest pieces:
    # "un ##aff ##able" is also three)
    assert wordpiece_word("unaffable", vocab) == ["una", "##ff", "##able"]
    assert wordpiece_word("unaffablex", vocab) == ["[UNK]"]  # one piece missing: whole word
    assert wordpiece_word("un", vocab) == ["un"]
    assert wordpiece_word("a" * 101, {"a", "##a"}) == ["[UNK]"]  # longer than 100 characters
    assert wordpiece_word("a" * 100, {"a", "##a"}) == ["a"] + ["##a"] * 99


def test_encode_decode_by_hand():
    vocab = SPECIALS + ["un", "##aff", "##able", "the", ","]
    tok = WordPieceTokenizer(vocab)
    assert tok.vocab_size == 10 and tok.unk_id == 1 and tok.eot_id == 3
    ids, n_unk = tok.encode_stats("the unaffable,  the xyz")
    assert ids == [8, 5, 6, 7, 9, 8, 1] and n_unk == 1
    assert tok.tokens("unaffable") == ["un", "##aff", "##able"]
    assert tok.decode(ids) == "the unaffable , the [UNK]"  # spaces normalised, xyz lost
    assert tok.decode(tok.encode("the unaffable")) == "the unaffable"  # this one round-trips


def test_likelihood_and_ratio_rules_by_hand():
    # the Hugging Face course's example: n(h)=15 n(p)=17 n(b)=4 n(##u)=36 n(##g)=20 n(##n)=16
    # n(##s)=5; pairs h##u 15, ##u##g 20, p##u 17, ##u##n 16, b##u 4, ##g##s 5; N = 113
    words = Counter({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5})
    ratio = train_wordpiece(words, 7 + 5 + 2, min_count=1, rule="ratio")
    assert ratio[5:12] == ["##u", "##g", "p", "##n", "h", "##s", "b"]  # by count, then a-z
    # ratio: ##g##s 5/(20*5) = 1/20 beats the others' 1/36; then all tie at 1/36 and the
    # pair of smallest ids, (##u, ##g), wins
    assert ratio[12:] == ["##gs", "##ug"]
    # likelihood n log(n N / (n_a n_b)): ##u##g 20 log(20*113/(36*20)) = 22.9 is the largest
    # (p##u 17 log(113/36) = 19.4, ##u##n 18.3, h##u 17.2, ##g##s 5 log(5*113/100) = 8.7);
    # after it N = 93, n(##u) = 16, n(##ug) = 20: ##u##n 16 log(16*93/(16*16)) = 28.2 beats
    # h##ug 15 log(15*93/(15*20)) = 23.1 and p##u 12 log(12*93/(17*16)) = 16.9
    like = train_wordpiece(words, 7 + 5 + 2, min_count=1, rule="likelihood")
    assert like[12:] == ["##ug", "##un"]


def test_train_then_encode():
    text = "the cat sat on the mat the cat ate the hat " * 3
    tok = WordPieceTokenizer.train(text, vocab_size=20)
    assert tok.vocab[:5] == SPECIALS and tok.vocab_size == 20
    ids = tok.encode("the cat")
    assert tok.decode(ids) == "the cat" and tok.unk_id not in ids
    assert len(tok.encode("the cat sat")) < len("thecatsat")  # merges shortened it


def test_shipped_vocabularies_have_published_ids():
    cased, chinese = get_tokenizer("bert-cased"), get_tokenizer("bert-chinese")
    assert cased.vocab_size == 28_996 and chinese.vocab_size == 21_128
    for tok in (cased, chinese):
        assert [tok.vocab[i] for i in (0, 100, 101, 102, 103)] == \
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # the Hugging Face documentation's example for bert-base-cased
    assert cased.encode("Hello, my dog is cute") == [8667, 117, 1139, 3676, 1110, 10509]
    assert chinese.tokens("Hello 世界！") == ["hello", "世", "界", "！"]
    for name, spec in MODELS.items():
        path = DATA_DIR / f"{name}.txt"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["sha256"]
    wp = get_tokenizer("wordpiece")  # trained on the corpus, same size as the shipped BPE
    assert wp.vocab_size == get_tokenizer("bpe").vocab_size and wp.vocab[:5] == SPECIALS


def corpus_sentences(n):
    from spike_lib.data.corpus import corpus_text

    text = corpus_text("val")
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()][:n]


@pytest.mark.parametrize("name", ["bert-cased", "bert-chinese"])
def test_same_ids_as_blingfire(name):
    pytest.importorskip("blingfire")
    ours, ref = get_tokenizer(name), BlingfireReference(name)
    texts = corpus_sentences(3000) + [ZH] + ZH.split("，") + chinese_messages()[:3000]
    assert len(texts) > 3000
    mismatches = [t for t in texts if ours.encode(t) != ref.encode(t)]
    ref.close()
    assert mismatches == []


def test_vocabulary_read_from_blingfire_file():
    pytest.importorskip("blingfire")
    from spike_lib.tokenizers.bert import blingfire_dir

    for name, spec in MODELS.items():
        vocab = read_i2w(blingfire_dir() / f"{spec['model']}.i2w")
        assert vocab == get_tokenizer(name).vocab
    assert get_tokenizer("bert-chinese").vocab[343] == "[BLANK343]"


def test_chinese_text_is_offline():
    messages = chinese_messages()
    if not messages:
        pytest.skip("no zh_CN gettext catalogues on this machine")
    assert all(re.search("[\u4e00-\u9fff]", m) for m in messages[:100])


def test_lossiness_by_hand():
    tok = WordPieceTokenizer(SPECIALS + ["a", "b", "A", "##b"])
    texts = ["a b", "a  b", "A b", "ab", "a é"]
    # exact: "a b", "A b" and "ab" (a ##b); "a  b" loses a space; "a é" loses é to [UNK]
    got = lossiness(tok, texts)
    assert got["roundtrip"] == 3 / 5
    assert got["equal_ignoring_whitespace"] == 4 / 5  # all but "a é"
    assert got["unk_per_token"] == 1 / 10  # 2 tokens per text, one [UNK]
    assert got["unk_char_fraction"] == 1 / 10  # 10 characters in words, é inside an [UNK]
    lower = WordPieceTokenizer(SPECIALS + ["a", "b"], lowercase=True)
    got = lossiness(lower, ["A b"])
    assert got["roundtrip"] == 0 and got["equal_ignoring_whitespace_and_case"] == 1


def test_save_load_and_bad_files(tmp_path):
    tok = get_tokenizer("bert-cased")
    path = tmp_path / "wp.json"
    tok.save(path)
    again = load_tokenizer(path)
    text = "Spiking transformers, 2026: 中文 😀"
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size
    data = json.loads(path.read_text(encoding="utf-8"))
    for broken, message in [
        ({k: v for k, v in data.items() if k != "vocab"}, r"has no key 'vocab': expected a list"),
        ({**data, "vocab": {"a": 1}}, r"key 'vocab' must be a list of token strings.*got dict"),
        ({**data, "vocab": ["a", 5]}, r"key 'vocab' must be .*entry 1 is 5"),
        ({k: v for k, v in data.items() if k != "options"}, r"has no key 'options'"),
        ({**data, "options": {"lowercase": "yes"}}, r"option 'lowercase' is 'yes', expected bool"),
        ({**data, "options": {"colour": 1}}, r"unknown option 'colour'"),
        ({**data, "vocab": ["a"]}, r"unk token '\[UNK\]' is not in the vocabulary"),
    ]:
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ValueError, match=message) as err:
            load_tokenizer(path)
        assert str(path) in str(err.value)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"holds a JSON list, expected an object"):
        load_tokenizer(path)
    with pytest.raises(ValueError, match="does not exist"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "none.txt")


@pytest.mark.parametrize("name, tokens, roundtrip", [
    ("bert-cased", 3, False),  # Hello , world: the space before "," appears on decode
    ("bert-chinese", 3, False),  # lowercased: hello , world
    ("wordpiece", None, False),
])
def test_tokenize_cli_reports_roundtrip(tmp_path, capsys, name, tokens, roundtrip):
    from spike_lib.cli import main

    path = tmp_path / "t.txt"
    path.write_text("Hello, world", encoding="utf-8")
    assert main(["tokenize", "--tokenizer", name, "--text-file", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res) == {"tokens", "chars_per_token", "fallback_fraction", "roundtrip"}
    n = len(get_tokenizer(name).encode("Hello, world"))
    assert res["tokens"] == (tokens or n) and res["chars_per_token"] == 12 / res["tokens"]
    assert res["roundtrip"] is roundtrip and res["fallback_fraction"] == 0.0


def test_tokenize_cli_unk_is_the_fallback(tmp_path, capsys):
    from spike_lib.cli import main

    path = tmp_path / "t.txt"
    path.write_text("a b 😀", encoding="utf-8")  # the emoji is not in BERT's cased vocabulary
    assert main(["tokenize", "--tokenizer", "bert-cased", "--text-file", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res == {"tokens": 3, "chars_per_token": 5 / 3, "fallback_fraction": 1 / 3,
                   "roundtrip": False}
