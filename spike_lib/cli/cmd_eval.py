"""`python -m spike_lib eval`: loss, perplexity, bits per character, firing rate and energy.

Taught in: notebooks/10_toolkit.ipynb
"""

from pathlib import Path

from spike_lib.train.evaluation import (  # noqa: F401 - kept importable from here
    DERIVED_RATES,
    evaluate_text,
    load_for_use,
    resolve_checkpoint,
)


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or run folder")
    parser.add_argument("--text-file", help="evaluate on this UTF-8 text instead of a split")
    parser.add_argument("--split", choices=["val", "test"], default="val",
                        help="corpus split to evaluate on (val)")
    parser.add_argument("--slice", choices=["mixed", "first"], default="mixed",
                        help="mixed: an equal share of every source of the split (default, "
                             "train.heldout.mixed_slice); first: the split's first tokens")
    parser.add_argument("--max-tokens", type=int, default=20_000,
                        help="evaluate on N tokens (20000)")
    parser.add_argument("--context-tokens", type=int,
                        help="each prediction reads at most N previous tokens (a sliding "
                             "window): context gain = BPC(N=8) - BPC(full)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")


def run(args) -> dict:
    from spike_lib.core.config import check_range

    check_range("--batch-size", args.batch_size, 1, kind=int)  # before loading anything
    check_range("--max-tokens", args.max_tokens, 2, kind=int)
    model, tok, _ = load_for_use(args.checkpoint)
    if args.text_file is not None:
        path = Path(args.text_file)
        if not path.is_file():
            raise ValueError(f"--text-file {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"--text-file {path} is not UTF-8 (byte {err.start}: "
                             f"{err.reason}): re-save it as UTF-8") from None
        return evaluate_text(model, tok, text, args.max_tokens, args.batch_size,
                             context_tokens=args.context_tokens)
    from spike_lib.train.heldout import heldout_ids

    ids = heldout_ids(tok, args.max_tokens, args.split, args.slice)
    return evaluate_text(model, tok, None, args.max_tokens, args.batch_size, ids=ids,
                         context_tokens=args.context_tokens)
