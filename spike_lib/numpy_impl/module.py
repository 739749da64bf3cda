"""Module: the base of every NumPy layer (parameters, gradients, sub-modules, state dicts).

A Module holds `params` and `grads` (dicts of arrays with equal shapes) and named sub-modules.
`forward(x)` caches what `backward(dout)` needs; backward returns dx and *accumulates* into
self.grads, so call zero_grad() before each step (as in micrograd's nn.py).
Taught in: notebooks/02_sdsa_colors.ipynb
"""

import numpy as np


class Module:
    def __init__(self):
        self.params = {}
        self.grads = {}
        self.modules = {}
        self.smooth = False  # smooth mode: spikes replaced by the surrogate's antiderivative

    # -- structure -------------------------------------------------------------------------
    def add_param(self, name, value):
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def add_module(self, name, module):
        self.modules[name] = module
        return module

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self):
        """Yield (dotted name, param, grad) for this module and every sub-module."""
        for prefix, module in self.named_modules():
            for name, value in module.params.items():
                full = f"{prefix}.{name}" if prefix else name
                yield full, value, module.grads[name]

    def parameters(self):
        return [p for _, p, _ in self.named_parameters()]

    def num_params(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for _, _, g in self.named_parameters():
            g[...] = 0.0

    def set_smooth(self, smooth=True):
        """Switch every spiking layer below this module to smooth mode (for gradient checks)."""
        for _, module in self.named_modules():
            module.smooth = smooth
        return self

    def astype(self, dtype):
        """Cast every parameter and gradient in place (float64 for gradient checks)."""
        for _, module in self.named_modules():
            for name in module.params:
                module.params[name] = module.params[name].astype(dtype)
                module.grads[name] = np.zeros_like(module.params[name])
        return self

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: p.copy() for name, p, _ in self.named_parameters()}

    def load_state_dict(self, state: dict):
        """Copy arrays in by name; a missing, extra or mis-shaped tensor raises ValueError."""
        own = {name: (module, key) for name, module, key in self._param_slots()}
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(
                f"state dict does not fit this model: missing {missing}, unexpected {extra}; "
                "was it saved from a model with another config?"
            )
        for name, (module, key) in own.items():
            value = np.asarray(state[name])
            if value.shape != module.params[key].shape:
                raise ValueError(
                    f"tensor {name!r} has shape {value.shape} in the state dict but "
                    f"{module.params[key].shape} in the model; check the config you loaded"
                )
            module.params[key] = value.astype(module.params[key].dtype, copy=True)
        return self

    def _param_slots(self):
        for prefix, module in self.named_modules():
            for key in module.params:
                yield (f"{prefix}.{key}" if prefix else key), module, key

    # -- calling ---------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        return f"{type(self).__name__}(params={self.num_params()})"
