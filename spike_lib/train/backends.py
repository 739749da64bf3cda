"""The two backends a run trains with (NumPy, MLX) behind one interface, the batches of a run
(a pure function of seed and step) and the evaluation record logged at eval steps.

Taught in: notebooks/10_toolkit.ipynb
"""

import numpy as np


class StepRNG:
    """Quacks like np.random.Generator, drawing from default_rng([seed, step]) after .at(step)."""

    def __init__(self, seed):
        self.seed, self.gen = seed, None

    def at(self, step):
        self.gen = np.random.default_rng([self.seed, step])
        return self

    def __getattr__(self, name):  # integers, random: what batch_iterator draws with
        return getattr(self.gen, name)


class Batches:
    """batches(k) -> (x, y): the batch of step k, the same whatever ran before it."""

    def __init__(self, docs, tokenizer, block_size, batch_size, seed, metadata=False):
        from spike_lib.data.batches import batch_iterator, encode_documents

        self.rng = StepRNG(seed)
        data = docs if metadata else encode_documents(docs, tokenizer.encode)[0]
        self.it = batch_iterator(data, block_size, batch_size, self.rng, metadata=metadata,
                                 encode=tokenizer.encode)

    def __call__(self, step):
        self.rng.at(step)
        return next(self.it)


def dropout_seed(seed, rank, step) -> int:
    """The seed of step `step`'s dropout masks on rank `rank`: a pure function, like the batches,
    so a resumed run draws the masks an uninterrupted one drew."""
    return int(np.random.SeedSequence([seed, rank, step, 17]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


class NumpyBackend:
    """The NumPy SpikeLLM with the hand-written backward and AdamW."""

    name = "numpy"

    def __init__(self, cfg, opts):
        from spike_lib.numpy_impl.layers import Dropout
        from spike_lib.numpy_impl.model import SpikeLLM
        from spike_lib.numpy_impl.optim import AdamW

        self.model = SpikeLLM(cfg)
        self.opt = AdamW(self.model, lr=opts["lr"], weight_decay=opts["weight_decay"])
        self.clip, self.seed = opts["clip"], opts["seed"]
        self.dropouts = [m for _, m in self.model.named_modules() if isinstance(m, Dropout)]
        self.model.train(True)

    def step(self, x, y, lr, step=0) -> dict:
        from spike_lib.numpy_impl.train import train_step

        for i, m in enumerate(self.dropouts):  # the masks of step k: a function of (seed, k)
            m.rng = np.random.default_rng([dropout_seed(self.seed, 0, step), i])
        return train_step(self.model, self.opt, x, y, lr, self.clip)

    def numpy_model(self):
        return self.model

    def save(self, path, tokenizer, meta):
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(path, self.model, tokenizer, self.opt, meta={**meta, "backend": "numpy"})

    def load(self, path) -> dict:
        from spike_lib.train.checkpoint import load_checkpoint

        return load_checkpoint(path, self.model, self.opt)[2]


class MLXOptimizerState:
    """An MLX optimizer's state as flat NumPy arrays, for spike_lib.train.checkpoint (optimizer.npz)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def state_dict(self) -> dict:
        from mlx.utils import tree_flatten

        return {k: np.array(v) for k, v in tree_flatten(self.optimizer.state)}

    def load_state_dict(self, state):
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        self.optimizer.state = tree_unflatten([(k, mx.array(v)) for k, v in state.items()])
        return self


class MLXBackend:
    """The MLX SpikeLLM: autodiff, and the training step compiled with mx.compile.

    With a World of R > 1 processes the step averages the gradients over them (data parallel,
    spike_lib.train.distributed) and each rank draws its own dropout masks; the masks of step k
    come from mx.random.seed(dropout_seed(seed, rank, k)), so a resumed run repeats them.
    """

    name = "mlx"

    def __init__(self, cfg, opts, world=None):
        import importlib

        try:
            mlx_train = importlib.import_module("spike_lib.mlx_impl.train")
            SpikeLLM = importlib.import_module("spike_lib.mlx_impl.model").SpikeLLM
        except ImportError as err:
            raise ValueError(f"--backend mlx is not available here ({err}); install mlx "
                             "(pip install 'mlx[cpu]') or use --backend numpy") from None
        self.mt = mlx_train
        self.model = SpikeLLM(cfg)
        self.opt = mlx_train.AdamW(opts["lr"], weight_decay=opts["weight_decay"])
        self.clip, self.fn = opts["clip"], None
        self.group = world.group if world is not None else None
        self.seed, self.rank = opts["seed"], world.rank if world is not None else 0
        self.mx = importlib.import_module("mlx.core")

    def step(self, x, y, lr, step=0) -> dict:
        if self.fn is None:  # after a resume has loaded the optimizer state
            self.model.train(True)
            self.fn = self.mt.make_step(self.model, self.opt, self.clip, compile=True,
                                        group=self.group)
        self.mx.random.seed(dropout_seed(self.seed, self.rank, step))  # read by the compiled step
        return self.mt.train_step(self.fn, self.opt, x, y, lr)

    def get_state(self) -> dict:
        """Weights and optimizer state: {'model.<name>' or 'opt.<name>': NumPy array}."""
        opt = MLXOptimizerState(self.opt).state_dict()
        return {**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                **{f"opt.{k}": v for k, v in opt.items()}}

    def set_state(self, state):
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        MLXOptimizerState(self.opt).load_state_dict(part("opt."))
        self.fn = None  # the compiled step captured the old optimizer state: trace again

    def numpy_model(self):
        from spike_lib.train.checkpoint import to_numpy

        return to_numpy(self.model)

    def save(self, path, tokenizer, meta):
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(path, self.model, tokenizer, MLXOptimizerState(self.opt),
                        meta={**meta, "backend": "mlx"})

    def load(self, path) -> dict:
        from spike_lib.train.checkpoint import load_checkpoint

        return load_checkpoint(path, self.model, MLXOptimizerState(self.opt))[2]


def make_backend(cfg, opts, world=None):
    return MLXBackend(cfg, opts, world) if opts["backend"] == "mlx" else NumpyBackend(cfg, opts)


def eval_record(backend, val_ids, val_chars, batch_size) -> dict:
    """val loss and BPC, and every layer's firing rate on one batch of validation windows."""
    from spike_lib.core.scoring import evaluate

    model = backend.numpy_model()
    ev = evaluate(model, val_ids, n_chars=val_chars, batch_size=batch_size)
    n_ctx = min(model.cfg.block_size, len(val_ids) - 1)
    rows = np.arange(0, len(val_ids) - n_ctx, n_ctx)[:batch_size, None] + np.arange(n_ctx)
    model.train(False)
    model(val_ids[rows])
    rates = model.firing_rates()
    if backend.name == "numpy":
        model.train(True)
    return {"val_loss": ev["loss"], "val_bpc": ev["bpc"], "firing_rates": rates}
