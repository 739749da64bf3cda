"""Checks for chapter 2's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import numpy as np

from spike_lib.numpy_impl.attention import sdsa_ops, softmax_attention_ops

# exercise 1: SDSA on 3 tokens by hand (T = 1, one head, D = 4)
EX1 = {
    "Q": [[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1]],
    "K": [[1, 1, 0, 0], [1, 0, 1, 1], [0, 1, 1, 0]],
    "V": [[1, 0, 0, 1], [1, 1, 1, 0], [0, 1, 1, 1]],
    "attn_threshold": 1.5,
}
TARGET_ACC = 0.30  # exercise 5: held-out accuracy to beat (the majority floor is 0.226)


def _correct(name):
    print(f"{name}: correct")


def ex1_reference():
    """Q * SN(sum_l K * V) for EX1 with one timestep: SN fires where the sum > threshold."""
    q, k, v = (np.array(EX1[n], dtype=float) for n in "QKV")
    return q * ((k * v).sum(axis=0) > EX1["attn_threshold"])


def check_sdsa_by_hand(out):
    """Exercise 1: out is the (3, 4) output Q * SN(sum over tokens of K * V) for EX1."""
    out = np.asarray(out, dtype=float)
    ref = ex1_reference()
    assert out.shape == ref.shape, f"the answer has one row per token and one column per channel: {ref.shape}"
    assert set(np.unique(out)) <= {0.0, 1.0}, "every entry is a spike (0 or 1): Q is masked, not scaled"
    q, k, v = (np.array(EX1[n], dtype=float) for n in "QKV")
    if np.array_equal(out, q * ((k * v).sum(axis=0) > 0)):
        raise AssertionError("SN has threshold 1.5: a column sum of 1 does not fire")
    if np.array_equal(out, q * ((q * k).sum(axis=0) > EX1["attn_threshold"])):
        raise AssertionError("the sum is over K * V (keys AND values), not Q * K")
    assert np.array_equal(out, ref), (
        "not yet: first K * V (1 only where both are 1), then the column sums, then SN (sum > 1.5), "
        "then keep Q's spikes only in the channels where SN fired"
    )
    _correct("SDSA by hand")


def check_op_count(fn):
    """Exercise 2: fn(L, D) -> (sdsa_adds, softmax_macs) for the attention core of one step."""
    for n_tok, d in ((3, 4), (16, 32), (128, 64)):
        adds, macs = fn(n_tok, d)
        ref_adds, ref_macs = sdsa_ops(n_tok, d)["add"], softmax_attention_ops(n_tok, d)["mac"]
        assert adds == ref_adds, (
            f"SDSA with L={n_tok}, D={d}: the column sum adds each of the L*D products of K*V "
            f"once, {ref_adds} additions; you gave {adds}"
        )
        assert macs == ref_macs, (
            f"softmax with L={n_tok}, D={d}: Q K^T is an (L, D) x (D, L) product and A V an "
            f"(L, L) x (L, D) one, {ref_macs} MACs in all; you gave {macs}"
        )
    _correct("op counts")


def check_causal_kv(fn):
    """Exercise 3: fn(k, v) with spikes (T, L, D) returns the causal sum over positions <= l."""
    rng = np.random.default_rng(2)
    k, v = ((rng.random((3, 5, 4)) < 0.5).astype(np.float32) for _ in range(2))
    out = np.asarray(fn(k, v))
    ref = np.cumsum(k * v, axis=1)
    assert out.shape == ref.shape, f"keep one sum per position: shape {ref.shape}, got {out.shape}"
    if np.allclose(out, np.cumsum(k * v, axis=0)):
        raise AssertionError("that sums over timesteps (axis 0); sum over token positions (axis 1)")
    if np.allclose(out, np.broadcast_to((k * v).sum(axis=1, keepdims=True), ref.shape)):
        raise AssertionError("position l may only see positions <= l: use a cumulative sum")
    assert np.allclose(out, ref), "position l needs sum_{l' <= l} k[l'] * v[l']"
    _correct("causal K*V sum")


def check_kv_backward(fn):
    """Exercise 4: s = sum_l k[l] * v[l] (keepdims); fn(ds, k, v) returns (dk, dv)."""
    rng = np.random.default_rng(3)
    k, v = ((rng.random((2, 5, 4)) < 0.5).astype(np.float64) for _ in range(2))
    ds = rng.standard_normal((2, 1, 4))
    dk, dv = (np.asarray(a) for a in fn(ds, k, v))
    assert dk.shape == k.shape and dv.shape == v.shape, (
        "every token gets a gradient: broadcast ds (T, 1, D) over the L positions"
    )
    if np.allclose(dk, ds * k):
        raise AssertionError("the gradient of k * v with respect to k is v, not k")
    assert np.allclose(dk, ds * v) and np.allclose(dv, ds * k), "ds/dk[l] = v[l], ds/dv[l] = k[l]"
    _correct("backward of the K*V column sum")


def check_beat_target(model, data, target=TARGET_ACC):
    """Exercise 5: the trained model's accuracy on the held-out words must exceed `target`."""
    from spike_lib.numpy_impl.classifier import evaluate

    acc, _ = evaluate(model, *data.split("test"))
    floor = data.majority_floor()[1]
    assert acc > target, (
        f"held-out accuracy {acc:.3f} does not beat {target:.3f} (majority floor {floor:.3f}); "
        "try more timesteps, another threshold, or more training steps"
    )
    print(f"held-out accuracy {acc:.3f} > {target:.3f}")
    _correct("beat the target")
