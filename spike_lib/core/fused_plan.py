"""The fused Q/K/V (+ token shift) matrix of a one-token step, computed once from the weights.

Both fast generation paths (spike_lib.numpy_impl.generate_fast, spike_lib.mlx_impl.generate_fast)
build their plan here, from NumPy copies of the weights, so the two read the same numbers:

- Q, K and V are one matmul with W_qkv = [W_Q | W_K | W_V] (D, 3D);
- with token shift the previous token's attention input x' is extra columns of the input,
  since x_k W_K = (mu_k x + (1 - mu_k) x') W_K = x (diag(mu_k) W_K) + x' (diag(1 - mu_k) W_K):
      [x | x'] @ [[W_Q, diag(mu_k) W_K, diag(mu_v) W_V],
                  [0,   diag(1 - mu_k) W_K, diag(1 - mu_v) W_V]]            (2D, 3D)
  gives all three; and since x' W was the previous token's own product, each token computes
  x @ (D, 5D) once: 3D columns for itself and 2D for the next token (fuse_qkv), so only its
  own spikes select weight rows;
- one LIF covers Q, K and V when the three neurons have the same (beta, threshold, reset).
Which attentions fuse: SDSA, the running-mean SDSA (not the decaying one) and the matrix-state
attention with power 1 (with or without its leak lambda), and their subclasses (each port passes its own classes, which have the
same names). Any other attention keeps its module step.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import numpy as np

KINDS = {"SDSA": "sdsa", "MeanSDSA": "mean", "SpikeMatrixAttention": "matrix"}


def plain_lif(mod, lif_cls):
    """(beta, threshold, reset, levels) of a built-in spiking LIF (exactly lif_cls, not in smooth
    mode, reset "subtract" or "zero"; levels = D, spikes j/D), else None: the caller then calls
    the module itself."""
    if type(mod) is lif_cls and not mod.smooth and mod.reset in ("subtract", "zero"):
        return (float(mod.beta), float(mod.threshold), mod.reset, int(getattr(mod, "levels", 1)))
    return None


def fused_kind(attn, classes):
    """"sdsa", "mean" or "matrix" for an attention the one-token step fuses, else None.

    classes: the port's {"SDSA": SDSA, "MeanSDSA": ..., "DecaySDSA": ...,
    "SpikeMatrixAttention": ...} (isinstance, so subclasses fuse too)."""
    if isinstance(attn, classes["DecaySDSA"]):  # its state decays: the module step
        return None
    kind = next((k for n, k in KINDS.items() if isinstance(attn, classes[n])), None)
    if kind == "matrix" and getattr(attn, "power", 1) != 1:  # a key/value cache, not S and z
        return None
    return kind


def fuse_qkv(w_q, w_k, w_v, biases=None, shift=None):
    """(W, b) of one matmul whose output starts with [pre_Q | pre_K | pre_V] (..., 3D).

    w_q, w_k, w_v: (D, D) float32; biases: None or (b_q, b_k, b_v); shift: None or (mu_k, mu_v),
    each (D,). Without shift W is (D, 3D). With shift W is (D, 5D), the module docstring's
    matrix with its x_prev half moved ahead one token:
        x @ [W_Q, diag(mu_k) W_K, diag(mu_v) W_V, diag(1 - mu_k) W_K, diag(1 - mu_v) W_V]
    whose last 2D outputs are what this token adds to the NEXT token's pre_K and pre_V (the
    caller keeps them in the state as "kv_ahead"), so every token multiplies only its own x,
    and reads only the weight rows of its own spikes. b is None or (3D,), for pre_Q|K|V.
    """
    w = np.concatenate([w_q, w_k, w_v], axis=1)  # (D, 3D)
    if shift is not None:
        mk, mv = (np.asarray(m)[:, None] for m in shift)
        w = np.concatenate([w_q, mk * w_k, mv * w_v, (1 - mk) * w_k, (1 - mv) * w_v], axis=1)
    b = None if biases is None else np.concatenate(biases)
    return np.ascontiguousarray(w), b


def qkv_plan(attn, classes, projections, neurons, shift=None):
    """The backend-free part of an attention's one-token plan, or None (the module step runs).

    attn: the attention module (its class and power are read); classes: as fused_kind; projections: [(W, b or None)] of
    q_proj, k_proj, v_proj as NumPy arrays, None for one that is not a plain Linear; neurons:
    [plain_lif(...)] of q_lif, k_lif, v_lif; shift: (mu_k, mu_v) as NumPy, or None.
    Returns {"kind", "w", "b", "shift", "qkv_lif"}: qkv_lif is the (beta, threshold, reset)
    shared by the three neurons, or None when they differ (each is then called on its third).
    """
    kind = fused_kind(attn, classes)
    if kind is None or any(p is None for p in projections):
        return None
    if len({p[1] is None for p in projections}) > 1:  # some with a bias, some without
        return None
    biases = None if projections[0][1] is None else [p[1] for p in projections]
    w, b = fuse_qkv(*(p[0] for p in projections), biases=biases, shift=shift)
    same = neurons[0] is not None and neurons.count(neurons[0]) == 3
    return {"kind": kind, "w": w, "b": b, "shift": shift is not None,
            "qkv_lif": neurons[0] if same else None}
