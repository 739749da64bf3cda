"""Training curves from run logs: loss, validation BPC, learning rate and per-block firing rates.

run_series turns log records into the numbers a figure shows (tested without a display);
draw_runs draws one or several runs on a 2 x 2 grid. Taught in: notebooks/10_toolkit.ipynb
"""

import math
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import atomic_path

DERIVED_RATES = (".kv", ".out_in")  # products of other neurons' spikes, not neurons themselves


def block_rates(rates: dict) -> dict:
    """Mean firing rate of the neurons of each block: {"blocks.0": r, ...} (derived rates left out)."""
    groups = {}
    for name, value in rates.items():
        if name.endswith(DERIVED_RATES) or not name.startswith("blocks."):
            continue
        block = ".".join(name.split(".")[:2])
        groups.setdefault(block, []).append(value)
    return {b: float(np.mean(v)) for b, v in sorted(groups.items(), key=lambda kv: _num(kv[0]))}


def _num(block):
    return int(block.split(".")[1])


def run_series(records) -> dict:
    """What a run's figure shows, from its log records (dicts with step, loss, lr, ...).

    Returns step, loss, lr, grad_norm, tokens_per_s (every record), val_step, val_loss, val_bpc
    (records with an evaluation) and rates {block: list over val_step} (NaN where missing).
    """
    out = {k: [] for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s",
                           "val_step", "val_loss", "val_bpc")}
    per_eval = []
    for rec in records:
        if "step" not in rec or "loss" not in rec:
            continue
        for key in ("step", "loss", "lr", "grad_norm", "tokens_per_s"):
            out[key].append(rec.get(key, math.nan))
        if "val_loss" in rec:
            out["val_step"].append(rec["step"])
            out["val_loss"].append(rec["val_loss"])
            out["val_bpc"].append(rec.get("val_bpc", math.nan))
            per_eval.append(block_rates(rec.get("firing_rates") or {}))
    blocks = sorted({b for r in per_eval for b in r}, key=_num)
    out["rates"] = {b: [r.get(b, math.nan) for r in per_eval] for b in blocks}
    return out


def draw_runs(series: dict, fig=None, references=None):
    """Draw {label: run_series(...)} on a 2 x 2 grid: loss, val BPC, lr, firing rates vs step.

    references: {label: bpc} drawn as dashed horizontal lines on the validation panel (count
    n-grams on the same text, baselines.log_references), so a curve is read against them.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(9, 5.5), dpi=80, layout="constrained")
    ax_loss, ax_bpc, ax_lr, ax_rate = fig.subplots(2, 2).ravel()
    for i, (label, s) in enumerate(series.items()):
        color = f"C{i % 10}"
        ax_loss.plot(s["step"], s["loss"], color=color, lw=1, label=label)
        ax_bpc.plot(s["val_step"], s["val_bpc"], "o-", ms=3, color=color, label=label)
        ax_lr.plot(s["step"], s["lr"], color=color, label=label)
        for j, (block, values) in enumerate(s["rates"].items()):
            ax_rate.plot(s["val_step"], values, marker="o", ms=3, color=color,
                         ls=("-", "--", ":", "-.")[j % 4], label=f"{label}: {block}")
    for j, (label, bpc) in enumerate((references or {}).items()):
        if not (isinstance(bpc, (int, float)) and math.isfinite(bpc)):
            raise ValueError(f"reference {label!r} = {bpc!r}: give a finite bits per character")
        ax_bpc.axhline(bpc, ls=(0, (4, 2 + 2 * j)), lw=1, color=("0.45", "black", "0.7")[j % 3],
                       label=f"{label} ({bpc:.3f})")
    titles = (("Training loss", "loss (nats/token)"), ("Validation", "bits per character"),
              ("Learning rate", "lr"), ("Firing rate per block", "spikes / neuron / timestep"))
    for ax, (title, ylabel) in zip((ax_loss, ax_bpc, ax_lr, ax_rate), titles):
        ax.set_title(title)
        ax.set_xlabel("step (updates)")
        ax.set_ylabel(ylabel)
        ax.ticklabel_format(axis="y", useOffset=False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    return fig


def plot_runs(runs, out=None) -> dict:
    """Read each run folder's log.jsonl, draw them together, save a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from spike_lib.train.runfolder import check_out_file, read_log

    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError("give at least one run folder to plot")
    out = Path(out) if out is not None else runs[0] / "plot.png"
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out} must end in .png")
    check_out_file(out)  # before any work: a folder, no permission or a full disk
    labels = [r.name or str(r) for r in runs]
    if len(set(labels)) < len(labels):
        labels = [str(r) for r in runs]
    series = {label: run_series(read_log(r)) for label, r in zip(labels, runs)}
    empty = [label for label, s in series.items() if not s["step"]]
    if empty:
        raise ValueError(f"no training records in {empty}: train first, then plot")
    fig = draw_runs(series)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return {"out": str(out), "runs": len(runs),
            "last_step": {k: s["step"][-1] for k, s in series.items()}}
