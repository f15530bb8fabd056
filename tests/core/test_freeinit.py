"""FreeInit core (samplers/freeinit.py): re-noising in sigma space, the pass loop, bad input (the
filters and frequency mixing are tested in test_spectral.py, whose reference loops, written out from
the official FreeInit code / diffusers ``free_init_utils.py``, are re-used here).
"""
import math

import pytest
import torch

from training_free_video.samplers import freeinit as fi
from training_free_video.samplers.gaussian_mixture import (EpsModelSampling, FlowModelSampling,
                                                           GaussianMixtureWorld, sample_ddim)
# the reference filter and mix (official FreeInit loops); pytest puts tests/core on sys.path
from test_spectral import _ref_filter, _ref_mix


# --------------------------------------------------------------------------- re-noising in sigma space

def test_renoised_unit_noise_eps_full_denoise_matches_diffusers_add_noise_up_to_comfy_scaling():
    ms = EpsModelSampling()
    g = torch.Generator().manual_seed(4)
    eps, x0 = torch.randn(1, 4, 2, 4, 4, generator=g), torch.randn(1, 4, 2, 4, 4, generator=g)
    s0 = float(ms.sigma_max)
    u = fi.renoised_unit_noise(ms, s0, eps, x0, None, max_denoise=True, min_signal=0.068)
    abar = 1.0 / (1.0 + s0 ** 2)
    torch.testing.assert_close(u, eps + math.sqrt(abar) * x0, rtol=1e-5, atol=1e-6)
    # diffusers: z_T = sqrt(abar) x0 + sqrt(1 - abar) eps; the same but for 0.24 % on eps
    z = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    assert float((u - z).abs().max()) < 0.003 * float(eps.abs().max()) + 1e-6
    # the SD ratio is above the default floor: the floor changes nothing on SD-family models
    ab, r = fi.renoise_ratio(ms, s0, eps, True, fi.DEFAULT_MIN_SIGNAL)
    assert ab == r and ab > fi.DEFAULT_MIN_SIGNAL


def test_renoised_unit_noise_starts_the_sampler_at_the_renoised_sample():
    """noise_scaling(sigma0, u, latent) == noise_scaling(sigma0, eps, x0): the sampler starts exactly at
    the result re-noised by the model's own forward process (img2img latent, no max_denoise)."""
    for ms, s0 in ((EpsModelSampling(), 6.0), (FlowModelSampling(3.0), 0.7)):
        g = torch.Generator().manual_seed(5)
        eps, x0, lat = (torch.randn(3, 4, 6, 6, generator=g) for _ in range(3))
        u = fi.renoised_unit_noise(ms, s0, eps, x0, lat, max_denoise=False, min_signal=0.0)
        torch.testing.assert_close(ms.noise_scaling(torch.tensor(s0), u, lat), ms.noise_scaling(torch.tensor(s0), eps, x0),
                                   rtol=1e-5, atol=1e-5)


def test_flow_at_sigma_one_the_floor_keeps_signal_and_zero_floor_discards_the_result():
    ms = FlowModelSampling(3.0)
    g = torch.Generator().manual_seed(6)
    eps, x0 = torch.randn(1, 16, 3, 4, 4, generator=g), torch.randn(1, 16, 3, 4, 4, generator=g)
    literal = fi.renoised_unit_noise(ms, 1.0, eps, x0, None, False, min_signal=0.0)
    torch.testing.assert_close(literal, eps)                     # a(1) = 0: nothing of x0 survives
    floored = fi.renoised_unit_noise(ms, 1.0, eps, x0, torch.randn(1, 16, 3, 4, 4), False)
    torch.testing.assert_close(floored, eps + fi.DEFAULT_MIN_SIGNAL * x0)   # the latent plays no role at sigma 1


