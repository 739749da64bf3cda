"""`python -m spike_lib generate`: sample text from a checkpoint, optionally streamed.

Taught in: notebooks/10_toolkit.ipynb
"""


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or run folder")
    parser.add_argument("--prompt", default="", help="text to continue (empty: a new document)")
    parser.add_argument("--stream", action="store_true", help="print pieces as they come")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to sample (200)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 is greedy (1.0)")
    parser.add_argument("--top-k", type=int, help="sample among the k likeliest tokens")
    parser.add_argument("--top-p", type=float, help="nucleus sampling: smallest set with mass p")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--adapter", help="a LoRA adapter folder fine-tuned on --checkpoint "
                        "(checked against its fingerprint)")
    parser.add_argument("--question", help="ask a QA question about --context: the prompt is "
                        "built in the order the fine-tuned folder records; stops at a newline")
    parser.add_argument("--context", help="the text --question is about (cut to fit the block)")
    parser.add_argument("--prompt-order", choices=("context", "question"),
                        help="with --question: context or question first (default: the order "
                             "the adapter or fine-tuned checkpoint records)")


def qa_order(args):
    """The prompt order for --question and --context: the one the fine-tuned folder records."""
    from spike_lib.train.prompt import resolve_prompt_order

    if args.question is None or args.context is None or args.prompt:
        raise ValueError("--question and --context go together, without --prompt: give both "
                         "(a QA prompt is built from them) or give --prompt alone")
    return resolve_prompt_order(args.prompt_order, args.adapter or args.checkpoint,
                                adapter=bool(args.adapter))


def qa_prompt(tok, question, context, block_size, order) -> str:
    """The QA prompt, its context cut as fine-tuning cuts it (ANSWER_TOKENS left free)."""
    from spike_lib.train.prompt import ANSWER_TOKENS, fit_context, format_prompt

    budget = block_size + 1 - min(ANSWER_TOKENS, block_size - 1)
    kept, _ = fit_context(tok, context, question, budget, order)
    return format_prompt(kept, question, order)


def run(args):
    import numpy as np

    from spike_lib.core.sampling import stream_text
    from spike_lib.train.evaluation import load_for_use

    qa = any(getattr(args, k, None) is not None for k in ("question", "context", "prompt_order"))
    order = qa_order(args) if qa else None  # a conflicting --prompt-order fails before loading
    model, tok, _ = load_for_use(args.checkpoint)
    if args.adapter:
        from spike_lib.numpy_impl.lora import fingerprint, load_adapter
        from spike_lib.train.evaluation import resolve_checkpoint

        load_adapter(args.adapter, model, fingerprint(resolve_checkpoint(args.checkpoint)))
    stop = ()
    if qa:
        from spike_lib.train.prompt import STOP

        args.prompt = qa_prompt(tok, args.question, args.context, model.cfg.block_size, order)
        stop = (STOP,)  # a fine-tuned answer ends with a newline
    pieces = stream_text(model, tok, args.prompt, args.max_new_tokens,
                         rng=np.random.default_rng(args.seed), temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, stop=stop)
    text = []
    if args.stream and not args.json:
        print(args.prompt, end="", flush=True)
    for piece in pieces:
        text.append(piece)
        if args.stream and not args.json:
            print(piece, end="", flush=True)
    text = "".join(text)
    if args.json:
        return {"prompt": args.prompt, "text": text, "chars": len(text),
                **({} if order is None else {"prompt_order": order})}
    print("" if args.stream else args.prompt + text)
    return 0
