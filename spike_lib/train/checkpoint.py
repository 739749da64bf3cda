"""Checkpoints of the NumPy SpikeLLM: the folder format of spike_lib.core.checkpoint_format,
and load_checkpoint, which builds the model and its tokenizer from the folder.

The MLX port loads the same folders with spike_lib.mlx_impl.model.load_checkpoint.
Taught in: notebooks/06_spikellm_training.ipynb
"""

from pathlib import Path

from spike_lib.core.atomic import atomic_folder
from spike_lib.core.checkpoint_format import (
    CONFIG,
    FORMAT_VERSION,
    META,
    OPTIMIZER,
    TOKENIZER,
    WEIGHTS,
    check_folder,
    is_checkpoint,
    load_config,
    load_into,
    load_meta,
    load_weights,
    read_npz,
    save_checkpoint,
)


def load_checkpoint(path, model=None, optimizer=None):
    """Load (model, tokenizer, meta). Without `model`, build a SpikeLLM from config.json.

    Loading into a model of another shape raises ValueError naming the tensor and both shapes.
    tokenizer is None when the checkpoint holds none.
    """
    from spike_lib.tokenizers import load_tokenizer

    if model is None:
        from spike_lib.numpy_impl.model import SpikeLLM

        load_meta(path)  # a clear error for a missing or foreign folder before building
        model = SpikeLLM(load_config(path))

    def tokenizer_of_model_size(file):  # a tokenizer of another size is refused at load
        return load_tokenizer(file, vocab_size=model.cfg.vocab_size)

    return load_into(Path(path), model, optimizer, tokenizer_of_model_size)


def to_numpy(model):
    """A NumPy SpikeLLM with the config and weights of `model` (an MLX SpikeLLM, or NumPy)."""
    from spike_lib.numpy_impl.model import SpikeLLM

    return SpikeLLM(model.cfg).load_state_dict(model.state_dict())


__all__ = ["CONFIG", "FORMAT_VERSION", "META", "OPTIMIZER", "TOKENIZER", "WEIGHTS",
           "atomic_folder", "check_folder", "is_checkpoint", "load_checkpoint", "load_config",
           "load_meta", "load_weights", "read_npz", "save_checkpoint", "to_numpy"]