def test_reinit_noise_is_the_mix_of_the_renoised_result_and_fresh_noise():
    ms = EpsModelSampling()
    g = torch.Generator().manual_seed(7)
    eps, x0, fresh = (torch.randn(8, 4, 8, 8, generator=g) for _ in range(3))
    lpf = fi.low_pass_filter((8, 8, 8), "butterworth")
    s0 = float(ms.sigma_max)
    got = fi.reinit_noise(ms, s0, eps, x0, fresh, lpf, None, True)
    u = eps + x0 / math.sqrt(1 + s0 ** 2)
    ref = _ref_mix(u.permute(1, 0, 2, 3)[None], fresh.permute(1, 0, 2, 3)[None], lpf)[0].permute(1, 0, 2, 3)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert got.dtype == eps.dtype


def test_fresh_noise_is_seeded_per_pass_and_differs_from_the_seed_own_noise():
    a, b = fi.fresh_noise((2, 3, 4), 5, 1), fi.fresh_noise((2, 3, 4), 5, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, fi.fresh_noise((2, 3, 4), 5, 2))
    assert not torch.allclose(a, fi.fresh_noise((2, 3, 4), 6, 1))
    base = torch.randn((2, 3, 4), generator=torch.Generator().manual_seed(6))    # RandomNoise(seed + 1)
    assert not torch.allclose(a, base)


# --------------------------------------------------------------------------- the loop

def _world(space, n=32):
    ms = EpsModelSampling() if space == "eps" else FlowModelSampling(3.0)
    world = GaussianMixtureWorld.default(dim=32, classes=4, spread=1.0, std=0.5)
    labels = torch.arange(n) % 4
    sigmas = torch.cat([torch.linspace(float(ms.sigma_max), float(ms.sigmas[0]), 6), torch.zeros(1)])
    eps = torch.randn(n, 2, 2, 4, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)  # D = 32
    return ms, world, labels, sigmas, eps


@pytest.mark.parametrize("space", ["eps", "flow"])
def test_loop_runs_iterations_passes_with_the_reference_reinit(space):
    ms, world, labels, sigmas, eps = _world(space)
    d = world.denoiser(ms, labels)
    starts, outs = [], []

    def sample(n, p):
        starts.append(n.clone())
        outs.append(sample_ddim(d, ms, n, sigmas, 3.0))
        return outs[-1]

    st = fi.Settings(iterations=3)
    world.nfe = 0
    out = fi.free_init(sample, eps, ms, sigmas[0], st, seed=9, max_denoise=True)
    assert len(starts) == 3 and world.nfe == fi.nfe(3, 2 * 6)
    torch.testing.assert_close(starts[0], eps, rtol=0, atol=0)
    torch.testing.assert_close(out, outs[-1], rtol=0, atol=0)
    lpf = _ref_filter((2, 4, 2), "butterworth")
    for p in (1, 2):
        ab = 1.0 / math.sqrt(1 + float(sigmas[0]) ** 2) if space == "eps" else 0.0
        r = max(ab, fi.DEFAULT_MIN_SIGNAL)
        u = eps + r * outs[p - 1]
        fresh = fi.fresh_noise(eps.shape, 9, p).double()
        ref = _ref_mix(u, fresh, lpf)
        torch.testing.assert_close(starts[p], ref, rtol=1e-6, atol=1e-6)   # a, b read in float32


def test_one_iteration_is_plain_sampling_exactly():
    ms, world, labels, sigmas, eps = _world("eps")
    d = world.denoiser(ms, labels)
    calls = []
    out = fi.free_init(lambda n, p: calls.append(p) or sample_ddim(d, ms, n, sigmas, 3.0), eps, ms, sigmas[0],
                       fi.Settings(iterations=1), seed=0, max_denoise=True)
    torch.testing.assert_close(out, sample_ddim(d, ms, eps, sigmas, 3.0), rtol=0, atol=0)
    assert calls == [0]


def test_same_seed_same_result_and_other_seed_differs():
    ms, world, labels, sigmas, eps = _world("flow")
    d = world.denoiser(ms, labels)
    run = lambda seed: fi.free_init(lambda n, p: sample_ddim(d, ms, n, sigmas, 3.0), eps, ms, sigmas[0],
                                    fi.Settings(iterations=2), seed=seed)
    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.allclose(run(1), run(2))


