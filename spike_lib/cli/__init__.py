"""The command line: `python -m spike_lib COMMAND ...`.

Each command lives in its own module that defines `add_arguments(parser)` and `run(args)`.
`run` returns an exit code, or a dict of numbers: with `--json` the dict is printed as one
JSON object on the last line, otherwise as aligned `key: value` lines.
Taught in: book/how_to_use.md
"""

import argparse
import importlib
import json
import math
import numbers
import sys

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "info": ("spike_lib.cli.info", "versions, quick mode and BLAS of this machine"),
    "energy": ("spike_lib.core.energy", "energy estimate of a layer: ANN MACs vs SNN ACs (45 nm)"),
    "bench": ("spike_lib.train.bench", "benchmarks: matmul throughput and more (ratios in one run)"),
    "kernel": ("spike_lib.core.blas", "fast BLAS for MLX on Linux: status, and --install into Jupyter"),
    "check": ("spike_lib.train.check", "gradient check of the whole SpikeLLM (smooth mode, float64)"),
    "graph": ("spike_lib.ui.graph", "the SpikeLLM module tree: parameters, shapes, spike rates"),
    "data": ("spike_lib.data.cli", "build the corpus from pinned packages, or check it"),
    "tokenize": ("spike_lib.tokenizers.cli", "tokenize a file: tokens, chars/token, round trip"),
    "qa": ("spike_lib.data.qa", "question/answer pairs: check a file, build offline, ask Claude"),
    "train": ("spike_lib.cli.cmd_train", "train a SpikeLLM into a run folder (log, checkpoints, resume)"),
    "eval": ("spike_lib.cli.cmd_eval", "loss, perplexity, BPC, firing rate and energy of a checkpoint"),
    "generate": ("spike_lib.cli.cmd_generate", "sample text from a checkpoint (--stream)"),
    "plot": ("spike_lib.cli.cmd_plot", "draw and compare runs: loss, val BPC, lr, firing rates"),
    "plugins": ("spike_lib.train.registry", "list neurons, attentions, tokenizers, datasets; load plug-ins"),
    "finetune": ("spike_lib.train.finetune", "fine-tune on QA: full, frozen layers or LoRA adapters"),
    "recall": ("spike_lib.train.recall", "multi-query associative recall: train a probe, accuracy vs chance"),
    "baseline": ("spike_lib.train.baselines", "count n-gram BPC with eval's protocol: the reference point"),
    "probe": ("spike_lib.train.probes", "context use of a checkpoint: context gain, perturbation KL, gates"),
    "repair": ("spike_lib.cli.cmd_repair", "put back what a killed save left (run, checkpoint, adapter)"),
    "qa-eval": ("spike_lib.train.qa_eval", "exact match and F1 of greedy answers or best spans on a QA JSONL file"),
    "qa-baselines": ("spike_lib.train.qa_baselines", "QA reference points: context-free prior and copy heuristic, per type"),
    "fuse": ("spike_lib.train.fuse", "merge a LoRA adapter into its base: a standalone checkpoint"),
    "soup": ("spike_lib.train.soup", "average QA models fine-tuned from one base (a model soup)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spike_lib",
        description="Spiking Transformers from Scratch: the course's command line.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        importlib.import_module(module).add_arguments(p)
    return parser


def _finite(value, key, bad):
    """value with every NaN or infinite number replaced by None; their keys go into bad."""
    if isinstance(value, dict):
        return {k: _finite(v, f"{key}.{k}" if key else str(k), bad) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{key}[{i}]", bad) for i, v in enumerate(value)]
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        if not math.isfinite(float(value)):
            bad.append(f"{key}={float(value)}")
            return None
        return float(value)
    return value


def emit(result: dict, as_json: bool) -> int:
    """Print a command's numbers: one JSON line, or `key: value` lines for people.

    JSON has no NaN: a NaN or infinite number is printed as null, an "error" field names it,
    and the exit code is 1 (a NaN-weight checkpoint gives such numbers)."""
    bad = []
    clean = _finite(result, "", bad)
    if bad:
        clean["error"] = f"not a finite number: {', '.join(bad)} (printed as null)"
    if as_json:
        print(json.dumps(clean, sort_keys=True, allow_nan=False))
    else:
        width = max((len(k) for k in result), default=0)
        for key, value in result.items():
            if isinstance(value, float):
                value = f"{value:.4g}"
            print(f"{key:<{width}}  {value}")
        if bad:
            print(f"error: {clean['error']}", file=sys.stderr)
    return 1 if bad else 0


def main(argv=None) -> int:
    if argv is None:  # run as a program: give MLX the fast system BLAS (see spike_lib.core.blas)
        from spike_lib.core.blas import reexec_with_openblas

        reexec_with_openblas(sys.argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # for train.finetune.command_line
    if args.command is None:
        parser.print_help()
        return 0
    try:
        result = importlib.import_module(args._module).run(args)
    except ValueError as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    if isinstance(result, dict):
        return emit(result, args.json)
    return int(result or 0)
