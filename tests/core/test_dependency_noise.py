"""ZS^2 dependency noise and the PYoCo mixed/progressive models (docs/algorithms.md section 3.1)."""
import math

import pytest
import torch

from training_free_video.samplers.dependency_noise import (
    NOISE_MODELS, dependency_noise, frames_layout, latent_noise, mixed_noise, progressive_noise, video_noise)
from training_free_video.samplers.frame_schedule import FrameSchedule


def listing_reference(shape, kl_lambda, random_search, linear_search, generator, clamp=True):
    """Listing 1 literally (elementwise torch.kl_div, a sequential strict-< random scan, the float32
    linear search whose NaN errors fail the comparison), per sample, with the two fixes
    of docs/algorithms.md section 3.1: the KL is averaged per sample and (if ``clamp``) the returned
    alpha is clamped to [0, 1].
    Candidates are drawn in the implementation's order (a block of ``random_search`` per frame).
    ``kl_lambda``: a number, or a list ``[lambda_2, ..., lambda_F]`` (frame i searched against lambda_i)."""
    b, f, *rest = shape
    n = math.prod(rest)
    frames = [torch.randn((b, n), generator=generator)]
    alphas = [torch.zeros(b)]
    lambdas = list(kl_lambda) if isinstance(kl_lambda, (list, tuple)) else [kl_lambda] * (f - 1)
    for i in range(1, f):
        lam = lambdas[i - 1]
        prev = frames[-1]
        cands = torch.randn((random_search, b, n), generator=generator)
        out, al = [], []
        for s in range(b):
            p = prev[s]

            def err(c):
                return (torch.kl_div(c, p, log_target=True, reduction=0).mean() - lam).abs()

            bound = torch.tensor(float("inf"))
            z = None
            for r in range(random_search):
                e = err(cands[r, s])
                if e < bound:
                    z, bound = cands[r, s], e
            alpha = torch.tensor(0.1)
            step = torch.tensor(0.1)
            for _ in range(linear_search):
                e = err(torch.sqrt(alpha) * p + torch.sqrt(1 - alpha) * z)
                if e <= bound:           # NaN (alpha outside [0, 1]) -> False, as in the listing
                    alpha = alpha + step
                    bound = e
                else:
                    alpha = alpha - 0.8 * step
                    step = step * 0.2
            if clamp:
                alpha = alpha.clamp(0, 1)
            out.append(torch.sqrt(alpha) * p + torch.sqrt(1 - alpha) * z)
            al.append(alpha)
        frames.append(torch.stack(out))
        alphas.append(torch.stack(al))
    return torch.stack(frames, 1).reshape(shape), torch.stack(alphas, 1)


def adjacent_corr(x):
    """Mean correlation of consecutive frames of ``[B, F, ...]``."""
    a, b = x[:, 1:].flatten(2), x[:, :-1].flatten(2)
    return torch.nn.functional.cosine_similarity(a, b, dim=2).mean().item()


@pytest.mark.parametrize("kl_lambda", [0.01, 0.03, 0.3, 1.0, 5.0, 1e-6])
@pytest.mark.parametrize("shape", [(3, 5, 4, 8, 8), (1, 4, 4, 32, 32)])
def test_equals_listing_with_fixes(kl_lambda, shape):
    x, alpha = dependency_noise(shape, kl_lambda, 10, 15, torch.Generator().manual_seed(7), return_alpha=True)
    ref, ref_alpha = listing_reference(shape, kl_lambda, 10, 15, torch.Generator().manual_seed(7))
    assert torch.allclose(alpha, ref_alpha, atol=1e-6), (alpha, ref_alpha)
    assert torch.allclose(x, ref, atol=1e-5)


def test_defaults_land_near_alpha_0984():
    x, alpha = dependency_noise((2, 8, 4, 64, 64), generator=torch.Generator().manual_seed(0), return_alpha=True)
    assert torch.allclose(alpha[:, 1:], torch.full_like(alpha[:, 1:], 0.984), atol=2e-3)
    assert 0.985 < adjacent_corr(x) < 0.995