def test_one_frame_latent_runs_spatial_freeinit():
    """An image (one frame): the low spatial frequencies of the re-noised result are kept."""
    ms = EpsModelSampling()
    g = torch.Generator().manual_seed(10)
    eps, x0, fresh = (torch.randn(1, 4, 16, 16, generator=g) for _ in range(3))
    lpf = fi.low_pass_filter(fi.latent_thw(eps.shape), "butterworth")
    out = fi.reinit_noise(ms, 14.6, eps, x0, fresh, lpf, None, True)
    spec = lambda x: torch.fft.fftshift(torch.fft.fftn(x[0], dim=(-2, -1)), dim=(-2, -1))
    u = fi.renoised_unit_noise(ms, 14.6, eps, x0, None, True)
    torch.testing.assert_close(spec(out)[:, 8, 8], spec(u)[:, 8, 8], rtol=1e-4, atol=1e-3)   # DC from the result
    torch.testing.assert_close(spec(out)[:, 0, 0], spec(fresh)[:, 0, 0], rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kw,msg", [
    ({"iterations": 0}, "^iterations must be an integer >= 1"),
    ({"iterations": 2.5}, "^iterations must be an integer >= 1"),
    ({"d_s": 0.0}, r"^d_s must be in \(0, 1\]"),
    ({"d_t": 1.5}, r"^d_t must be in \(0, 1\]"),
    ({"d_t": -0.1}, r"^d_t must be in \(0, 1\]"),
    ({"filter_type": "hann"}, "^filter must be one of"),
    ({"order": 0}, "^order must be an integer >= 1"),
    ({"min_signal": -1.0}, "^min_signal must be a finite number >= 0"),
    ({"min_signal": float("nan")}, "^min_signal must be a finite number >= 0"),
    ({"grid": "other"}, "^grid must be one of"),
])
def test_bad_settings_raise_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        fi.validate(fi.Settings(**kw))
    assert fi.validate(fi.Settings(d_s=1.0, d_t=1.0)).d_s == 1.0


def test_bad_latent_rank_raises():
    ms = EpsModelSampling()
    with pytest.raises(ValueError, match="image-model latent"):
        fi.free_init(lambda n, p: n, torch.zeros(2, 3, 4), ms, 1.0, fi.Settings(iterations=2))


def test_coarse_to_fine_schedules_and_nfe():
    """diffusers use_fast_sampling: pass p has max(1, int(N / k * (p + 1))) steps; here taken from the
    sampler's own schedule at evenly spaced indices (same first and last sigma)."""
    assert [fi.pass_steps(50, p, 3, True) for p in range(3)] == [16, 33, 50]
    assert [fi.pass_steps(50, p, 3, False) for p in range(3)] == [50, 50, 50]
    sig = torch.linspace(14.6, 0.03, 50).tolist() + [0.0]
    sig = torch.tensor(sig)
    s0 = fi.pass_sigmas(sig, 0, 3, True)
    assert s0.shape[0] == 17 and float(s0[0]) == float(sig[0]) and float(s0[-1]) == 0.0
    assert bool((s0[:-1] > s0[1:]).all())
    assert fi.pass_sigmas(sig, 2, 3, True) is sig
    assert fi.nfe(3, 100, 50, True) == 2 * (16 + 33 + 50) and fi.nfe(3, 100) == 300


# --------------------------------------------------------------------------- which axis holds the frames (issue 14)

def _loop_starts(eps, batch_frames=None):
    """The start noise of every pass of a 3-pass FreeInit on a toy denoiser (x0 = 0.5 x, per sample)."""
    ms = EpsModelSampling()
    starts = []

    def sample(n, p):
        starts.append(n.clone())
        return 0.5 * n
    kw = {} if batch_frames is None else {"batch_frames": batch_frames}
    fi.free_init(sample, eps, ms, 14.6, fi.Settings(iterations=3), seed=4, max_denoise=True, **kw)
    return starts


