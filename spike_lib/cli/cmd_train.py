"""`python -m spike_lib train`: train a SpikeLLM into a run folder, or resume it.

Data parallel on R processes: `mlx.launch -n 2 --backend ring -- python -m spike_lib train
--backend mlx ...` (book/distributed.md). Taught in: notebooks/10_toolkit.ipynb
"""

import sys

from spike_lib.train.options import OPTIONS, add_arguments  # noqa: F401 - the arguments


def run(args):
    """Train; under `mlx.launch -n R` every rank runs this, rank 0 alone prints (see distributed)."""
    from spike_lib.core.overrides import parse_overrides
    from spike_lib.core.training import TrainingDiverged
    from spike_lib.train.distributed import RankZeroError, world
    from spike_lib.train.runs import RunError, train_run

    options = {k: getattr(args, k) for k in OPTIONS}
    options["set"] = parse_overrides(args.set)  # ValueError: a clear error, exit 2
    try:
        summary = train_run(args.out, resume=args.resume, progress=not args.no_progress,
                            allow_changed=tuple(args.allow_changed), **options)
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
