"""The toy video benchmark's metrics and exact test (benchmarks/toy_video/metrics.py) and its training
videos (benchmarks/toy_video/videos.py)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.toy_video import metrics as VM
from benchmarks.toy_world import stats as S  # noqa: E402
from benchmarks.toy_video import videos as V  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402


def test_same_class_counts_only_pairs_that_both_hold_a_shape():
    # pairs: (3,3) same, (3,-1) skipped, (-1,3) skipped, (3,5) change, (5,-1) skipped
    assert VM.same_class_shape([3, 3, -1, 3, 5, -1]) == (0.5, 2)
    assert VM.same_class_shape([4, -1, 4, -1]) == (pytest.approx(float("nan"), nan_ok=True), 0)
    assert VM.same_class_shape([2, 2, 2]) == (1.0, 2)


def test_roughness_is_near_zero_for_steady_motion_and_near_sqrt3_for_random_positions():
    steady = torch.stack([W.render(torch.tensor([0]), torch.tensor([1]), torch.tensor([16.0 + 2 * t]),
                                   torch.tensor([32.0]), torch.tensor([10.0]))[0] for t in range(12)])
    r = VM.video_row(steady, 1)
    assert r["rough"] < 0.2 and r["same_class_shape"] == 1.0 and r["shape_pairs"] == 11
    g = torch.Generator().manual_seed(0)
    vals = []
    for _ in range(40):
        pos = 14 + 36 * torch.rand(12, 2, generator=g)
        vid = W.render(torch.zeros(12, dtype=torch.long), torch.ones(12, dtype=torch.long), pos[:, 0], pos[:, 1],
                       torch.full((12,), 10.0))
        vals.append(VM.video_row(vid, 1)["rough"])
    assert abs(float(np.mean(vals)) - VM.SQRT3) < 0.15
    assert math.isnan(VM.roughness(0.0, 0.0))


def test_signed_rank_exact_matches_scipy_exact_without_ties_and_handles_ties_and_zeros():
    rng = np.random.default_rng(1)
    for n in (6, 15, 25):
        d = rng.normal(0.4, 1.0, n)
        assert S.signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-9)
    # ties and zeros: every non-zero difference positive -> p = 2 / 2^m (m non-zero differences)
    d = np.array([0, 0, 1, 1, 2, 2, 2, 3.0])
    assert S.signed_rank_p(d) == pytest.approx(2 / 2 ** 6)
    assert S.signed_rank_p(np.zeros(5)) == 1.0
    # symmetric differences with ties: p = 1
    assert S.signed_rank_p(np.array([1, -1, 2, -2, 0.0])) == pytest.approx(1.0)


def test_training_videos_move_smoothly_inside_the_picture():
    b = V.sample(16, torch.Generator().manual_seed(3))
    assert b.videos.shape == (16, V.FRAMES, 3, 64, 64)
    steps = torch.stack([b.cx, b.cy], -1).diff(dim=1).norm(dim=-1)                    # [N, F-1]
    assert torch.allclose(steps, b.speed[:, None].expand_as(steps), atol=1e-4)      # constant speed
    assert (b.speed > 0).all() and (b.speed <= V.SPEED_MAX + 1e-6).all()
    for i in range(16):
        hx, top, bottom = W._extent(int(b.labels[i]) % 3, b.r[i])
        assert float(b.cx[i].min() - hx) >= W.MARGIN - 1e-4 and float(b.cx[i].max() + hx) <= 64 - W.MARGIN + 1e-4
        assert float(b.cy[i].min() - top) >= W.MARGIN - 1e-4 and float(b.cy[i].max() + bottom) <= 64 - W.MARGIN + 1e-4
    same = V.sample(16, torch.Generator().manual_seed(3))
    assert torch.equal(same.videos, b.videos)