def test_one_picture_frame_per_batch_entry_is_a_video_of_the_batch():
    """[F, C, 1, H, W] (Qwen-Image: one picture frame per batch entry) is F frames, as Dependency
    Noise and TMA see it: every pass starts exactly as for the same frames as [F, C, H, W] (before,
    each entry was a one-frame video: 2-D FreeInit per frame, no temporal low-pass)."""
    eps = torch.randn(4, 16, 6, 6, generator=torch.Generator().manual_seed(2))
    flat = _loop_starts(eps)
    five = _loop_starts(eps.unsqueeze(2))
    assert [tuple(s.shape) for s in five] == [(4, 16, 1, 6, 6)] * 3
    for a, b in zip(flat, five):
        torch.testing.assert_close(b[:, :, 0], a, rtol=0, atol=0)
    assert fi.latent_thw((4, 16, 1, 6, 6)) == (4, 6, 6)
    assert fi.latent_thw((4, 16, 1, 6, 6), batch_frames=False) == (1, 6, 6)
    assert fi.latent_thw((1, 16, 1, 6, 6)) == (1, 6, 6) and fi.latent_thw((2, 16, 5, 6, 6)) == (5, 6, 6)
    # a real video latent (T > 1) keeps its frames on axis 2 whatever batch_frames says
    vid = torch.randn(2, 4, 5, 6, 6, generator=torch.Generator().manual_seed(3))
    for a, b in zip(_loop_starts(vid, True), _loop_starts(vid, False)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("five_d", [False, True])
def test_independent_images_get_2d_freeinit_each(five_d):
    """batch_frames=False (no model attends across the batch): image i's re-initialised noise is
    exactly the 2-D FreeInit of image i alone with its own fresh noise, so a batch of independent
    images stays independent. With batch_frames=True the temporal low-pass at 4 frames (d_t 0.25)
    keeps only the batch mean at low frequencies: every image's next start shares them."""
    ms = EpsModelSampling()
    g = torch.Generator().manual_seed(11)
    eps, x0, fresh = (torch.randn(4, 4, 16, 16, generator=g) for _ in range(3))
    x0 = x0 * 3.0                                   # four clearly different results
    if five_d:
        eps, x0, fresh = eps.unsqueeze(2), x0.unsqueeze(2), fresh.unsqueeze(2)
    lpf = fi.low_pass_filter(fi.latent_thw(eps.shape, batch_frames=False), "butterworth")
    assert tuple(lpf.shape) == (1, 16, 16)
    out = fi.reinit_noise(ms, 14.6, eps, x0, fresh, lpf, None, True, batch_frames=False)
    assert out.shape == eps.shape
    for i in range(4):
        one = fi.reinit_noise(ms, 14.6, eps[i:i + 1], x0[i:i + 1], fresh[i:i + 1], lpf, None, True,
                              batch_frames=False)
        torch.testing.assert_close(out[i:i + 1], one, rtol=1e-5, atol=1e-5)

    # what each image carries into its next pass: the start minus the start from a zero result (the
    # mix is linear): frames mode carries (almost) only the batch mean of the results to every image
    lpf_t = fi.low_pass_filter(fi.latent_thw(eps.shape), "butterworth")
    zero = torch.zeros_like(x0)
    carried = lambda lp, bf: (fi.reinit_noise(ms, 14.6, eps, x0, fresh, lp, None, True, batch_frames=bf)
                              - fi.reinit_noise(ms, 14.6, eps, zero, fresh, lp, None, True, batch_frames=bf))
    own, coupled = carried(lpf, False), carried(lpf_t, True)
    spread = lambda z: float((z - z.mean(0, keepdim=True)).abs().max() / z.abs().max())
    assert spread(coupled) < 0.02                   # four different results -> one shared composition
    assert spread(own) > 0.5                        # each image keeps its own
