"""`python -m spike_lib plot RUN...`: draw and compare runs from their log.jsonl.

Taught in: notebooks/10_toolkit.ipynb
"""


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders made by `train`")
    parser.add_argument("--out", help="PNG file to write (default: RUN/plot.png)")


def run(args) -> dict:
    from spike_lib.ui.runplot import plot_runs

    return plot_runs(args.runs, args.out)
