"""What the training loops of both backends share: the learning-rate schedule, the divergence
error, the data-parallel token weight, and the timer of the benchmarks.

Taught in: notebooks/06_spikellm_training.ipynb
"""

import math
import statistics
import time

from spike_lib.core.config import check_range


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite, or the loss blew up."""


def cosine_lr(step, max_lr, warmup_steps, total_steps, min_lr=0.0) -> float:
    """Linear warmup to max_lr over warmup_steps, then cosine decay to min_lr at total_steps.

        lr = max_lr (step + 1) / warmup                          step < warmup
        lr = min_lr + (max_lr - min_lr) (1 + cos(pi p)) / 2       p = (step - warmup) / (total - warmup)
    After total_steps the rate stays at min_lr.
    """
    check_range("step", step, 0, kind=int)
    check_range("warmup_steps", warmup_steps, 0, kind=int)
    check_range("total_steps", total_steps, 1, kind=int)
    check_range("max_lr", max_lr, 0.0)
    check_range("min_lr", min_lr, 0.0, max_lr)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * p))


def token_weight(n_local, n_total, size):
    """w_r = R n_r / N: the mean over ranks of w_r * (rank r's token-mean loss) is the global mean.

    Eq.: L = (1/N) sum_r n_r L_r = (1/R) sum_r w_r L_r, and the same for the gradients. Equal
    slices (n_r = N/R) give w_r = 1: the plain average of nn.average_gradients. Works on
    numbers, NumPy and MLX arrays; a world without tokens (N = 0) gets weight 0.
    """
    return n_local * size / (n_total + (n_total == 0))


def median_seconds(fn, repeats=5, warmup=1) -> float:
    """Median wall time of fn() over `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class LossWatch:
    """Catch a blow-up before it is saved: a loss that is NaN or infinite, or far above the
    running median of the last WINDOW losses (after at least MIN_SEEN of them):
        loss > median + max(ABOVE, median)      i.e. more than doubled and up by > ABOVE nats
    A language model's loss wanders by a few tenths of a nat from step to step; a diverging one
    jumps by orders of magnitude (8e32 was seen), so the bound leaves normal noise alone.
    """

    WINDOW, MIN_SEEN, ABOVE = 50, 10, 3.0

    def __init__(self):
        self.recent = []

    def check(self, loss):
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the loss is {loss}")
        if len(self.recent) >= self.MIN_SEEN:
            median = statistics.median(self.recent)
            if loss > median + max(self.ABOVE, median):
                raise TrainingDiverged(
                    f"the loss {loss:.4g} blew up: it is far above its running median "
                    f"{median:.4g} of the last {len(self.recent)} steps")
        self.recent = (self.recent + [loss])[-self.WINDOW:]
