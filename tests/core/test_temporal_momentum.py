"""Temporal Momentum Attention, ZS^2 Eq. 2 (ALGORITHMS.md section 3): pure-torch checks."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from training_free_video.attention.temporal_momentum import (
    TemporalMomentumPatch, momentum_weights, temporal_momentum, temporal_momentum_recursive)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def explicit_eq2(x, mu):
    """Eq. 2 written out for one video ``[F, ...]``: K'_i = mu^(i-1) K_1 + sum_{j=2..i} (1-mu) mu^(i-j) K_j."""
    out = []
    for i in range(x.shape[0]):
        acc = mu ** i * x[0]
        for j in range(1, i + 1):
            acc = acc + (1 - mu) * mu ** (i - j) * x[j]
        out.append(acc)
    return torch.stack(out)


@pytest.mark.parametrize("mu", [0.0, 1e-6, 0.3, 0.5, 0.9, 0.98, 0.999999, 1.0])
@pytest.mark.parametrize("groups,frames", [(1, 8), (2, 8), (3, 5), (2, 1), (1, 24)])
def test_vectorised_equals_recursion(mu, groups, frames):
    x = torch.randn(groups * frames, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fast = temporal_momentum(x, mu, groups)
    rec = temporal_momentum_recursive(x, mu, groups)
    assert torch.allclose(fast, rec, atol=1e-12)
    for g in range(groups):          # and the closed form of Eq. 2, group by group
        sl = slice(g * frames, (g + 1) * frames)
        assert torch.allclose(fast[sl], explicit_eq2(x[sl], mu), atol=1e-12)


def test_not_the_buggy_listings():
    """Frame 3 depends on frame 1 (the listing's loop blends only frame i-1) and frame 2 is not the
    diagonal of the einsum listing."""
    x = torch.zeros(3, 2)
    x[0] = 1.0
    out = temporal_momentum(x, 0.5)
    assert torch.allclose(out[2], torch.full((2,), 0.25))       # 0.5^2 * K_1
    assert torch.allclose(out[1], torch.full((2,), 0.5))


def test_weights_rows_sum_to_one_and_special_cases():
    for mu in [0.0, 0.2, 0.98, 1.0]:
        w = momentum_weights(9, mu, dtype=torch.float64)
        assert torch.allclose(w.sum(1), torch.ones(9, dtype=torch.float64), atol=1e-12)
        assert torch.equal(w, torch.tril(w))
    assert torch.equal(momentum_weights(5, 0.0), torch.eye(5))
    one = torch.zeros(5, 5)
    one[:, 0] = 1
    assert torch.equal(momentum_weights(5, 1.0), one)


def test_mu_special_cases_exact():
    x = torch.randn(16, 7, 3)
    assert temporal_momentum(x, 0.0, 2) is x                       # mu = 0: self-attention, untouched
    y = temporal_momentum(x, 1.0, 2)                               # mu = 1: frame 1 of each group, exactly
    assert torch.equal(y[:8], x[:1].expand(8, 7, 3)) and torch.equal(y[8:], x[8:9].expand(8, 7, 3))
    single = torch.randn(2, 7, 3)
    assert temporal_momentum(single, 0.98, 2) is single            # one frame per group: untouched


def test_groups_never_mix():
    x = torch.randn(16, 4, 3)
    y = x.clone()
    y[:8] += torch.randn(8, 4, 3)                                   # perturb group 0 only
    a, b = temporal_momentum(x, 0.9, 2), temporal_momentum(y, 0.9, 2)
    assert torch.equal(a[8:], b[8:]) and not torch.allclose(a[:8], b[:8])


def test_dtype_and_errors():
    x = torch.randn(8, 4, 3).half()
    assert temporal_momentum(x, 0.98).dtype == torch.float16
    with pytest.raises(ValueError, match="momentum"):
        temporal_momentum(x, 1.5)
    with pytest.raises(ValueError, match="groups"):
        temporal_momentum(torch.randn(7, 2), 0.5, 2)
    with pytest.raises(ValueError, match="momentum"):
        TemporalMomentumPatch(-0.1)


class _Sizes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def test_no_frames_x_frames_x_tokens_tensor():
    x = torch.randn(2 * 16, 64, 32)                 # 2 chunks x 16 frames, 64 tokens, 32 channels
    with _Sizes() as sizes:
        temporal_momentum(x, 0.98, 2)
    assert sizes.max_numel <= x.numel()              # F x F x tokens x C would be 16x larger


def test_patch_groups_by_cond_or_uncond_and_keeps_queries():
    p = TemporalMomentumPatch(0.7)
    n = torch.randn(12, 5, 4)
    q, k, v = p(n, n, n, {"cond_or_uncond": [1, 0, 0]})            # 3 chunks of 4 frames
    assert q is n and k is v
    assert torch.allclose(k, temporal_momentum_recursive(n, 0.7, 3), atol=1e-6)
    # An earlier patch replaced the K/V sources: both are averaged, separately.
    c, val = torch.randn(12, 9, 4), torch.randn(12, 9, 4)
    q, k, v = p(n, c, val, {"cond_or_uncond": [1, 0]})
    assert torch.allclose(k, temporal_momentum_recursive(c, 0.7, 2), atol=1e-6)
    assert torch.allclose(v, temporal_momentum_recursive(val, 0.7, 2), atol=1e-6)
    # None context means "n"; a batch-1 shared tensor is left alone.
    q, k, v = p(n, None, None, {"cond_or_uncond": [0]})
    assert torch.allclose(k, temporal_momentum_recursive(n, 0.7, 1), atol=1e-6) and v is None
    shared = torch.randn(1, 9, 4)
    assert p(n, shared, shared, {"cond_or_uncond": [0]})[1] is shared
    with pytest.raises(ValueError, match="Temporal Momentum Attention"):
        p(torch.randn(7, 5, 4), None, None, {"cond_or_uncond": [1, 0]})


def test_context_window_call_starts_afresh_at_window_start():
    """AnimateDiff-Evolved context windows call the model with only the window's frames (per CFG
    chunk); the momentum average then runs over the window and starts afresh at its first frame."""
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(0))   # [chunks, frames, tokens, C]
    window = [6, 7, 8, 9]
    n = video[:, window].reshape(8, 5, 4)
    extra = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
    _, k, _ = TemporalMomentumPatch(0.9)(n, n, n, extra)
    k = k.reshape(2, 4, 5, 4)
    assert torch.equal(k[:, 0], video[:, 6])                        # window's first frame: its own K
    expected = torch.stack([explicit_eq2(video[c, window], 0.9) for c in range(2)])
    assert torch.allclose(k, expected, atol=1e-6)


