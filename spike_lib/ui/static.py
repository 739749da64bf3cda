"""A static rendering beside a live widget, for pages without a kernel.

A widget's output holds application/vnd.jupyter.widget-view+json, which only a running kernel
can draw: the published book (and GitHub) showed nothing in its place, or a second, static copy
had to be displayed that JupyterLab then showed twice. with_static() puts a text/html or
image/png rendering into the SAME output: JupyterLab with the kernel running prefers the live
widget and shows only it; the book prefers the static rendering (nb_mime_priority_overrides in
_config.yml). Used by lif_explorer, ConfigForm and GraphExplorer.
"""

import base64
import io


def figure_png(fig) -> str:
    """A matplotlib figure as base64 PNG text (what a notebook output stores)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def with_static(widget, *, html=None, png=None):
    """Return widget, whose displayed output also carries html (str) and/or png (base64 str)."""
    if html is None and png is None:
        raise ValueError("with_static needs html= or png=: the rendering for pages without a "
                         "kernel (figure_png(fig) turns a matplotlib figure into png)")
    live = widget._repr_mimebundle_

    def bundle(**kwargs):
        data = dict(live(**kwargs) or {})
        if html is not None:
            data["text/html"] = html
        if png is not None:
            data["image/png"] = png
        return data

    widget._repr_mimebundle_ = bundle
    return widget
