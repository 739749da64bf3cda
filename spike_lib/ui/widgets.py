"""Interactive explorers (ipywidgets) that also draw one static figure for the published book.

The drawing is split in two: a pure function computes what is shown (tested), and a thin
widget layer redraws it when a slider moves. Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np

from spike_lib.core.config import RESETS, check_range
from spike_lib.core.neurons import check_lif_args, direct_encode, lif_forward


def lif_explorer_data(
    beta=0.9, threshold=1.0, current=0.3, num_steps=50, reset="subtract", currents=None
):
    """What lif_explorer draws, for one setting of its sliders.

    Returns a dict: mem and spk (T,) for a constant input `current`, its firing rate
    (spikes per timestep), and the rate curve `rates` over `currents` (default 0..2 threshold).
    """
    check_lif_args(beta, threshold, reset)
    check_range("current", current, 0.0)
    check_range("num_steps", num_steps, 1, kind=int)
    if currents is None:
        currents = np.linspace(0.0, 2.0 * threshold, 81)
    currents = np.asarray(currents, dtype=np.float64)
    spk, mem = lif_forward(direct_encode(np.float64(current), num_steps), beta, threshold, reset)
    spk_c, _ = lif_forward(direct_encode(currents, num_steps), beta, threshold, reset)  # (T, C)
    return {
        "mem": mem,
        "spk": spk,
        "rate": float(spk.mean()),
        "currents": currents,
        "rates": spk_c.mean(axis=0),
        "threshold": threshold,
        "current": current,
    }


def draw_lif_explorer(data, fig=None):
    """Draw lif_explorer_data's dict: membrane trace (left), rate vs current (right)."""
    import matplotlib.pyplot as plt

    from spike_lib.ui.plot import membrane, rate_curve

    if fig is None:
        fig = plt.figure(figsize=(8, 3), dpi=80, layout="constrained")
    ax_mem, ax_rate = fig.subplots(1, 2)
    membrane(
        ax_mem,
        data["mem"],
        data["threshold"],
        data["spk"],
        title=f"Constant input x = {data['current']:.2f}",
    )
    rate_curve(ax_rate, data["currents"], data["rates"])
    ax_rate.plot([data["current"]], [data["rate"]], "ro", label=f"x = {data['current']:.2f}")
    ax_rate.legend(fontsize=8)
    return fig


def lif_explorer(beta=0.9, threshold=1.0, current=0.3, num_steps=50, reset="subtract", static=True):
    """Sliders for beta, threshold, input current, num_steps and a reset menu, redrawn live.

    With static=True the figure for the starting values is also stored in the widget's output
    (spike_lib.ui.static), so a page without a running kernel (the book) shows it, while
    JupyterLab with the kernel shows only the live widget.
    Returns the widget (display it, or leave it as the cell's last expression).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    lif_explorer_data(beta, threshold, current, num_steps, reset)  # validate before building
    controls = {
        "beta": w.FloatSlider(value=beta, min=0.0, max=1.0, step=0.01, description="beta"),
        "threshold": w.FloatSlider(
            value=threshold, min=0.1, max=2.0, step=0.05, description="threshold"
        ),
        "current": w.FloatSlider(value=current, min=0.0, max=2.0, step=0.01, description="input x"),
        "num_steps": w.IntSlider(value=num_steps, min=5, max=200, description="num_steps"),
        "reset": w.Dropdown(value=reset, options=list(RESETS), description="reset"),
    }

    def redraw(**values):
        draw_lif_explorer(lif_explorer_data(**values))
        plt.show()

    out = w.interactive_output(redraw, controls)
    ui = w.VBox([w.HBox(list(controls.values())[:3]), w.HBox(list(controls.values())[3:]), out])
    if static:
        from spike_lib.ui.static import figure_png, with_static

        fig = draw_lif_explorer(lif_explorer_data(beta, threshold, current, num_steps, reset))
        png = figure_png(fig)
        plt.close(fig)
        return with_static(ui, png=png)
    return ui
