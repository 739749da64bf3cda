"""Colour names labelled with one of 8 basic colours by their RGB value, from matplotlib's lists.

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import re
from dataclasses import dataclass

import numpy as np

from spike_lib.core.config import check_choice, check_range

# sources: matplotlib.colors.XKCD_COLORS (949 names from the xkcd colour survey, CC0) and
# CSS4_COLORS (148 names of the W3C CSS Color Module). the label comes from the colour, not
# from its name: the RGB value goes to CIELAB and takes the nearest prototype hue.
CLASSES = ("blue", "red", "green", "yellow", "white", "black", "orange", "purple")
# a name containing a class word or an obvious variant would give its label away
LEAKY = re.compile(r"blue|bluish|blurple|red|green|yellow|white|whitish|black|orang|purpl")
METHODS = ("hue", "lab", "rgb")
PAD = 0  # index 0 of the vocabulary is padding


def srgb_to_lab(rgb):
    """sRGB in [0, 1] (..., 3) -> CIELAB (..., 3) under the D65 white point (CIE 1976).

    Undo the sRGB gamma, map linear RGB to XYZ (IEC 61966-2-1 matrix), then
    L* = 116 f(Y) - 16, a* = 500 (f(X) - f(Y)), b* = 200 (f(Y) - f(Z)).
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / m.sum(axis=1)  # white point = XYZ of sRGB white, so white -> (100, 0, 0)
    d = 6.0 / 29.0
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4.0 / 29.0)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def prototypes():
    """The RGB (8, 3) of each class: the xkcd survey's own colour for that name."""
    from matplotlib.colors import XKCD_COLORS, to_rgb

    return np.array([to_rgb(XKCD_COLORS[f"xkcd:{c}"]) for c in CLASSES])


def assign_classes(rgb, method="hue", chroma_min=15.0):
    """Label colours (N, 3) in [0, 1] with class indices (N,).

    "hue" (default): in CIELAB, a colour with chroma C* = sqrt(a*^2 + b*^2) < chroma_min is
        achromatic: white if L* >= 50 else black. Any other colour takes the chromatic class
        (blue, red, green, yellow, orange, purple) whose prototype hue angle atan2(b*, a*)
        is nearest. Colour naming follows hue first (Berlin & Kay 1969).
    "lab": nearest prototype by Euclidean distance in CIELAB (Delta E 1976).
    "rgb": nearest prototype by Euclidean distance in sRGB.
    """
    check_choice("method", method, METHODS)
    check_range("chroma_min", chroma_min, 0.0)
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.min() < 0 or rgb.max() > 1:
        raise ValueError(f"rgb must be (N, 3) with values in [0, 1], got shape {rgb.shape}")
    protos = prototypes()
    if method == "rgb":
        return np.argmin(((rgb[:, None] - protos[None]) ** 2).sum(-1), axis=1)
    lab, plab = srgb_to_lab(rgb), srgb_to_lab(protos)
    if method == "lab":
        return np.argmin(((lab[:, None] - plab[None]) ** 2).sum(-1), axis=1)
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    phue = np.degrees(np.arctan2(plab[:, 2], plab[:, 1]))
    dist = np.abs((hue[:, None] - phue[None] + 180.0) % 360.0 - 180.0)  # (N, 8) angle gap
    dist[:, [CLASSES.index("white"), CLASSES.index("black")]] = np.inf
    labels = np.argmin(dist, axis=1)
    grey = np.hypot(lab[:, 1], lab[:, 2]) < chroma_min
    light = lab[:, 0] >= 50.0
    labels[grey] = np.where(light[grey], CLASSES.index("white"), CLASSES.index("black"))
    return labels


def named_colors():
    """(names, rgb (N, 3), n_dropped): XKCD then CSS4, lower-cased, leaky names dropped.

    Two names that differ only in spaces or punctuation ("dark salmon", "darksalmon") count
    as one word; the first (XKCD) is kept, so no held-out word has a twin in training.
    """
    from matplotlib.colors import CSS4_COLORS, XKCD_COLORS, to_rgb

    raw = [(k.removeprefix("xkcd:"), v) for k, v in XKCD_COLORS.items()]
    raw += list(CSS4_COLORS.items())
    names, rgb, seen, dropped = [], [], set(), 0
    for name, value in raw:
        name = name.lower().strip()
        key = re.sub(r"[^a-z]", "", name)
        if LEAKY.search(name):
            dropped += 1
            continue
        if key in seen:
            continue
        seen.add(key)
        names.append(name)
        rgb.append(to_rgb(value))
    return names, np.array(rgb), dropped


