"""A live training dashboard for notebooks (ipywidgets + matplotlib) that ends as a static figure.

Pass a Dashboard as the callback of spike_lib.train.runs.train_run (or numpy_impl.train.train): it
collects each step's record and redraws loss, validation BPC, learning rate and per-block
firing rates every few steps; finish() replaces the live view by one static figure, which is
what the published book shows. Taught in: notebooks/10_toolkit.ipynb
"""

from spike_lib.core.config import check_range
from spike_lib.ui.runplot import draw_runs, run_series


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a widget can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class Dashboard:
    """Callback dash(step, record): keeps every record, redraws every `every` steps.

    record: the dict a run logs (step, loss, lr, grad_norm and, at evaluations, val_bpc and
    firing_rates). A record without "step" (numpy_impl.train's callback) gets step + 1.
    live=None shows the widget only inside a notebook; live=False only collects (tests).
    references: {label: bpc}, dashed lines on the validation panel (baselines.log_references:
    count n-grams scored on the same held-out text), so the curve is read against them.
    """

    def __init__(self, label="run", every=10, live=None, references=None):
        check_range("every", every, 1, kind=int)
        self.label, self.every, self.records = label, every, []
        self.references = dict(references or {})
        self.live = in_notebook() if live is None else live
        self.out = None
        if self.live:
            import ipywidgets
            from IPython.display import display

            self.out = ipywidgets.Output()
            display(self.out)

    def __call__(self, step, record):
        self.records.append({"step": step + 1, **record})
        if self.live and len(self.records) % self.every == 0:
            self.redraw()

    def data(self) -> dict:
        """What the dashboard draws now: run_series of the records so far."""
        return run_series(self.records)

    def figure(self):
        """A new matplotlib figure of the current data (the caller closes it)."""
        return draw_runs({self.label: self.data()}, references=self.references)

    def redraw(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.figure()
        with self.out:
            self.out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def finish(self):
        """Replace the live view by one static figure in the cell's output.

        Live, the figure is displayed and closed (None is returned, so it is not shown twice);
        otherwise the figure is returned, for the caller to save or show.
        """
        import matplotlib.pyplot as plt

        if self.out is not None:  # emptied and hidden, not closed: a closed Output that a form
            self.out.clear_output()  # still holds shows "model not found" after a page reload
            self.out.layout.display = "none"
            self.out = None
        fig = self.figure()
        if self.live:
            from IPython.display import display

            display(fig)
            plt.close(fig)
            return None
        return fig
