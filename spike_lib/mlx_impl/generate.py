"""Sampling text from the MLX SpikeLLM: the shared sampler, which only needs model(ids) -> logits.

spike_lib.core.sampling reads the model through check_idx, train, cfg and model(ctx) (whose
logits it converts with np.asarray), all of which the MLX SpikeLLM provides, so the same
functions serve both ports; embed returns a NumPy vector here too.
Taught in: notebooks/07_mlx_port.ipynb
"""

import numpy as np

from spike_lib.core.sampling import generate_ids, generate_text, sample_logits, stream_text


def embed(model, ids):
    """A text embedding: the final hidden states h (L, D) averaged over tokens -> (D,) NumPy."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        raise ValueError("cannot embed an empty text: there is no token to average")
    model.train(False)
    return np.array(model.hidden(ids[-model.cfg.block_size:][None])[0].mean(axis=0))


__all__ = ["embed", "generate_ids", "generate_text", "sample_logits", "stream_text"]
