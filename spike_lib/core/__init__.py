"""Layer 1, core: configs and validation, surrogate and neuron maths, energy, gradient checks,
atomic writes, and what both backends share (constants, argument checks, sampling).

Core imports nothing else from spike_lib; every other layer may import it.
Taught in: book/how_to_use.md (The library)
"""
