"""Spectral tools (samplers/spectral.py): FreeInit's 3-D low-pass filters, frequency mixing, latent
layouts and the 1-D (audio) mix. References are written out here from the official FreeInit code /
diffusers ``free_init_utils.py`` (loops over t, h, w), independently of the module's vectorised code;
tests/core/test_freeinit.py re-uses them for the pass loop.
"""
import math

import pytest
import torch

from training_free_video.samplers import freeinit as fi
from training_free_video.samplers import spectral as sp


# --------------------------------------------------------------------------- references (diffusers loops)

def _ref_filter(shape, kind, d_s=0.25, d_t=0.25, n=4):
    """diffusers ``_get_free_init_freq_filter`` / official ``*_low_pass_filter``, verbatim maths."""
    T, H, W = shape
    mask = torch.zeros(T, H, W, dtype=torch.float64)
    if kind == "box":
        ts, tt = round(int(H // 2) * d_s), round(T // 2 * d_t)
        c, r, cc = T // 2, H // 2, W // 2
        mask[c - tt:c + tt, r - ts:r + ts, cc - ts:cc + ts] = 1.0
        return mask
    for t in range(T):
        for h in range(H):
            for w in range(W):
                d = ((d_s / d_t) * (2 * t / T - 1)) ** 2 + (2 * h / H - 1) ** 2 + (2 * w / W - 1) ** 2
                if kind == "butterworth":
                    mask[t, h, w] = 1 / (1 + (d / d_s ** 2) ** n)
                elif kind == "gaussian":
                    mask[t, h, w] = math.exp(-1 / (2 * d_s ** 2) * d)
                else:
                    mask[t, h, w] = 1 if d <= d_s * 2 else 0
    return mask


def _ref_mix(x, noise, lpf):
    """Official ``freq_mix_3d`` on [B, C, T, H, W]."""
    xf = torch.fft.fftshift(torch.fft.fftn(x, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    nf = torch.fft.fftshift(torch.fft.fftn(noise, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    mixed = xf * lpf + nf * (1 - lpf)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=(-3, -2, -1)), dim=(-3, -2, -1)).real


# --------------------------------------------------------------------------- filters

@pytest.mark.parametrize("kind", ["butterworth", "gaussian", "ideal", "box"])
@pytest.mark.parametrize("shape,d_s,d_t", [((16, 8, 8), 0.25, 0.25), ((4, 6, 10), 0.4, 0.2), ((8, 16, 12), 1.0, 0.5)])
def test_filters_equal_the_reference_on_even_sizes(kind, shape, d_s, d_t):
    ref = _ref_filter(shape, kind, d_s, d_t)
    lit = sp.low_pass_filter(shape, kind, d_s, d_t, 4, grid="reference")
    assert lit.shape == shape and lit.dtype == torch.float32
    torch.testing.assert_close(lit.double(), ref, rtol=1e-6, atol=1e-7)
    got = sp.low_pass_filter(shape, kind, d_s, d_t, 4, grid="centred")
    T, H, _ = shape
    if kind == "box" and 0 in (round(T // 2 * d_t), round(H // 2 * d_s)):
        # an axis whose box half-width rounds to 0: the reference keeps nothing, centred keeps the DC bin
        assert float(ref.sum()) == 0.0 and float(got[T // 2, H // 2, shape[2] // 2]) == 1.0
    else:                                   # the centred grid is the reference on even sizes
        torch.testing.assert_close(got, lit)


@pytest.mark.parametrize("kind", ["butterworth", "gaussian", "ideal"])
def test_reference_grid_on_odd_sizes_is_the_literal_formula_and_centred_grid_is_centred(kind):
    shape = (9, 7, 8)
    torch.testing.assert_close(sp.low_pass_filter(shape, kind, grid="reference").double(), _ref_filter(shape, kind),
                               rtol=1e-6, atol=1e-7)
    c = sp.low_pass_filter(shape, kind, grid="centred")
    assert float(c[4, 3, 4]) == 1.0                               # the DC bin (N // 2 on each axis) passes fully
    torch.testing.assert_close(c[3], c[5])                        # symmetric around DC in time (odd T)
    torch.testing.assert_close(c[:, 2], c[:, 4])                  # and in height (odd H)
    r = sp.low_pass_filter(shape, kind, grid="reference")
    assert float(r[4, 3, 4]) < 1.0 or kind == "ideal"             # the literal formula is off centre


def test_butterworth_values_and_cutoff():
    f = sp.low_pass_filter((1, 64, 64), "butterworth", 0.25, 0.25, 4)
    assert float(f[0, 32, 32]) == 1.0                             # DC
    # |f| = d_s exactly -> 1/2 (index 32 + 8 on a 64 axis: 2*8/64 = 0.25)
    assert abs(float(f[0, 32, 40]) - 0.5) < 1e-6
    assert abs(float(f[0, 32, 48]) - 1 / (1 + 2 ** 8)) < 1e-7     # |f| = 0.5: 1/(1+(0.5/0.25)^8)
    assert float(f.max()) <= 1.0 and float(f.min()) >= 0.0
    g = sp.low_pass_filter((1, 64, 64), "gaussian", 0.25, 0.25)
    assert abs(float(g[0, 32, 40]) - math.exp(-0.5)) < 1e-6


def test_d_t_scales_the_temporal_axis_only():
    narrow = sp.low_pass_filter((16, 8, 8), "butterworth", 0.25, 0.125)
    wide = sp.low_pass_filter((16, 8, 8), "butterworth", 0.25, 0.5)
    assert float(narrow[9, 4, 4]) < float(wide[9, 4, 4])          # temporal bin +1: d_t larger keeps more
    torch.testing.assert_close(narrow[8], wide[8])                # temporal DC plane: spatial filter unchanged


def test_one_frame_centred_grid_is_the_2d_spatial_filter_and_reference_keeps_nothing():
    one = sp.low_pass_filter((1, 16, 16), "butterworth")
    ref2d = sp.low_pass_filter((2, 16, 16), "butterworth")[1]     # the temporal-DC plane of an even grid
    torch.testing.assert_close(one[0], ref2d)
    assert float(one.max()) == 1.0
    lit = sp.low_pass_filter((1, 16, 16), "butterworth", grid="reference")
    assert float(lit.max()) < 2e-5                                # reference: DC treated as frequency -1
    # box: the reference keeps nothing for T <= 5 at d_t 0.25; centred keeps the DC plane
    assert float(sp.low_pass_filter((1, 16, 16), "box", grid="reference").sum()) == 0.0
    assert float(sp.low_pass_filter((1, 16, 16), "box")[0, 8, 8]) == 1.0


# --------------------------------------------------------------------------- mixing

def test_mix_equals_the_official_freq_mix_3d():
    g = torch.Generator().manual_seed(0)
    x, n = torch.randn(2, 3, 8, 6, 10, generator=g), torch.randn(2, 3, 8, 6, 10, generator=g)
    lpf = sp.low_pass_filter((8, 6, 10), "gaussian", 0.3, 0.2)
    torch.testing.assert_close(sp.frequency_mix(x, n, lpf), _ref_mix(x, n, lpf), rtol=1e-5, atol=1e-5)


def test_low_pass_of_a_pure_low_frequency_signal_is_the_identity():
    """A signal made only of bins where the (ideal) filter is 1 comes through unchanged; fresh noise's
    high frequencies fill the rest, and its low ones are gone."""
    T, H, W = 8, 16, 16
    lpf = sp.low_pass_filter((T, H, W), "ideal", 0.25, 0.25)
    g = torch.Generator().manual_seed(1)
    spec = torch.randn(1, 2, T, H, W, generator=g, dtype=torch.complex64) * lpf   # only pass-band bins
    low = torch.fft.ifftn(torch.fft.ifftshift(spec, dim=(-3, -2, -1)), dim=(-3, -2, -1)).real
    noise = torch.randn(1, 2, T, H, W, generator=g)
    mixed = sp.frequency_mix(low, noise, lpf)
    noise_high = sp.frequency_mix(torch.zeros_like(noise), noise, lpf)
    torch.testing.assert_close(mixed, low + noise_high, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sp.frequency_mix(low, torch.zeros_like(low), lpf), low, rtol=1e-5, atol=1e-5)


def test_mix_keeps_low_from_one_and_high_from_the_other():
    T, H, W = 8, 16, 16
    lpf = sp.low_pass_filter((T, H, W), "butterworth")
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1, 4, T, H, W, generator=g), torch.randn(1, 4, T, H, W, generator=g)
    m = sp.frequency_mix(a, b, lpf)
    spec = lambda x: torch.fft.fftshift(torch.fft.fftn(x, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    sm, sa, sb = spec(m), spec(a), spec(b)
    dc = (slice(None), slice(None), T // 2, H // 2, W // 2)
    torch.testing.assert_close(sm[dc], sa[dc], rtol=1e-4, atol=1e-3)             # DC: all from a
    hf = (slice(None), slice(None), 0, 0, 0)                                      # highest frequency corner
    torch.testing.assert_close(sm[hf], sb[hf], rtol=1e-4, atol=1e-3)             # from b
    torch.testing.assert_close(sm, sa * lpf + sb * (1 - lpf), rtol=1e-4, atol=1e-3)
    # mixing is linear and LPF + HPF = identity
    torch.testing.assert_close(sp.frequency_mix(a, a, lpf), a, rtol=1e-5, atol=1e-5)


def test_frames_as_batch_layout_ffts_over_the_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 4, 6, 6, generator=g)          # 8 frames of an image model
    n = torch.randn(8, 4, 6, 6, generator=g)
    lpf = sp.low_pass_filter((8, 6, 6), "butterworth")
    got = sp.mix_latents(x, n, lpf)
    ref = _ref_mix(x.permute(1, 0, 2, 3)[None], n.permute(1, 0, 2, 3)[None], lpf)[0].permute(1, 0, 2, 3)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert sp.latent_thw(x.shape) == (8, 6, 6) and sp.latent_thw((1, 16, 5, 4, 6)) == (5, 4, 6)
    with pytest.raises(ValueError, match="3-D latent"):
        sp.to_video_layout(torch.zeros(2, 3, 4))


# --------------------------------------------------------------------------- one axis; re-exports

def test_mix_along_axis_takes_low_frequencies_from_low_and_high_from_high_on_any_axis():
    t = 16
    low = torch.ones(1, 3, 2, t)                                      # DC only
    high = torch.tensor([(-1.0) ** k for k in range(t)]).expand(1, 3, 2, t)   # Nyquist only
    out = sp.mix_along_axis(low, high, -1)
    spec = torch.fft.fft(out, dim=-1)
    assert out.shape == low.shape and out.dtype == low.dtype
    assert torch.allclose(spec[..., 0].real, torch.full_like(spec[..., 0].real, t), atol=1e-4)   # DC of low kept
    assert spec[..., t // 2].abs().max() > 0.99 * t                                              # Nyquist of high
    out2 = sp.mix_along_axis(low.movedim(-1, 2), high.movedim(-1, 2), 2)
    assert torch.allclose(out2.movedim(2, -1), out, atol=1e-6)
    s = fi.Settings(iterations=2, filter_type="gaussian", d_s=0.5, d_t=0.125, order=2, grid="reference")
    torch.testing.assert_close(fi.mix_along_time(low, high, -1, s),
                               sp.mix_along_axis(low, high, -1, "gaussian", 0.5, 0.125, 2, "reference"))


def test_freeinit_re_exports_the_spectral_tools():
    for name in ("FILTERS", "GRIDS", "DEFAULT_D_S", "DEFAULT_D_T", "DEFAULT_ORDER", "frequency_coordinates",
                 "low_pass_filter", "to_video_layout", "from_video_layout", "latent_thw", "frequency_mix",
                 "mix_latents"):
        assert getattr(fi, name) is getattr(sp, name), name


def test_spectral_errors():
    with pytest.raises(ValueError, match=r"low_pass_filter: sizes must be >= 1"):
        sp.low_pass_filter((0, 4, 4))
    with pytest.raises(ValueError, match=r"low_pass_filter: d_s and d_t must be > 0"):
        sp.low_pass_filter((2, 4, 4), d_t=0.0)
    with pytest.raises(ValueError, match=r"low_pass_filter: filter_type must be one of"):
        sp.low_pass_filter((2, 4, 4), "hann")
    with pytest.raises(ValueError, match=r"grid must be one of"):
        sp.frequency_coordinates(4, "other")
    with pytest.raises(ValueError, match=r"frequency_mix: shapes differ"):
        sp.frequency_mix(torch.zeros(2, 4, 4), torch.zeros(3, 4, 4), torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match=r"FreeInit needs an image-model latent .* got shape \(2, 3\)"):
        sp.latent_thw((2, 3))