def test_frames_are_marginally_standard_normal():
    x = dependency_noise((2, 16, 4, 64, 64), 0.01, generator=torch.Generator().manual_seed(1))
    n = 4 * 64 * 64
    per_frame = x.flatten(2)
    mean, std = per_frame.mean(2), per_frame.std(2)
    assert mean.abs().max() < 5 / math.sqrt(n)          # 0.039: 5 sigma of a frame mean
    assert (std - 1).abs().max() < 0.03
    # Averaged over videos (frame-mean noise 0.0028): no drift beyond the random search's small
    # selection bias (the chosen candidate leans towards exp(previous frame); measured +0.011 mean
    # and +1% std at frame 16 for 4 x 64 x 64 frames, growing as 1/sqrt(elements) for smaller frames).
    many = dependency_noise((8, 16, 4, 64, 64), 0.01, generator=torch.Generator().manual_seed(2)).flatten(2)
    assert many.mean(2).mean(0).abs().max() < 0.02
    assert (many.std(2).mean(0) - 1).abs().max() < 0.02


def test_adjacent_correlation_rises_as_lambda_falls():
    corrs = []
    for lam in [5.0, 1.0, 0.3, 0.1, 0.03, 0.01]:
        x = dependency_noise((2, 8, 4, 32, 32), lam, generator=torch.Generator().manual_seed(3))
        corrs.append(adjacent_corr(x))
    assert all(a < b for a, b in zip(corrs, corrs[1:])), corrs
    assert abs(corrs[0]) < 0.05 and corrs[-1] > 0.98
    # More linear iterations let lambda -> 0 approach a still video.
    x, alpha = dependency_noise((1, 6, 4, 32, 32), 0.0, 10, 60, torch.Generator().manual_seed(3), return_alpha=True)
    assert alpha[:, 1:].min() > 0.99          # past the 15-iteration cap of 0.984


@pytest.mark.parametrize("kl_lambda", [0.0, 1e-9, 1e-3, 0.01, 0.0166, 0.5, 2.0, 1e3, 1e9])
@pytest.mark.parametrize("linear_search", [0, 1, 9, 10, 14, 15, 40])
def test_alpha_in_unit_interval_never_nan(kl_lambda, linear_search):
    x, alpha = dependency_noise((3, 4, 2, 8, 8), kl_lambda, 10, linear_search,
                                torch.Generator().manual_seed(4), return_alpha=True)
    assert torch.isfinite(x).all() and torch.isfinite(alpha).all()
    assert (alpha >= 0).all() and (alpha <= 1).all()


def test_clamp_fixes_the_listing_nan():
    """With 14 linear iterations lambda = 0.01 ends on alpha = 1.0000001 (float32): the literal listing
    returns NaN noise there; the fixed model returns alpha = 1 and finite noise."""
    shape = (2, 2, 4, 64, 64)
    raw, raw_alpha = listing_reference(shape, 0.01, 10, 14, torch.Generator().manual_seed(0), clamp=False)
    assert (raw_alpha[:, 1:] > 1).all() and torch.isnan(raw[:, 1:]).all()
    x, alpha = dependency_noise(shape, 0.01, 10, 14, torch.Generator().manual_seed(0), return_alpha=True)
    assert torch.equal(alpha[:, 1:], torch.ones_like(alpha[:, 1:])) and torch.isfinite(x).all()


def test_per_sample_kl_not_batch_mean():
    """Videos in one batch are searched independently: each equals the search run with its own KL
    (the listing's scalar reduction would tie them together)."""
    shape = (4, 3, 4, 16, 16)
    _, alpha = dependency_noise(shape, 0.3, generator=torch.Generator().manual_seed(5), return_alpha=True)
    _, ref_alpha = listing_reference(shape, 0.3, 10, 15, torch.Generator().manual_seed(5))
    assert torch.allclose(alpha, ref_alpha, atol=1e-6)
    assert len(set(alpha[:, 1].tolist())) > 1      # different videos land on different alphas


