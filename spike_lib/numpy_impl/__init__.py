"""The NumPy implementation: every layer with a hand-written backward pass.

Taught in: notebooks/02_sdsa_colors.ipynb onwards.
"""