# --------------------------------------------------------------------------- per-frame mu_i

from training_free_video.attention.temporal_momentum import frame_momenta  # noqa: E402
from training_free_video.samplers.frame_schedule import FrameSchedule  # noqa: E402


def explicit_recursion(x, mus):
    """Eq. 2 with per-frame momentum for one video ``[F, ...]``: K'_1 = K_1, K'_i = mu_i K'_{i-1} + (1 - mu_i) K_i."""
    out = [x[0]]
    for i in range(1, x.shape[0]):
        out.append(mus[i] * out[-1] + (1 - mus[i]) * x[i])
    return torch.stack(out)


@pytest.mark.parametrize("mus", [[0.5, 0.0, 0.3, 0.9, 1.0, 0.98, 0.2, 0.7], [0.9, 1.0, 1.0, 0.0, 0.0, 0.5, 1.0, 0.0],
                                 [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.999]])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_per_frame_weights_equal_recursion(mus, groups):
    """The [F, F] weight matrix of a per-frame schedule reproduces the explicit recursion of Eq. 2
    with mu_i per frame; rows sum to 1, lower triangular, mu_1 unused."""
    frames = len(mus)
    x = torch.randn(groups * frames, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fast = temporal_momentum(x, mus, groups)
    assert torch.allclose(fast, temporal_momentum_recursive(x, mus, groups), atol=1e-12)
    for g in range(groups):
        sl = slice(g * frames, (g + 1) * frames)
        assert torch.allclose(fast[sl], explicit_recursion(x[sl], mus), atol=1e-12)
    w = momentum_weights(frames, mus, dtype=torch.float64)
    assert torch.allclose(w.sum(1), torch.ones(frames, dtype=torch.float64), atol=1e-12)
    assert torch.equal(w, torch.tril(w))
    assert torch.equal(w, momentum_weights(frames, [0.123] + mus[1:], dtype=torch.float64))    # mu_1 unused
    # W[i, i] = 1 - mu_i for i >= 2 (1-based) and W[i, j] = W[i-1, j] * mu_i below the diagonal.
    for i in range(1, frames):
        assert w[i, i].item() == pytest.approx(1 - mus[i], abs=1e-15)
        assert torch.allclose(w[i, :i], w[i - 1, :i] * mus[i], atol=1e-15)


def test_per_frame_mu_only_changes_its_frame_onward():
    """Changing mu_i changes K'_i and later frames only (the schedule acts per frame)."""
    x = torch.randn(8, 4, 3, dtype=torch.float64)
    a = temporal_momentum(x, [0.9] * 8)
    mus = [0.9] * 8
    mus[4] = 0.2
    b = temporal_momentum(x, mus)
    assert torch.equal(a[:4], b[:4]) and not torch.allclose(a[4], b[4])
    assert torch.allclose(b[4], 0.2 * a[3] + 0.8 * x[4])


def test_scalar_and_constant_schedule_identical():
    """The scalar path is today's code; a constant schedule (any mu_1) takes the same path exactly."""
    x = torch.randn(16, 7, 3)
    for mu in (0.0, 0.5, 0.98, 1.0):
        base = temporal_momentum(x, mu, 2)
        assert torch.equal(momentum_weights(8, [0.3] + [mu] * 7), momentum_weights(8, mu))
        assert torch.equal(temporal_momentum(x, [0.1] + [mu] * 7, 2), base)
        assert torch.equal(temporal_momentum(x, FrameSchedule((mu,)), 2), base)
    assert frame_momenta(FrameSchedule((0.2, 0.5, 0.9)), 4) == [0.2, 0.5, 0.9, 0.9]
    assert frame_momenta(FrameSchedule((0.5, 0.9)), 2) == 0.9          # only mu_2 is used: a scalar
    assert frame_momenta(FrameSchedule((0.0, 1.0), ramp=True), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_per_frame_errors():
    with pytest.raises(ValueError, match="one value per frame"):
        temporal_momentum(torch.randn(8, 2), [0.5, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        temporal_momentum(torch.randn(3, 2), [0.5, 0.5, 1.2])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        TemporalMomentumPatch([0.5, -0.1])


def test_patch_resolves_schedule_per_call_and_per_chunk():
    """The patch resolves the schedule to the frames of each CFG chunk at call time (repeat-last)."""
    p = TemporalMomentumPatch(FrameSchedule((0.0, 0.2, 0.9)))
    n = torch.randn(10, 5, 4)                                       # 2 chunks x 5 frames
    _, k, _ = p(n, n, n, {"cond_or_uncond": [1, 0]})
    assert torch.allclose(k, temporal_momentum_recursive(n, [0.0, 0.2, 0.9, 0.9, 0.9], 2), atol=1e-6)
    n3 = torch.randn(3, 5, 4)                                       # another call, 1 chunk x 3 frames
    _, k, _ = p(n3, n3, n3, {"cond_or_uncond": [0]})
    assert torch.allclose(k, explicit_recursion(n3, [0.0, 0.2, 0.9]), atol=1e-6)


def test_context_window_follows_global_frame_indices():
    """Under AnimateDiff-Evolved context windows mu_i follows the frames' global indices (sub_idxs,
    resolved to full_length); the window's first frame still keeps its own K."""
    ramp = FrameSchedule((0.0, 0.75), ramp=True)                    # 16 frames: mu_g = 0.05 * g (0-based g)
    mus = ramp.resolve(16)
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(2))
    for window in ([6, 7, 8, 9], [14, 15, 0, 1]):
        n = video[:, window].reshape(8, 5, 4)
        ad = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
        _, k, _ = TemporalMomentumPatch(ramp)(n, n, n, ad)
        expected = torch.stack([explicit_recursion(video[c, window], [mus[g] for g in window]) for c in range(2)])
        assert torch.allclose(k.reshape(2, 4, 5, 4), expected, atol=1e-6)
        assert torch.equal(k.reshape(2, 4, 5, 4)[:, 0], video[:, window[0]])
    # not windowed (ADE passes sub_idxs None): frames 1..F of the call
    n = video[0, :4]
    _, k, _ = TemporalMomentumPatch(ramp)(n, n, n, {"cond_or_uncond": [0], "ad_params": {"sub_idxs": None}})
    assert torch.allclose(k, explicit_recursion(n, ramp.resolve(4)), atol=1e-6)
