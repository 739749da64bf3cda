"""Chapter 10's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import dataclasses

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.exercises import ch10
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.core.neurons import lif_backward, lif_forward
from spike_lib.train.qa_eval import f1_score


def overrides(cfg, preset):
    base = getattr(Config, preset)()
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Config)
            if f.name not in ("vocab_size", "spiking", "attention", "seed")
            and getattr(cfg, f.name) != getattr(base, f.name)}


def test_overrides(capsys):
    ch10.check_overrides(overrides)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="vocab_size.*--tokenizer.*leave them out"):
        ch10.check_overrides(lambda cfg, preset: {f.name: getattr(cfg, f.name)
                                                  for f in dataclasses.fields(Config)
                                                  if getattr(cfg, f.name) !=
                                                  getattr(getattr(Config, preset)(), f.name)})
    with pytest.raises(AssertionError, match="differs from the preset"):
        ch10.check_overrides(lambda cfg, preset: overrides(cfg, "tiny"))


def _sigmoid(w):
    return 1.0 / (1.0 + np.exp(-w))


class PLIF(LIF):
    """beta = 1 - sigmoid(w), written out: forward caching v[t-1], backward with dL/dw."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_param("w", np.array(np.log(1 / (1 - kw.get("beta", 0.9)) - 1), dtype=np.float32))

    def forward(self, x):
        b, th, sg = 1 - _sigmoid(self.params["w"]), self.threshold, self.surrogate
        v, vs, mem, spk = np.zeros_like(x[0]), [], [], []
        for t in range(x.shape[0]):
            vs.append(v)
            u = b * v + x[t]
            s = sg.smooth(u - th) if self.smooth else sg.forward(u - th)
            v = u - th * s
            mem.append(u)
            spk.append(s)
        self.cache = (np.stack(vs), np.stack(mem), np.stack(spk))
        self.last_spk = self.cache[2]
        return self.last_spk

    def backward(self, dspk):
        vs, mem, _ = self.cache
        sw = _sigmoid(self.params["w"])
        b, th, sg = 1 - sw, self.threshold, self.surrogate
        dx, dv = np.empty_like(mem), np.zeros_like(mem[0])
        for t in reversed(range(len(mem))):
            ds = dspk[t] - (0.0 if self.detach_reset else th * dv)
            du = dv + ds * sg.grad(mem[t] - th)
            self.grads["w"] += -sw * (1 - sw) * np.sum(du * vs[t])
            dx[t] = du
            dv = b * du
        return dx


class PLIFNoWGrad(PLIF):
    def backward(self, dspk):
        dx = super().backward(dspk)
        self.grads["w"][...] = 0.0
        return dx


class PLIFWrongSign(PLIF):
    def backward(self, dspk):
        self.grads["w"] *= -1
        dx = super().backward(dspk)
        self.grads["w"] *= -1  # the gradient of beta's sigmoid without the minus
        return dx


class PLIFRawBeta(LIF):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_param("w", np.array(kw.get("beta", 0.9), dtype=np.float32))  # w is beta itself


def test_plif(capsys):
    ch10.check_plif(PLIF)
    out = capsys.readouterr().out
    assert "learnable-leak neuron: correct" in out and "gradient check" in out
    with pytest.raises(AssertionError, match="add one parameter named 'w'"):
        ch10.check_plif(LIF)
    with pytest.raises(AssertionError, match="start at w"):
        ch10.check_plif(PLIFRawBeta)
    with pytest.raises(ValueError, match="gradient check: .*on 'w'"):
        ch10.check_plif(PLIFNoWGrad)
    with pytest.raises(ValueError, match="gradient check: .*on 'w'"):
        ch10.check_plif(PLIFWrongSign)


def test_entry_points(capsys):
    text = ("[spike_lib.neurons]\nplif = my_spikes.neurons:PLIF\n\n"
            "[spike_lib.tokenizers]\nwords = my_spikes.tok:WordTokenizer\n")
    ch10.check_entry_points(text)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="plural"):
        ch10.check_entry_points(text.replace("spike_lib.neurons", "spike_lib.neuron"))
    with pytest.raises(AssertionError, match="module:attribute"):
        ch10.check_entry_points(text.replace("neurons:PLIF", "neurons.PLIF"))


def advantages(candidates, golds):
    rewards = np.array([f1_score(c, golds) for c in candidates])
    return rewards - rewards.mean()


def test_advantages(capsys):
    ch10.check_advantages(advantages)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="subtract their mean"):
        ch10.check_advantages(lambda c, g: [f1_score(x, g) for x in c])


def make_trace(context, question, steps, answer):
    prompt = f"Context: {context}\nQuestion: {question}\nReasoning:"
    return prompt, " " + " ".join(steps) + f"\nAnswer: {answer}\n"


def answer_of(text):
    _, sep, rest = text.partition("\nAnswer:")
    return rest.split("\n")[0].strip() if sep else ""


def test_trace(capsys):
    ch10.check_trace(make_trace, answer_of)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="'Reasoning:' in place of 'Answer:'"):
        ch10.check_trace(lambda c, q, s, a: (make_trace(c, q, s, a)[0][:-10] + "Answer:",
                                             make_trace(c, q, s, a)[1]), answer_of)
    with pytest.raises(AssertionError, match="expected 'Oslo'"):
        ch10.check_trace(make_trace, lambda text: text.split("Answer:")[-1].strip())


class ShortPLIF(LIF):
    """The notebook's solution: lif_forward / lif_backward plus the gradient of w."""

    def __init__(self, **lif):
        super().__init__(**lif)
        self.add_param("w", np.array(np.log(1 / (1 - lif.get("beta", 0.9)) - 1), dtype=np.float32))

    def leak(self):
        return float(1 - _sigmoid(self.params["w"]))

    def forward(self, x):
        spk, mem = lif_forward(x, self.leak(), self.threshold, self.reset, self.surrogate, self.smooth)
        self.cache, self.last_spk = (mem, spk), spk
        return spk

    def backward(self, dspk):
        mem, spk = self.cache
        dx = lif_backward(dspk, mem, spk, self.leak(), self.threshold, self.reset, self.surrogate,
                          self.detach_reset)
        v = mem - self.threshold * spk if self.reset == "subtract" else mem * (1 - spk)
        sw = 1 - self.leak()
        self.grads["w"] += -sw * (1 - sw) * np.sum(dx[1:] * v[:-1])
        return dx


def test_plif_from_the_chapter_1_functions(capsys):
    ch10.check_plif(ShortPLIF)
    assert "learnable-leak neuron: correct" in capsys.readouterr().out
