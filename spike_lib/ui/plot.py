"""Plotting helpers shared by the chapters: spike rasters, membrane traces, surrogates, losses.

Every helper draws on a matplotlib Axes it is given (or makes its own figure), sets a title,
axis labels with units and a legend when there is more than one line, and returns the Axes.
Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np

from spike_lib.core.surrogate import SURROGATES, get_surrogate


def _as_numpy(a):
    return np.asarray(a, dtype=np.float64)


def raster(ax, spk, title="Spike raster", ylabel="neuron", dt_label="timestep", color="k"):
    """Dot at (t, i) for every spike of spk (T, N) or (T,); one dot per spike, as one artist."""
    spk = _as_numpy(spk)
    if spk.ndim == 1:
        spk = spk[:, None]
    if spk.ndim != 2:
        raise ValueError(
            f"raster needs spk of shape (T, N) or (T,), got {spk.shape}; "
            "flatten the neuron axes first, e.g. spk.reshape(len(spk), -1)"
        )
    t, i = np.nonzero(spk)
    ax.scatter(t, i, s=12, marker="|", color=color, linewidths=1.5)
    ax.set_xlim(-0.5, spk.shape[0] - 0.5)
    ax.set_ylim(-0.5, spk.shape[1] - 0.5)
    ax.set_title(title)
    ax.set_xlabel(f"time t ({dt_label})")
    ax.set_ylabel(ylabel)
    return ax


def membrane(ax, mem, threshold, spk=None, title="Membrane potential", label="mem u[t]"):
    """Membrane trace mem (T,) with a dashed threshold line and, if given, spike markers."""
    mem = _as_numpy(mem)
    if mem.ndim != 1:
        raise ValueError(
            f"membrane needs one trace of shape (T,), got {mem.shape}; pick a neuron, "
            "e.g. mem[:, 0]"
        )
    t = np.arange(len(mem))
    ax.plot(t, mem, "-o", ms=3, label=label)
    ax.axhline(threshold, ls="--", color="gray", label=f"threshold = {threshold:g}")
    if spk is not None:
        ts = np.nonzero(_as_numpy(spk))[0]
        ax.plot(ts, mem[ts], "r^", ms=7, ls="none", label="spike")
    ax.set_title(title)
    ax.set_xlabel("time t (timestep)")
    ax.set_ylabel("membrane u (a.u.)")
    low, high = min(mem.min(), threshold), max(mem.max(), threshold)
    pad = 0.05 * (high - low) or 0.1
    ax.set_ylim(low - pad, high + 0.4 * (high - low) + pad)  # headroom: the legend never hides the trace
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    return ax


def surrogates(ax_grad, ax_smooth, names=None, x=None):
    """The surrogates' pseudo-derivatives g(x) on ax_grad and antiderivatives G(x) on ax_smooth.

    names: surrogate names or instances (default: all four); x: points (default [-2, 2]).
    The step H(x) is drawn in black on ax_smooth for reference.
    """
    x = np.linspace(-2, 2, 401) if x is None else _as_numpy(x)
    for name in names or list(SURROGATES):
        sg = get_surrogate(name)
        ax_grad.plot(x, sg.grad(x), label=sg.name)
        ax_smooth.plot(x, sg.smooth(x), label=sg.name)
    ax_smooth.plot(x, (x > 0).astype(float), "k", lw=1, label="step H(x)")
    ax_grad.set_title("Surrogate gradients g(x)")
    ax_smooth.set_title("Antiderivatives G(x) (smooth mode)")
    for ax, y in ((ax_grad, "g(x) = dG/dx"), (ax_smooth, "G(x)")):
        ax.set_xlabel("x = mem - threshold (a.u.)")
        ax.set_ylabel(y)
        ax.legend(fontsize=8)
    return ax_grad, ax_smooth


def plot_surrogates(names=None, x=None, figsize=(8, 3)):
    """A new figure with surrogates(...) side by side; returns (fig, (ax_grad, ax_smooth))."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=figsize, dpi=80, layout="constrained")
    surrogates(axes[0], axes[1], names, x)
    return fig, axes


def loss_curve(
    ax,
    losses,
    title="Training loss",
    xlabel="step",
    ylabel="loss",
    label="train",
    log=False,
    **more,
):
    """Plot one or more loss curves: losses is a list, and `more` adds named curves (val=...)."""
    curves = {label: losses, **more}
    for name, values in curves.items():
        values = _as_numpy(values)
        ax.plot(np.arange(len(values)), values, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(curves) > 1:
        ax.legend()
    return ax


def rate_curve(ax, current, rates, label="simulated", title="Firing rate vs input current", **more):
    """Firing rate (spikes per timestep) against a constant input current; `more` adds curves."""
    curves = {label: rates, **more}
    for name, values in curves.items():
        ax.plot(_as_numpy(current), _as_numpy(values), label=name)
    ax.set_title(title)
    ax.set_xlabel("input current x (a.u. per timestep)")
    ax.set_ylabel("rate (spikes / timestep)")
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return ax