SPLITS = ("train", "val", "test")


@dataclass
class ColorData:
    """Words, RGB values and labels of train, validation and held-out (test) splits, with a
    character vocabulary. Validation words are split off the training words: choose designs
    on "val", report "test" once."""

    train_words: list
    train_rgb: np.ndarray
    train_labels: np.ndarray
    test_words: list
    test_rgb: np.ndarray
    test_labels: np.ndarray
    vocab: str  # vocab[i] is the character of token i; vocab[0] is padding
    block_size: int  # longest word, in characters
    n_dropped: int
    val_words: list = None
    val_rgb: np.ndarray = None
    val_labels: np.ndarray = None

    def words(self, which="train") -> list:
        check_choice("which", which, SPLITS)
        return getattr(self, f"{which}_words")

    def labels(self, which="train") -> np.ndarray:
        check_choice("which", which, SPLITS)
        return getattr(self, f"{which}_labels")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, words):
        """Words -> (idx (N, block_size) int64, mask (N, block_size) bool, True = real character)."""
        stoi = {c: i for i, c in enumerate(self.vocab) if i != PAD}
        idx = np.full((len(words), self.block_size), PAD, dtype=np.int64)
        for row, w in enumerate(words):
            if len(w) > self.block_size:
                raise ValueError(f"word {w!r} is longer than block_size={self.block_size}")
            unknown = set(w) - set(stoi)
            if unknown:
                raise ValueError(f"word {w!r} has characters outside the vocabulary: {unknown}")
            idx[row, : len(w)] = [stoi[c] for c in w]
        return idx, idx != PAD

    def decode(self, idx) -> str:
        return "".join(self.vocab[i] for i in idx if i != PAD)

    def split(self, which="train"):
        """(idx, mask, labels) of the "train", "val" or "test" split, ready for the classifier."""
        return (*self.encode(self.words(which)), self.labels(which))

    def class_counts(self, which="train") -> dict:
        labels = self.labels(which)
        return {c: int((labels == i).sum()) for i, c in enumerate(CLASSES)}

    def majority_floor(self, which="test"):
        """(class, accuracy) of always answering the most common training class, on `which`."""
        top = int(np.bincount(self.train_labels, minlength=len(CLASSES)).argmax())
        return CLASSES[top], float((self.labels(which) == top).mean())


def load_colors(seed=0, test_frac=0.2, val_frac=0.2, method="hue"):
    """Build the dataset: label every colour, hold out test_frac of each class (seeded), then
    split val_frac of each class's remaining words off for validation.

    Both splits are stratified, so every split has the same class mix. The test split does not
    depend on val_frac (the validation words are drawn after it, from the same generator).
    """
    check_range("seed", seed, 0, kind=int)
    for field, frac in (("test_frac", test_frac), ("val_frac", val_frac)):
        check_range(field, frac, 0.0, 1.0)
        if frac >= 1.0:
            raise ValueError(f"{field}={frac} is invalid: keep some words for training (< 1)")
    if test_frac == 0.0:
        raise ValueError("test_frac=0.0 is invalid: hold out some words (allowed range (0, 1))")
    names, rgb, dropped = named_colors()
    labels = assign_classes(rgb, method)
    rng = np.random.default_rng(seed)
    split = np.zeros(len(names), int)  # 0 train, 1 val, 2 test
    for c in range(len(CLASSES)):
        members = np.flatnonzero(labels == c)
        split[rng.permutation(members)[: round(test_frac * members.size)]] = 2
    for c in range(len(CLASSES)):
        members = np.flatnonzero((labels == c) & (split == 0))
        split[rng.permutation(members)[: round(val_frac * members.size)]] = 1
    order = [np.flatnonzero(split == s) for s in range(3)]
    vocab = "\0" + "".join(sorted(set("".join(names))))
    parts = [([names[i] for i in o], rgb[o], labels[o]) for o in order]
    return ColorData(*parts[0], *parts[2], vocab, max(len(n) for n in names), dropped, *parts[1])
