"""The MLX implementation: the NumPy layers' names and arguments, with autodiff instead of backward.

Taught in: notebooks/01_lif_neurons.ipynb (spike_fn, lif_forward, LIF), notebooks/07_mlx_port.ipynb
(layers, attention, blocks, model, train, generate: the whole SpikeLLM).
"""
