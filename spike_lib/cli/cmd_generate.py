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


def run(args):
    import numpy as np

    from spike_lib.core.sampling import stream_text
    from spike_lib.train.evaluation import load_for_use

    model, tok, _ = load_for_use(args.checkpoint)
    if args.adapter:
        from spike_lib.numpy_impl.lora import fingerprint, load_adapter
        from spike_lib.train.evaluation import resolve_checkpoint

        load_adapter(args.adapter, model, fingerprint(resolve_checkpoint(args.checkpoint)))
    pieces = stream_text(model, tok, args.prompt, args.max_new_tokens,
                         rng=np.random.default_rng(args.seed), temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p)
    text = []
    if args.stream and not args.json:
        print(args.prompt, end="", flush=True)
    for piece in pieces:
        text.append(piece)
        if args.stream and not args.json:
            print(piece, end="", flush=True)
    text = "".join(text)
    if args.json:
        return {"prompt": args.prompt, "text": text, "chars": len(text)}
    print("" if args.stream else args.prompt + text)
    return 0
