"""The learning-rate schedule of the training loop: a linear warm-up, then a cosine from the base rate down
to ``final_ratio`` times it, then that floor.

Both are torch ``LambdaLR``s, so every parameter group follows its own base rate. Counted in optimiser steps
the factor is a function of the step index; a run bounded by wall-clock time (``trainer.max_time``) has no
known step count, so there the same shape follows the elapsed fraction of a time budget (a ``LambdaLR`` that
reads the clock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_factor(progress: float, final_ratio: float) -> float:
    """The cosine's rate multiplier at ``progress`` in [0, 1] (1 -> ``final_ratio``; held beyond 1)."""
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_fraction: float, final_ratio: float) -> LambdaLR:
    """Step ``s`` (0-based) gets ``(s + 1) / W`` times the base rate for ``s < W = max(1, int(total_steps *
    warmup_fraction))``, then the cosine over the remaining ``total_steps - W`` steps, then ``final_ratio``."""
    warm = max(1, int(total_steps * warmup_fraction))
    span = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return cosine_factor((step - warm) / span, final_ratio)

    return LambdaLR(optimizer, factor)


def warmup_cosine_by_time(
    optimizer: Optimizer,
    seconds: float,
    warmup_fraction: float,
    final_ratio: float,
    clock: Callable[[], float] = time.monotonic,
) -> LambdaLR:
    """The same shape over a time budget: the elapsed fraction ``f`` of ``seconds`` since the scheduler was
    built gives ``max(f / warmup_fraction, 1e-3)`` during the warm-up, then the cosine over the rest."""
    start = clock()

    def factor(_step: int) -> float:
        done = (clock() - start) / seconds
        if done < warmup_fraction:
            return max(done / warmup_fraction, 1e-3)
        return cosine_factor((done - warmup_fraction) / (1 - warmup_fraction), final_ratio)

    return LambdaLR(optimizer, factor)
