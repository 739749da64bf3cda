"""Layer 4, train: run folders, checkpoints, fine-tuning, distributed, evaluation, benchmarks.

Imports core, data, tokenizers, numpy_impl and mlx_impl; never ui or cli.
Taught in: book/how_to_use.md (The library)
"""
