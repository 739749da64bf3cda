"""`python -m spike_lib train`: train a SpikeLLM into a run folder, or resume it.

Data parallel on R processes: `mlx.launch -n 2 --backend ring -- python -m spike_lib train
--backend mlx ...` (book/distributed.md). Taught in: notebooks/10_toolkit.ipynb
"""

import argparse
import sys


def add_arguments(parser) -> None:
    # defaults are None: a new run takes spike_lib.train.runs.DEFAULTS, a resumed one its saved value
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/tiny-char")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last good checkpoint")
    parser.add_argument("--config", choices=["tiny", "small", "book"], help="model preset (tiny)")
    parser.add_argument("--tokenizer", help="char, syllable, bpe, gpt2 or a saved .json "
                        "(default: char for tiny, bpe otherwise); sets vocab_size")
    parser.add_argument("--backend", choices=["numpy", "mlx"], help="numpy (default) or mlx")
    parser.add_argument("--steps", type=int, help="total updates (200)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (16)")
    parser.add_argument("--lr", type=float, help="peak learning rate (3e-3)")
    parser.add_argument("--warmup", type=int, help="warmup steps before the cosine decay (20)")
    parser.add_argument("--eval-every", type=int, help="steps between validations (50)")
    parser.add_argument("--ckpt-every", type=int, help="steps between checkpoints (eval-every)")
    parser.add_argument("--val-tokens", type=int, help="validation tokens per evaluation (4096)")
    parser.add_argument("--seed", type=int, help="weights and batches (0)")
    parser.add_argument("--spiking", action=argparse.BooleanOptionalAction, default=None,
                        help="--no-spiking trains the non-spiking twin")
    parser.add_argument("--attention", help="sdsa (default), softmax or a registered plug-in")
    parser.add_argument("--metadata", action="store_const", const=True, default=None,
                        help="prefix each chunk with its document's category (metadata conditioning)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a field of the preset's Config (repeatable), e.g. "
                        "--set n_layer=6 --set n_embd=192; saved in run.json")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="stop after this much training time with a checkpoint; the cosine "
                        "schedule is planned over the steps that fit (measured on the first "
                        "steps); --steps becomes an upper bound")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


OPTIONS = ("config", "tokenizer", "backend", "steps", "batch_size", "lr", "warmup",
           "eval_every", "ckpt_every", "val_tokens", "seed", "spiking", "attention", "metadata",
           "time_budget")


def run(args):
    """Train; under `mlx.launch -n R` every rank runs this, rank 0 alone prints (see distributed)."""
    from spike_lib.train.distributed import RankZeroError, world
    from spike_lib.numpy_impl.train import TrainingDiverged
    from spike_lib.core.overrides import parse_overrides
    from spike_lib.train.runs import RunError, train_run

    options = {k: getattr(args, k) for k in OPTIONS}
    options["set"] = parse_overrides(args.set)  # ValueError: a clear error, exit 2
    try:
        summary = train_run(args.out, resume=args.resume, progress=not args.no_progress,
                            **options)
    except RankZeroError:  # rank 0 prints why and exits 2; exit 0 here, as a non-zero exit
        return 0  # would make mlx.launch kill rank 0 before it printed the reason
    except (TrainingDiverged, RunError) as err:
        if not world().main:  # every rank sees the same NaN: rank 0 reports it
            return 0
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if world().main:
            print(f"\ninterrupted: {args.out}/checkpoint holds the last saved step; continue "
                  f"with `python -m spike_lib train --out {args.out} --resume`", file=sys.stderr)
        return 130
    return summary if world().main else 0  # one summary, from rank 0