def test_same_seed_same_tensor_and_global_rng_untouched():
    a = dependency_noise((1, 8, 4, 16, 16), generator=torch.Generator().manual_seed(11))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    b = dependency_noise((1, 8, 4, 16, 16), generator=torch.Generator().manual_seed(11))
    assert torch.equal(torch.get_rng_state(), state)
    c = dependency_noise((1, 8, 4, 16, 16), generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    for model in NOISE_MODELS:
        assert torch.equal(latent_noise((8, 4, 8, 8), 5, model), latent_noise((8, 4, 8, 8), 5, model))
        assert not torch.equal(latent_noise((8, 4, 8, 8), 5, model), latent_noise((8, 4, 8, 8), 6, model))


def test_one_frame_is_plain_gaussian():
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(dependency_noise((2, 1, 4, 8, 8), generator=g1), torch.randn((2, 4 * 8 * 8), generator=g2).reshape(2, 1, 4, 8, 8))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_mixed_and_progressive_correlations(alpha):
    shape = (64, 5, 4, 16, 16)
    m = mixed_noise(shape, alpha, torch.Generator().manual_seed(0)).flatten(2)
    p = progressive_noise(shape, alpha, torch.Generator().manual_seed(0)).flatten(2)
    for x in (m, p):
        assert abs(x.var().item() - 1) < 0.02 and abs(x.mean().item()) < 0.02
    cos = torch.nn.functional.cosine_similarity
    # mixed: every pair of frames has correlation alpha; progressive: frames k apart alpha^(k/2).
    assert abs(cos(m[:, 0], m[:, 4], dim=1).mean().item() - alpha) < 0.02
    assert abs(cos(m[:, 1], m[:, 2], dim=1).mean().item() - alpha) < 0.02
    assert abs(cos(p[:, 1], p[:, 2], dim=1).mean().item() - alpha ** 0.5) < 0.02
    assert abs(cos(p[:, 0], p[:, 4], dim=1).mean().item() - alpha ** 2) < 0.02


def test_mixed_progressive_extremes_and_errors():
    one = mixed_noise((1, 4, 2, 4, 4), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(one[:, 0], one[:, 3])
    prog = progressive_noise((1, 4, 2, 4, 4), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(prog[:, 0], prog[:, 3])
    with pytest.raises(ValueError, match="alpha"):
        mixed_noise((1, 4, 2, 4, 4), 1.5)
    with pytest.raises(ValueError, match="alpha"):
        progressive_noise((1, 4, 2, 4, 4), -0.1)
    with pytest.raises(ValueError, match="kl_lambda"):
        dependency_noise((1, 4, 2, 4, 4), -0.01)
    with pytest.raises(ValueError, match="random_search"):
        dependency_noise((1, 4, 2, 4, 4), 0.01, random_search=0)
    with pytest.raises(ValueError, match="noise_model"):
        video_noise("brownian", (1, 4, 2, 4, 4))


def test_latent_layouts():
    # Image model: [F, C, H, W] is one video with the frames as the batch.
    x = latent_noise((6, 4, 8, 8), 3)
    ref = dependency_noise((1, 6, 4, 8, 8), generator=torch.Generator().manual_seed(3))[0]
    assert x.shape == (6, 4, 8, 8) and torch.equal(x, ref)
    # Video model: [B, C, T, H, W], frames along axis 2, each batch entry its own video.
    v = latent_noise((2, 16, 5, 8, 8), 3)
    ref = dependency_noise((2, 5, 16, 8, 8), generator=torch.Generator().manual_seed(3)).transpose(1, 2)
    assert v.shape == (2, 16, 5, 8, 8) and torch.equal(v, ref)
    cos = torch.nn.functional.cosine_similarity
    assert cos(v[:, :, 0].flatten(1), v[:, :, 1].flatten(1), dim=1).min() > 0.95   # frames correlated
    assert cos(v[0, :, 0].flatten(), v[1, :, 0].flatten(), dim=0).abs() < 0.15    # videos independent
    assert frames_layout((6, 4, 8, 8)) == ((1, 6, 4, 8, 8), "batch")
    assert frames_layout((2, 16, 5, 4, 4)) == ((2, 5, 16, 4, 4), "axis2")
    # one picture frame per batch entry (Qwen-Image's [B, 16, 1, H, W]): the batch holds the frames
    assert frames_layout((6, 16, 1, 4, 4)) == ((1, 6, 16, 1, 4, 4), "batch")
    assert frames_layout((1, 16, 1, 4, 4)) == ((1, 1, 16, 4, 4), "axis2")


def test_single_picture_frame_5d_latent_correlates_along_the_batch():
    """[F, C, 1, H, W] (Qwen-Image): adjacent batch entries are correlated as frames (before this,
    each was a one-frame video and the noise was i.i.d.), and equal the 4-D frames-as-batch noise."""
    x5 = latent_noise((8, 4, 1, 16, 16), seed=3)
    x4 = latent_noise((8, 4, 16, 16), seed=3)
    assert x5.shape == (8, 4, 1, 16, 16)
    assert torch.equal(x5[:, :, 0], x4)
    corr = torch.nn.functional.cosine_similarity(x5[1:].flatten(1), x5[:-1].flatten(1)).mean()
    assert corr > 0.9
    with pytest.raises(ValueError, match="latent"):
        latent_noise((4, 8, 8), 0)


# --------------------------------------------------------------------------- per-frame lambda_i

def adjacent_kl(x):
    """Measured KL(frame_i, frame_{i-1}) = mean(exp(p) * (p - q)) per video and frame pair: ``[B, F - 1]``."""
    p, q = x[:, :-1].flatten(2), x[:, 1:].flatten(2)
    return (p.exp() * (p - q)).mean(2)


@pytest.mark.parametrize("lambdas", [[0.01, 0.3, 0.03, 1.0, 0.0, 5.0], [1e-3, 1e-3, 2.0, 0.05, 0.05, 0.5]])
def test_per_frame_lambda_equals_listing_frame_by_frame(lambdas):
    """Frame i is searched against lambda_i exactly as Listing 1 would search with that lambda."""
    shape = (2, 7, 4, 8, 8)
    x, alpha = dependency_noise(shape, lambdas, generator=torch.Generator().manual_seed(8), return_alpha=True)
    ref, ref_alpha = listing_reference(shape, lambdas, 10, 15, torch.Generator().manual_seed(8))
    assert torch.allclose(alpha, ref_alpha, atol=1e-6) and torch.allclose(x, ref, atol=1e-5)


@pytest.mark.parametrize("schedule", [[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0], [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01],
                                      [0.02, 1.0, 0.02, 1.0, 0.02, 1.0, 0.02]])
def test_adjacent_frame_kl_follows_lambda_i(schedule):
    """The measured KL between frames i-1 and i follows lambda_i frame by frame (rising, falling and
    alternating schedules; 4 x 64 x 64 frames, mean of 4 videos): within the linear search's coarse
    alpha grid (measured 0.58-1.00 x lambda_i per frame; the grid misses small lambdas by up to 0.009),
    and ordered as the lambdas are: a frame with a larger lambda_i has a larger measured KL."""
    x = dependency_noise((4, 8, 4, 64, 64), schedule, generator=torch.Generator().manual_seed(0))
    measured = adjacent_kl(x).mean(0)
    lam = torch.tensor(schedule)
    assert ((measured - lam).abs() <= 0.3 * lam + 0.01).all(), (measured, lam)
    smaller = lam.unsqueeze(1) < lam.unsqueeze(0)                  # pairs (a, b) with lambda_a < lambda_b
    assert (measured.unsqueeze(1) < measured.unsqueeze(0))[smaller].all(), (measured, lam)
    # and the same frame-to-frame statistics as a scalar run at that lambda
    for i in (0, 6):
        scalar = adjacent_kl(dependency_noise((4, 3, 4, 64, 64), schedule[i],
                                              generator=torch.Generator().manual_seed(1))).mean()
        assert 0.7 < (measured[i] / scalar).item() < 1.4


def test_constant_schedule_equals_scalar_exactly():
    shape = (2, 6, 4, 16, 16)
    base = dependency_noise(shape, 0.03, generator=torch.Generator().manual_seed(3))
    for kl in ([0.03] * 5, FrameSchedule((0.03,)), FrameSchedule((0.03, 0.03), ramp=True)):
        assert torch.equal(dependency_noise(shape, kl, generator=torch.Generator().manual_seed(3)), base)
    assert torch.equal(latent_noise((6, 4, 16, 16), 3, kl_lambda=FrameSchedule((0.01,))), latent_noise((6, 4, 16, 16), 3))


def test_schedule_resolved_to_the_latents_frames():
    """latent_noise resolves a FrameSchedule to F - 1 values (repeat-last / ramp) for either layout."""
    sched = FrameSchedule((0.01, 0.5))                 # frames 2 and 3..F
    x = latent_noise((5, 4, 8, 8), 2, kl_lambda=sched)
    ref = dependency_noise((1, 5, 4, 8, 8), [0.01, 0.5, 0.5, 0.5], generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(x, ref)
    ramp = FrameSchedule((0.0, 0.3), ramp=True)
    v = latent_noise((2, 4, 4, 8, 8), 2, kl_lambda=ramp)
    ref = dependency_noise((2, 4, 4, 8, 8), [0.0, 0.15, 0.3], generator=torch.Generator().manual_seed(2))
    assert torch.equal(v, ref.transpose(1, 2))


def test_per_frame_lambda_errors():
    with pytest.raises(ValueError, match="one value per frame after the first"):
        dependency_noise((1, 4, 2, 4, 4), [0.01, 0.02])
    with pytest.raises(ValueError, match="kl_lambda must be a finite number >= 0"):
        dependency_noise((1, 3, 2, 4, 4), [0.01, -0.02])
