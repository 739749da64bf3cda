"""A run's wall-clock budget (--time-budget): plan the schedule's length, then stop in time.

Taught in: notebooks/10_toolkit.ipynb
"""

import math
import time

import numpy as np


class Budget:
    """A run's wall-clock budget (--time-budget B seconds): fix the schedule's length, then stop.

    The cosine schedule must know its total number of steps N before it decays. So the run
    times its first CALIBRATE steps (the first, which compiles, left out: median t_step), then
    one evaluation and one checkpoint (t_eval, t_save), and fixes
        N = n + floor(SAFETY * (B - spent - t_eval - t_save) / (t_step + t_eval / eval_every
                                                                 + t_save / ckpt_every))
    capped by --steps. N goes into run.json as "plan" and the run decays over it, so it ends at
    its lowest learning rate just inside B. A resumed run keeps the plan and the seconds spent
    (saved in each checkpoint). Should the machine slow down, the run stops when the next step
    and the final evaluation would overrun B, with a checkpoint. Calibrating inside the warmup
    (warmup >= CALIBRATE) makes the learning rates of every step the planned schedule's. The
    budget counts training, evaluation and saving, not loading and tokenizing the corpus.
    """

    CALIBRATE, SAFETY = 12, 0.95

    def __init__(self, opts, plan, spent=0.0):
        self.budget, self.fixed = opts["time_budget"], plan
        self.t0 = time.perf_counter() - spent
        self.times, self.t_save = [], 0.0
        self.final = plan["final_seconds"] if plan else 0.0

    def spent(self) -> float:
        return time.perf_counter() - self.t0

    def total(self, steps) -> int:
        return self.fixed["steps"] if self.fixed else steps

    def step_done(self, dt):
        self.times.append(dt)

    def save_took(self, dt):
        self.t_save = max(self.t_save, dt)

    def t_step(self) -> float:
        return float(np.median(self.times[1:] or self.times))

    def planning(self, total) -> bool:
        n = len(self.times)
        return bool(self.budget) and self.fixed is None and n == min(self.CALIBRATE, total - 1)

    def out_of_time(self, done, total) -> bool:
        if not self.budget or done >= total or self.planning(total):
            return False
        return self.spent() + self.t_step() + self.final > self.budget

    def plan(self, done, steps, t_eval, opts) -> int:
        """Fix N from the measured times (the checkpoint about to be saved costs like t_eval)."""
        t_save = max(self.t_save, t_eval)  # the first save has not run yet: guess it
        self.final = t_eval + t_save
        per_step = (self.t_step() + t_eval / opts["eval_every"]
                    + t_save / opts["ckpt_every"])
        left = self.budget - self.spent() - t_save - self.final
        n = min(steps, done + max(1, math.floor(self.SAFETY * left / per_step)))
        self.fixed = {"steps": n, "at_step": done, "step_seconds": round(self.t_step(), 4),
                      "eval_seconds": round(t_eval, 3), "final_seconds": round(self.final, 3),
                      "time_budget": self.budget}
        return n
