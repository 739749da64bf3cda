"""Numbers both backends must agree on, so the NumPy and MLX ports give the same outputs.

Taught in: notebooks/05_spikellm_forward.ipynb
"""

NEG_INF = -1e9  # a large finite negative: a fully masked row then gives a uniform softmax, not NaN
SPAN_WINDOWS = (1, 3)  # span head: hidden states per logit, h_i alone or h_(i-1), h_i, h_(i+1)
