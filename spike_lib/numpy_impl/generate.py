"""Sampling text from the NumPy SpikeLLM (the shared sampler of spike_lib.core.sampling), and embed.

Taught in: notebooks/06_spikellm_training.ipynb
"""

import numpy as np

from spike_lib.core.sampling import generate_ids, generate_text, sample_logits, stream_text


def embed(model, ids):
    """A text embedding: the final hidden states h (L, D) averaged over tokens -> (D,)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        raise ValueError("cannot embed an empty text: there is no token to average")
    ids = ids[-model.cfg.block_size:]
    model.train(False)
    return model.hidden(ids[None])[0].mean(axis=0)


__all__ = ["embed", "generate_ids", "generate_text", "sample_logits", "stream_text"]
