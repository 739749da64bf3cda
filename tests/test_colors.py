"""The colour-name dataset: colour science by hand, no leaky names, a seeded disjoint split."""

import re

import numpy as np
import pytest

from spike_lib.data.colors import (
    CLASSES,
    LEAKY,
    ColorData,
    assign_classes,
    load_colors,
    named_colors,
    prototypes,
    srgb_to_lab,
)


@pytest.fixture(scope="module")
def data():
    return load_colors(seed=0)


def test_srgb_to_lab_reference_values():
    lab = srgb_to_lab([[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert np.allclose(lab[0], [100, 0, 0], atol=0.01)  # white is the D65 white point
    assert np.allclose(lab[1], [0, 0, 0])
    assert np.allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, standard tables


def test_prototypes_classify_as_themselves():
    for method in ("hue", "lab", "rgb"):
        assert np.array_equal(assign_classes(prototypes(), method), np.arange(len(CLASSES)))


def test_hue_rule_on_hand_picked_colours():
    colours = {"grey70": ([0.7] * 3, "white"), "grey30": ([0.3] * 3, "black"),
               "navy": ([0, 0, 0.5], "blue"), "maroon": ([0.5, 0, 0], "red"),
               "olive": ([0.5, 0.5, 0], "yellow"), "magenta": ([1, 0, 1], "purple")}
    labels = assign_classes(np.array([c for c, _ in colours.values()]))
    assert [CLASSES[i] for i in labels] == [name for _, name in colours.values()]


def test_named_colors_drop_leaky_names_and_twins():
    names, rgb, dropped = named_colors()
    assert len(names) == 467 and rgb.shape == (467, 3) and dropped == 573
    assert not [n for n in names if LEAKY.search(n)]
    assert all(n == n.lower() for n in names)
    keys = [re.sub(r"[^a-z]", "", n) for n in names]
    assert len(set(keys)) == len(keys)  # "dark salmon" and "darksalmon" are one word
    assert "blush" in names  # contains "blu" but is no variant of blue


def test_split_sizes_disjoint_and_deterministic(data):
    assert (len(data.train_words), len(data.val_words), len(data.test_words)) == (299, 75, 93)
    words = [set(data.words(s)) for s in ("train", "val", "test")]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    again = load_colors(seed=0)
    assert again.test_words == data.test_words and again.val_words == data.val_words
    assert load_colors(seed=1).test_words != data.test_words
    no_val = load_colors(seed=0, val_frac=0.0)  # the test split does not depend on val_frac
    assert no_val.test_words == data.test_words and len(no_val.train_words) == 374
    train, val, test = (data.class_counts(s) for s in ("train", "val", "test"))
    for c in CLASSES:  # stratified: 20 % of each class held out, then 20 % of the rest
        assert abs(test[c] - 0.2 * (train[c] + val[c] + test[c])) <= 0.5
        assert abs(val[c] - 0.2 * (train[c] + val[c])) <= 0.5


def test_majority_floor(data):
    cls, acc = data.majority_floor()
    assert cls == "yellow"
    assert np.isclose(acc, data.class_counts("test")["yellow"] / 93)


def test_encode_decode_and_padding(data):
    idx, mask = data.encode(["tan", "sky"])
    assert idx.shape == (2, data.block_size) == (2, 19)
    assert mask.sum(axis=1).tolist() == [3, 3] and not idx[~mask].any()
    assert data.decode(idx[0]) == "tan"
    assert data.vocab[0] == "\0" and data.vocab_size == 29
    idx, mask, labels = data.split("test")
    assert idx.shape == (93, 19) and labels.shape == (93,)


def test_bad_inputs(data):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        data.encode(["TAN"])
    with pytest.raises(ValueError, match="longer than block_size"):
        data.encode(["a" * 20])
    with pytest.raises(ValueError, match="test_frac"):
        load_colors(test_frac=1.0)
    with pytest.raises(ValueError, match="method"):
        assign_classes(np.zeros((1, 3)), method="hsv")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        assign_classes(np.full((1, 3), 2.0))
    with pytest.raises(ValueError, match="which"):
        data.split("dev")
    with pytest.raises(ValueError, match="val_frac"):
        load_colors(val_frac=1.0)
    assert isinstance(data, ColorData)
