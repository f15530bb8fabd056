"""Per-video measurements on the toy video model and an exact paired test (no comfy import).

``video_row`` extends ``benchmarks.toy_world.metrics.video_row`` (per-frame accuracy, reject rate,
centroid path, net displacement, second-difference ``smooth``, motion-compensated ``flicker``) with:

* ``same_class_shape``: share of adjacent frame pairs judged the same class among the pairs where BOTH
  frames hold a shape (judge class >= 0); a rejected frame is not counted as a change of class (the
  reject rate is reported on its own, ``reject``). nan without such a pair. ``shape_pairs`` counts them.
* ``rough``: roughness per unit step, ``smooth / jump`` (mean norm of the centroid's second difference
  over the mean adjacent jump). A constant-velocity path gives ~0 (the judge's centroid quantisation
  adds a little: 0.29 on the training videos), independent uniform positions give sqrt(3) = 1.73
  (E|x3 - 2 x2 + x1| / E|x2 - x1| = sqrt(6) / sqrt(2) for i.i.d. positions). nan for a still object.

The exact signed-rank test is ``benchmarks.toy_world.stats.signed_rank_p`` (one implementation for
both toy worlds): zero differences are dropped, tied |d| get midranks, and the null distribution of the positive-rank sum (each rank's sign
a fair coin) is enumerated by a subset-sum recursion on the doubled midranks (integers), so ties and
zeros need no normal approximation.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.toy_world import metrics as TM

SQRT3 = math.sqrt(3.0)


def same_class_shape(labels) -> tuple[float, int]:
    """(share of adjacent pairs with the same class among pairs where both frames hold a shape, number of
    such pairs); labels: judged class per frame, -1 for "no shape"."""
    lab = torch.as_tensor(labels)
    both = (lab[1:] >= 0) & (lab[:-1] >= 0)
    n = int(both.sum())
    if n == 0:
        return float("nan"), 0
    return float(((lab[1:] == lab[:-1]) & both).sum()) / n, n


def roughness(smooth: float, jump: float) -> float:
    """Roughness per unit step ``smooth / jump`` (nan when either is nan or the object does not move)."""
    if math.isnan(smooth) or math.isnan(jump) or jump <= 1e-6:
        return float("nan")
    return smooth / jump


def video_row(frames: torch.Tensor, label: int) -> dict:
    """``toy_world.metrics.video_row`` of one video [F, 3, 64, 64] plus ``same_class_shape``,
    ``shape_pairs`` and ``rough``."""
    row = TM.video_row(frames, label)
    sc, n = same_class_shape([int(x) for x in row["labels"].split("|")])
    row["same_class_shape"] = round(sc, 4) if not math.isnan(sc) else sc
    row["shape_pairs"] = n
    r = roughness(row["smooth"], row["jump"])
    row["rough"] = round(r, 4) if not math.isnan(r) else r
    return row


