"""`python -m spike_lib fuse`: merge a LoRA adapter into its base weights, a standalone model.

W <- W + (alpha / r) A B for every adapted layer (Eq. 9.2 folded in once, as mlx-lm's fuse),
then the adapter tensors are dropped: the result is an ordinary checkpoint (or, for a QA model
folder, a QA folder holding the fused weights and the same head) that loads without the base.
Taught in: notebooks/09_finetuning_lora.ipynb
"""

from pathlib import Path


def fused_state(model) -> dict:
    """The state dict of a NumPy SpikeLLM with LoRA adapters, with every adapter merged into
    its W and the A, B tensors left out: it loads into a plain SpikeLLM of the same config."""
    from spike_lib.numpy_impl.lora import merge_lora, unmerge_lora

    merge_lora(model)
    try:
        return {k: v for k, v in model.state_dict().items() if not k.endswith((".A", ".B"))}
    finally:
        unmerge_lora(model)


def fuse_model(model):
    """A new plain NumPy SpikeLLM whose weights are model's with its adapters merged in."""
    from spike_lib.numpy_impl.model import SpikeLLM

    if not getattr(model, "lora", None):
        raise ValueError("this model has no LoRA adapter to fuse: load one with --adapter")
    return SpikeLLM(model.cfg).load_state_dict(fused_state(model))


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="the base checkpoint (with --adapter) or a QA model folder with a "
                             "LoRA adapter (data/checkpoints/book-qa)")
    parser.add_argument("--adapter", help="a LoRA adapter folder fine-tuned on --checkpoint")
    parser.add_argument("--out", required=True, help="the standalone folder to write")


def run(args) -> dict:
    from spike_lib.numpy_impl.lora import fingerprint
    from spike_lib.train import span_qa
    from spike_lib.train.checkpoint import save_checkpoint

    if span_qa.is_qa_folder(args.checkpoint):
        if args.adapter:
            raise ValueError(f"{args.checkpoint} is a QA model folder that holds its adapter: "
                             "drop --adapter")
        model, tok, info = span_qa.load_qa_model(args.checkpoint, "numpy")
        if info["strategy"] != "lora":
            raise ValueError(f"{args.checkpoint} holds fine-tuned weights, not a LoRA adapter: "
                             "it is standalone already")
        base = model.modules["base"] if info["head"] == "span" else model
        fused = fuse_model(base)
        if info["head"] == "span":
            fused = span_qa.build_span_model(fused, info.get("window", 3),
                                             info.get("question_head", False))
            for name, p in model.modules["head"].params.items():  # W, and U if it reads q
                fused.modules["head"].params[name][...] = p
        meta = {k: v for k, v in info.items() if k not in ("format_version", "head", "strategy",
                                                             "base", "window", "lora",
                                                             "question_head")}
        span_qa.save_qa_model(args.out, fused, tok, span_qa.resolve_base(args.checkpoint, info),
                              info["head"], "fused", meta={**meta, "fused_from": str(args.checkpoint)})
        n = fused.num_params()
    else:
        if not args.adapter:
            raise ValueError("fuse needs --adapter FOLDER (or a QA model folder as --checkpoint)")
        from spike_lib.core.lora import read_adapter
        from spike_lib.train.qa_eval import load_model

        model, tok = load_model(args.checkpoint, args.adapter, "numpy")
        fused = fuse_model(model)
        record = read_adapter(args.adapter)[0].get("finetune")  # its prompt order, for qa-eval
        save_checkpoint(args.out, fused, tok, meta={"fused_from": {
            "base": fingerprint(args.checkpoint), "adapter": str(args.adapter)},
            **({"finetune": record} if record else {})})
        n = fused.num_params()
    return {"out": str(Path(args.out)), "params": int(n),
            "fused_layers": sum(name.endswith(".A") for name in model.state_dict())}
