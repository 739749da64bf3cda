"""Tokenizer files are safe to open (issue 11 items 7-9): BPE encoding is linear in a run of
letters, a file's pre-tokenizer regex must be a known one, and a damaged file gives one error
naming the file, the key and what was expected."""

import json
import re

import pytest

from spike_lib.tokenizers import get_tokenizer, load_tokenizer
from spike_lib.tokenizers.bpe import PATTERN, BPETokenizer, check_pattern, merge_heap, merge_scan


@pytest.fixture(scope="module")
def bpe():
    return get_tokenizer("bpe")


@pytest.fixture(scope="module")
def letters():
    from spike_lib.data.corpus import corpus_text

    return "".join(re.findall(r"[A-Za-z]+", corpus_text("val")[:400_000]))


def test_heap_merge_equals_reference_merge(bpe, letters):
    ranks = bpe.ranks
    for start, n in [(0, 1), (0, 2), (5, 65), (100, 300), (1000, 1500), (9000, 2500)]:
        data = letters[start : start + n].encode()
        assert merge_heap(data, ranks) == merge_scan(data, ranks), (start, n)
    for text in ["aaaaaaa", "abababab", "é" * 50 + "x", "😀" * 30]:  # ties and repeats
        data = text.encode()
        assert merge_heap(data, ranks) == merge_scan(data, ranks), text
    # by hand: ranks a+a=256 and aa+a=257 -> "aaaaa" merges (0,1), (2,3), then aa+a at 2 -> aaa
    toy = {bytes([b]): b for b in range(256)} | {b"aa": 256, b"aaa": 257}
    assert merge_scan(b"aaaaa", toy) == merge_heap(b"aaaaa", toy) == [b"aa", b"aaa"]


def test_encode_100k_letters_is_linear(bpe, letters):
    """The work (heap operations) grows linearly with the length of a whitespace-free run."""
    assert len(letters) >= 100_000
    counts = {}
    for n in (10_000, 100_000):
        counter = {}
        ids = [bpe.ranks[p] for p in merge_heap(letters[:n].encode(), bpe.ranks, counter)]
        assert bpe.decode(ids) == letters[:n]
        assert counter["pops"] == counter["pushes"] <= 3 * n  # at most 3 operations per byte
        counts[n] = counter["pushes"]
    assert 9 <= counts[100_000] / counts[10_000] <= 11  # 10 times the letters, ~10 times the work
    # the public encode takes the heap path for a long piece and agrees with the reference
    piece = " " + letters[:3000]
    assert bpe.encode(piece) == [bpe.ranks[p] for p in merge_scan(piece.encode(), bpe.ranks)]


@pytest.mark.parametrize("pattern", [r"(\w+\s?)+$", "(", "a|b", PATTERN + " "])
def test_hostile_or_unknown_patterns_are_refused(tmp_path, pattern):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps({"type": "bpe", "version": 1, "pattern": pattern, "merges": []}))
    with pytest.raises(ValueError, match="is not one spike_lib writes; allowed: \\['gpt2'\\]") \
            as err:
        load_tokenizer(path)
    assert str(path) in str(err.value)


def test_known_patterns_by_name_or_text(tmp_path):
    assert check_pattern("gpt2") == check_pattern(PATTERN) == PATTERN
    path = tmp_path / "tok.json"
    for pattern in ("gpt2", PATTERN):
        path.write_text(json.dumps({"type": "bpe", "version": 1, "pattern": pattern,
                                    "merges": [[97, 98]]}))
        assert load_tokenizer(path).encode("ab ab") == [256, 32, 256]
    BPETokenizer.train("ab ab", vocab_size=258).save(path)  # what the library writes loads
    assert load_tokenizer(path).pattern == PATTERN


@pytest.mark.parametrize("data, message", [
    ({"type": "bpe", "version": 1}, r"has no key 'merges': expected a list of \[id, id\] pairs"),
    ({"type": "bpe", "version": 1, "merges": {}}, r"key 'merges' must be a list .* got dict"),
    ({"type": "bpe", "version": 1, "merges": [[1, 2, 3]]}, r"entry 0 is \[1, 2, 3\]"),
    ({"type": "bpe", "version": 1, "merges": [[5, 900]]}, r"key 'merges': merge 0 = \(5, 900\)"),
    ({"type": "char", "version": 1}, r"has no key 'chars': expected a list of single characters"),
    ({"type": "char", "version": 1, "chars": ["ab"]}, r"key 'chars' must be .* holds 'ab'"),
    ({"type": "syllable", "version": 1, "chars": []}, r"has no key 'syllables'"),
    ({"type": "syllable", "version": 1, "chars": [], "syllables": [1]}, r"entry 0 is 1"),
    ({"type": "gpt2", "version": 1, "rank_file": 5}, r"key 'rank_file' must be a path string"),
])
def test_wrong_shape_names_file_key_and_expectation(tmp_path, data, message):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as err:
        load_tokenizer(path)
    assert str(path) in str(err.value)


def test_json_list_instead_of_object(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"holds a JSON list, expected an object"):
        load_tokenizer(path)


def test_vocab_size_must_match_the_model(tmp_path):
    path = tmp_path / "tok.json"
    BPETokenizer.train("ab ab ab", vocab_size=300).save(path)  # 256 + 2 merges + 1 = 259 tokens
    assert load_tokenizer(path, vocab_size=259).vocab_size == 259
    with pytest.raises(ValueError, match=r"has 259 tokens but the model's vocab_size is 512") \
            as err:
        load_tokenizer(path, vocab_size=512)
    assert str(path) in str(err.value)


def test_checkpoint_with_a_tokenizer_of_another_size_is_refused(tmp_path):
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.tokenizers import CharTokenizer
    from spike_lib.train.checkpoint import load_checkpoint, save_checkpoint

    tok = CharTokenizer.train("héllo wörld", min_count=1)  # 256 + 2 + 1 = 259 tokens
    cfg = Config.tiny(vocab_size=300, block_size=8, n_embd=8, n_head=2, d_ff=16)
    save_checkpoint(tmp_path / "ck", SpikeLLM(cfg), tok)
    with pytest.raises(ValueError, match=r"tokenizer.json has 259 tokens but the model's "
                                         r"vocab_size is 300"):
        load_checkpoint(tmp_path / "ck")
    mlx_model = pytest.importorskip("spike_lib.mlx_impl.model")
    with pytest.raises(ValueError, match=r"has 259 tokens but the model's vocab_size is 300"):
        mlx_model.load_checkpoint(tmp_path / "ck")


def test_bench_has_a_whitespace_free_entry():
    from spike_lib.tokenizers.bench import bench_no_whitespace, no_whitespace_text

    text = no_whitespace_text(0.02, text="ab, cd ef!\n" * 10)
    assert len(text) == 20_000 and text[:12] == "abcdefabcdef" and text.isalpha()
    res = bench_no_whitespace(0.01)
    assert set(res) == {"no_whitespace_mb", "bpe_no_whitespace_mb_s"}
    assert res["no_whitespace_mb"] == 0.01 and res["bpe_no_whitespace_mb_s"] > 0
